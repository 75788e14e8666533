"""``bkctl build``: allocate, create a ``docker buildx`` remote builder, build, and always clean up.

Clean-up (builder removed, certificates deleted, allocation released) runs on success, on a failing build,
and on SIGINT/SIGTERM: the signal is forwarded to the running docker child, bkctl waits for it to exit,
cleans up, and exits 128 + the signal's number. A signal that arrives while the allocation request is
still waiting for the API's answer stops bkctl at once: there is nothing to clean up yet (the API deletes the
worker of a request whose client went away). Once the answer starts arriving, a signal is only remembered:
the answer is read and recorded, then cleaned up (the allocation released) like any other.

A build killed by a signal that bkctl did not send (say, SIGKILL from the OOM killer) exits 128 + that
signal's number, as a shell reports it.
"""

from __future__ import annotations

import contextlib
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from types import FrameType, TracebackType
from typing import Any

import click

from buildkit_controller.bkctl.allocate import (
    POOL_OPTIONS,
    check_gateway_endpoint,
    gateway_address,
    gateway_server_name,
    release_worker,
    request_allocation,
    with_options,
)
from buildkit_controller.bkctl.buildx import BuildPlan, find_docker, plan_build
from buildkit_controller.bkctl.certs import CertFiles, new_key_pair, write_certs
from buildkit_controller.bkctl.errors import EXIT_CODES_HELP, EXIT_DOCKER, BkctlError
from buildkit_controller.bkctl.options import Options, api_command
from buildkit_controller.bkctl.progress import progress

__all__ = ["build_command"]

_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Interrupted(BaseException):  # like KeyboardInterrupt: not caught by ``except Exception``
    """A signal arrived while bkctl was waiting for the API to answer the allocation request."""

    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class Signals:
    """While entered: SIGINT and SIGTERM are remembered and forwarded to the docker child that runs."""

    def __init__(self) -> None:
        self.received: int | None = None
        self._child: subprocess.Popen[bytes] | None = None
        self._forwarded: subprocess.Popen[bytes] | None = None
        self._interruptible = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Signals:
        self._previous = {signum: signal.signal(signum, self._handle) for signum in _SIGNALS}
        return self

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)

    def _handle(self, signum: int, _frame: FrameType | None) -> None:
        self.received = self.received or signum
        if self._child is not None and self._child.poll() is None:
            self._child.send_signal(signum)
            self._forwarded = self._child
        elif self._interruptible:
            raise Interrupted(signum)

    @contextlib.contextmanager
    def interruptible(self) -> Iterator[None]:
        """Within the block, until :meth:`answered`, a signal raises :class:`Interrupted` (nothing to clean up)."""
        self._interruptible = True
        try:
            yield
        finally:
            self._interruptible = False

    def answered(self) -> None:
        """The API's answer is arriving: from now on a signal is only remembered, so that clean-up runs."""
        self._interruptible = False

    def run(self, argv: Sequence[str], *, forward: bool = True, quiet: bool = False) -> int:
        """Run a docker command to its end; with ``forward``, signals reach it (else it has its own group)."""
        child = subprocess.Popen(argv, stdin=None if forward else subprocess.DEVNULL,  # noqa: S603 - our argv
                                 stdout=subprocess.DEVNULL if quiet else None, process_group=None if forward else 0)
        if forward:
            self._child = child
            if self.received is not None and self._forwarded is not child:
                child.send_signal(self.received)  # arrived between Popen and the line above
        try:
            return child.wait()
        finally:
            self._child = None


def _warn(message: str) -> None:
    click.echo(f"bkctl: warning: {message}", err=True)


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:  # a real-time signal, say
        return f"signal {signum}"


def _exit_status(code: int) -> int:
    """A process's exit status as a shell reports it: killed by signal N (``Popen`` says -N) is 128 + N."""
    return 128 - code if code < 0 else code


def _how(code: int) -> str:
    return f"killed by {_signal_name(-code)}, exit {_exit_status(code)}" if code < 0 else f"exit {code}"


@dataclass(kw_only=True)
class _Session:
    """One build: what exists so far, so that clean-up undoes exactly that."""

    opts: Options
    signals: Signals
    answer: dict[str, Any] = field(default_factory=dict)
    files: CertFiles | None = None
    plan: BuildPlan | None = None
    created: int | None = None  # buildx create's exit code, once it ran

    def run(self, docker: str, gateway: str | None, user_args: Sequence[str], wanted: dict[str, Any]) -> int:
        pair = new_key_pair()
        with self.signals.interruptible():
            self.answer = request_allocation(self.opts, pair, on_response=self.signals.answered, **wanted)
        code = 0
        try:
            self.files = write_certs(self.answer, pair.key_pem, None)
            self.plan = plan_build(docker, self.answer, self.files, address=gateway_address(self.answer, gateway),
                                   server_name=gateway_server_name(self.answer) if gateway else None,
                                   user_args=user_args)
            if self.signals.received is None:
                self.create(self.plan)
            if self.signals.received is None:
                progress("Building...")
                code = self.signals.run(self.plan.build)
                if code < 0 and self.signals.received is None:
                    click.echo(f"bkctl: docker buildx build was {_how(code)}", err=True)
        finally:
            self.clean_up()
        return _exit_status(code) if self.signals.received is None else 128 + self.signals.received

    def create(self, plan: BuildPlan) -> None:
        progress(f"Creating buildx builder {plan.builder}...")
        self.created = self.signals.run(plan.create, quiet=True)  # it prints the name: stdout is the build's
        if self.created != 0 and self.signals.received is None:
            raise BkctlError(EXIT_DOCKER, f"docker buildx create failed ({_how(self.created)}); "
                                          "see docker's message above")

    def clean_up(self) -> None:
        """Remove the builder, delete the certificates, release: each step even if an earlier one failed."""
        if self.plan is not None and self.created is not None:  # also after a failed create: it may exist
            removed = self.signals.run(self.plan.remove, forward=False, quiet=True)
            if removed != 0 and self.created == 0:
                _warn(f"could not remove buildx builder {self.plan.builder}; "
                      f"remove it with: docker buildx rm {self.plan.builder}")
        if self.files is not None:
            shutil.rmtree(self.files.directory, ignore_errors=True)
        try:
            release_worker(self.opts, self.answer)
        except BkctlError as exc:
            _warn(f"could not release allocation {self.answer.get('allocationId')} ({exc.message}); "
                  f"it ends at {self.answer.get('expiresAt')}")
        else:
            progress("Cleaned up: builder removed, certificates deleted, allocation released")


@click.command("build", epilog=EXIT_CODES_HELP, context_settings={"ignore_unknown_options": True})
@with_options(POOL_OPTIONS)
@click.option("--docker", envvar="BKCTL_DOCKER", default="docker", show_default=True,
              help="The docker executable (with the buildx plugin) [env BKCTL_DOCKER].")
@click.argument("build_args", nargs=-1, type=click.UNPROCESSED, metavar="-- [BUILDX BUILD ARGS]...")
@api_command
def build_command(opts: Options, gateway_endpoint: str | None, docker: str, build_args: tuple[str, ...],
                  **wanted: Any) -> None:
    """Build on a pool's worker: bkctl build -p POOL -- -t IMAGE --push .

    \b
    Allocates a worker (local key + CSR), writes its certificates to a private temp dir, creates a
    docker buildx builder with the remote driver for the pool's gateway, runs `docker buildx build
    --builder <it>` with everything after `--`, adding the pool's cache hints as --cache-from/--cache-to
    unless you pass your own. Then, always (success, failure, Ctrl-C, SIGTERM), removes the builder,
    deletes the certificates and releases the worker. Exits with the build's exit code (128+N when a
    signal N killed it).
    """
    check_gateway_endpoint(gateway_endpoint)
    executable = find_docker(docker)
    with Signals() as signals:
        try:
            code = _Session(opts=opts, signals=signals).run(executable, gateway_endpoint, build_args, wanted)
        except Interrupted as stop:
            click.echo(f"bkctl: interrupted by {_signal_name(stop.signum)} while allocating", err=True)
            sys.exit(128 + stop.signum)
    if signals.received is not None:
        click.echo(f"bkctl: interrupted by {_signal_name(signals.received)}; cleaned up", err=True)
    sys.exit(code)
