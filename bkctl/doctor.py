"""``bkctl doctor``: check the way from this machine to a worker, one step at a time, and say what to fix.

Checks, in order: the API answers (``/api/v1/health``) and its version; a credential is found; the API
accepts it; the clocks agree (the API's ``Date`` header, within :data:`MAX_CLOCK_SKEW`); then, with
``--pool``: a fresh 5-minute allocation, its client certificate, a TLS handshake with the gateway plus an
HTTP/2 hello to the worker behind it, and the release. A check that cannot run because an earlier one
failed is skipped; a check that fails in a way nobody foresaw is reported as failed, never as a traceback,
and the release runs whatever happened before it.
"""

from __future__ import annotations

import contextlib
import datetime
import email.utils
import os
import shutil
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from importlib.metadata import PackageNotFoundError, version
from typing import Any, Literal

import click
import httpx

from buildkit_controller.bkctl import render
from buildkit_controller.bkctl.allocate import (
    allocate_worker,
    check_gateway_endpoint,
    gateway_address,
    gateway_server_name,
    release_worker,
)
from buildkit_controller.bkctl.certs import CertFiles
from buildkit_controller.bkctl.client import DEFAULT_TIMEOUT, ApiClient, http_error, json_object
from buildkit_controller.bkctl.credentials import find_credential
from buildkit_controller.bkctl.errors import (
    EXIT_API,
    EXIT_CHECKS_FAILED,
    EXIT_CODES_HELP,
    EXIT_CONNECT,
    EXIT_CREDENTIALS,
    EXIT_FORBIDDEN,
    EXIT_NOT_FOUND,
    EXIT_UNAUTHORIZED,
    EXIT_UNAVAILABLE,
    EXIT_WRONG_ENDPOINT,
    BkctlError,
)
from buildkit_controller.bkctl.options import Options, api_command
from buildkit_controller.bkctl.probe import ProbeError, check_client_certificate, probe_gateway

__all__ = ["MAX_CLOCK_SKEW", "doctor_command"]

#: Certificates are backdated 60 s; half of that leaves room for the measurement (1 s ``Date`` resolution).
MAX_CLOCK_SKEW = 30.0
DOCTOR_TTL = "5m"

_REMEDIES = {
    EXIT_CONNECT: "check --endpoint/BKCTL_ENDPOINT (the allocation API, port 8082) and that this machine can "
                  "reach it",
    EXIT_WRONG_ENDPOINT: "--endpoint/BKCTL_ENDPOINT must be the allocation API's base URL, e.g. "
                         "http://buildkit-controller.buildkit-system.svc:8082",
    EXIT_CREDENTIALS: "set BKCTL_TOKEN, or enable a credential plugin (BKC_PLUGINS_CREDENTIALS): github-actions "
                      "needs the job permission id-token: write, serviceaccount a mounted token file",
    EXIT_UNAUTHORIZED: "the API rejected the token: use a current one, issued for the audience --audience/"
                       "BKCTL_AUDIENCE names, by an issuer the API trusts",
    EXIT_FORBIDDEN: "your identity may not use this pool: ask its owner to admit you in the pool's spec.auth",
    EXIT_NOT_FOUND: "check --pool and --namespace; `bkctl pools` lists the pools you may use",
    EXIT_UNAVAILABLE: "the pool is at capacity: retry later, or ask its owner to raise spec.scaling.max",
    EXIT_API: "read the API's message above; if it is about the request, compare versions (version check)",
}
_BUG_REMEDY = "this is a bug in bkctl or an answer it did not expect: please report this line and `bkctl version`"
_TLS_REMEDY = ("the API's TLS certificate is not trusted here: pass --tls-ca/BKCTL_TLS_CA the CA bundle that "
               "signed it (--insecure-skip-verify only for a throw-away test setup)")


def _remedy(exc: BkctlError) -> str:
    if "CERTIFICATE_VERIFY_FAILED" in exc.message:
        return _TLS_REMEDY
    if "cannot load CA" in exc.message:
        return "--tls-ca/BKCTL_TLS_CA must name a readable PEM file of CA certificates"
    return _REMEDIES.get(exc.exit_code, _REMEDIES[EXIT_API])


@dataclass(frozen=True, kw_only=True)
class Check:
    name: str
    status: Literal["passed", "failed", "skipped"]
    detail: str
    remedy: str = ""


@dataclass(kw_only=True)
class Doctor:
    """Runs the checks in order, recording each; a failed check's dependants are skipped."""

    opts: Options
    checks: list[Check] = field(default_factory=list)

    def passed(self, name: str, detail: str) -> None:
        self.checks.append(Check(name=name, status="passed", detail=detail))

    def failed(self, name: str, detail: str, remedy: str) -> None:
        self.checks.append(Check(name=name, status="failed", detail=detail, remedy=remedy))

    def skipped(self, name: str, detail: str) -> None:
        self.checks.append(Check(name=name, status="skipped", detail=detail))

    @contextlib.contextmanager
    def check(self, name: str) -> Iterator[None]:
        """Record an error raised in the block as ``name`` failing: the other checks still run."""
        try:
            yield
        except BkctlError as exc:
            self.failed(name, exc.message, _remedy(exc))
        except ProbeError as exc:
            self.failed(name, exc.message, exc.remedy)
        except Exception as exc:  # one unforeseen failure must not hide the other checks
            self.failed(name, f"unexpected error: {type(exc).__name__}: {exc}", _BUG_REMEDY)

    def ok(self, name: str) -> bool:
        return any(c.name == name and c.status == "passed" for c in self.checks)


def _bkctl_version() -> str:
    try:
        return version("buildkit-controller")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0+unknown"


def _skew(response: httpx.Response, local: datetime.datetime) -> float | str:
    """Seconds the API's clock is ahead of ``local``; else why that cannot be told."""
    date = response.headers.get("Date")
    if date is None:
        return "the API's answer carried no Date header to compare with"
    try:
        server = email.utils.parsedate_to_datetime(date)
    except (TypeError, ValueError):
        return f"unknown: the API's Date header {date[:60]!r} is not a date"
    if server.tzinfo is None:  # "-0000": UTC, with no claim about the local time zone (RFC 5322 3.3)
        server = server.replace(tzinfo=datetime.UTC)
    return (server - local).total_seconds()


def check_api(doctor: Doctor) -> None:
    """Reachability (health), then the clock against the answer's ``Date``, then the version."""
    client, endpoint = doctor.opts.client(), doctor.opts.endpoint.rstrip("/")
    with doctor.check("api"):
        before = datetime.datetime.now(datetime.UTC)
        response = client.request("GET", "/api/v1/health", auth=False)
        local = before + (datetime.datetime.now(datetime.UTC) - before) / 2
        if response.status_code != httpx.codes.OK:
            raise http_error(response, endpoint)
        if json_object(response, endpoint).get("status") != "ok":
            raise BkctlError(EXIT_WRONG_ENDPOINT, f"{endpoint}/api/v1/health did not answer {{\"status\": \"ok\"}}")
        doctor.passed("api", f"{endpoint} answered /api/v1/health")
        _check_clock(doctor, _skew(response, local))
    if doctor.ok("api"):
        _check_version(doctor, client, endpoint)
    else:
        doctor.skipped("clock", "needs a reachable API")
        doctor.skipped("version", "needs a reachable API")


def _check_clock(doctor: Doctor, skew: float | str) -> None:
    if isinstance(skew, str):
        doctor.skipped("clock", skew)
    elif abs(skew) > MAX_CLOCK_SKEW:
        behind = "behind" if skew > 0 else "ahead of"
        doctor.failed("clock", f"this machine's clock is {abs(skew):.0f} s {behind} the API's (more than "
                               f"{MAX_CLOCK_SKEW:.0f} s)",
                      "synchronise the clock (NTP: timedatectl set-ntp true, or chrony); certificates and tokens "
                      "are checked against it")
    else:
        doctor.passed("clock", f"within {MAX_CLOCK_SKEW:.0f} s of the API's (measured {round(skew):+d} s)")


def _check_version(doctor: Doctor, client: ApiClient, endpoint: str) -> None:
    mine = _bkctl_version()
    with doctor.check("version"):
        info = json_object(client.request("GET", "/api/v1/openapi.json", auth=False), endpoint).get("info") or {}
        theirs = str(info.get("version", "unknown"))
        if theirs.split(".")[:2] != mine.split(".")[:2]:
            doctor.failed("version", f"the API is {theirs}, bkctl is {mine}",
                          f"install the bkctl that matches the API: pip install 'buildkit-controller=={theirs}'")
        else:
            doctor.passed("version", f"the API is {theirs}, bkctl is {mine}")


def check_credentials(doctor: Doctor) -> None:
    """Which source gives the token, then whether the API accepts it."""
    with doctor.check("credentials"):
        found = find_credential(doctor.opts.token, os.environ, doctor.opts.audience)
        doctor.passed("credentials", f"a token from {found.source}")
    if not (doctor.ok("credentials") and doctor.ok("api")):
        doctor.skipped("authentication", "needs a reachable API and a credential")
        return
    with doctor.check("authentication"):
        pools = doctor.opts.client().call("GET", "/api/v1/pools").get("pools") or []
        names = ", ".join(f"{p.get('namespace')}/{p.get('name')}" for p in pools) or "none"
        doctor.passed("authentication", f"the API accepted the token; pools you may use: {names}")


def _allocate(doctor: Doctor, pool: str | None, namespace: str) -> tuple[dict[str, Any], CertFiles] | None:
    if pool is None:
        doctor.skipped("allocation", "skipped: pass --pool to check a fresh allocation and the gateway handshake")
        return None
    if not doctor.ok("authentication"):
        doctor.skipped("allocation", "needs the API to accept the token")
        return None
    with doctor.check("allocation"):
        answer, files = allocate_worker(doctor.opts, pool=pool, namespace=namespace, ttl=DOCTOR_TTL,
                                        job_id="bkctl-doctor")
        doctor.passed("allocation", f"worker {answer.get('workerName')} from {namespace}/{pool}, allocation "
                                    f"{answer.get('allocationId')} (ttl {DOCTOR_TTL})")
        return answer, files
    return None


def check_gateway(doctor: Doctor, pool: str | None, namespace: str, gateway: str | None) -> None:
    """A fresh allocation, its certificate, a handshake with the gateway; the release, always."""
    allocated = _allocate(doctor, pool, namespace)
    if allocated is None:
        return
    answer, files = allocated
    try:
        _check_certificates(doctor, answer, files, gateway)
    finally:
        shutil.rmtree(files.directory, ignore_errors=True)
        with doctor.check("release"):
            release_worker(doctor.opts, answer)
            doctor.passed("release", f"allocation {answer.get('allocationId')} released")


def _check_certificates(doctor: Doctor, answer: dict[str, Any], files: CertFiles, gateway: str | None
                        ) -> None:
    with doctor.check("client certificate"):
        doctor.passed("client certificate", check_client_certificate(files, str(answer.get("allocationId"))))
    with doctor.check("gateway"):
        address, name = gateway_address(answer, gateway), gateway_server_name(answer)
        tls = probe_gateway(address, name, files, doctor.opts.timeout or DEFAULT_TIMEOUT)
        shook = f"TLS handshake with {address} (as {name}): {tls.version}, {tls.cipher}, ALPN {tls.alpn or 'none'}"
        if tls.worker_answered:
            doctor.passed("gateway", f"{shook}; a BuildKit worker answered over HTTP/2 through it")
        else:
            doctor.failed("gateway", f"{shook}; but no BuildKit worker answered through it",
                          "the gateway accepted the certificate but could not reach the worker: see `bkctl status "
                          "--pool` and the gateway's logs")


_MARKS = {"passed": "[ ok ]", "failed": "[FAIL]", "skipped": "[skip]"}


def _report(checks: list[Check], output: str) -> None:
    if output == "json":
        click.echo(render.as_json([asdict(c) for c in checks]))
        return
    for c in checks:
        click.echo(f"{_MARKS[c.status]} {c.name}: {c.detail}")
        if c.remedy:
            click.echo(f"       fix: {c.remedy}")


@click.command("doctor", epilog=EXIT_CODES_HELP)
@click.option("--pool", "-p", envvar="BKCTL_POOL", help="Also allocate from this pool (5 minutes) and check the "
              "certificate and the gateway handshake [env BKCTL_POOL].")
@click.option("--namespace", "-n", envvar="BKCTL_NAMESPACE", default="default", show_default=True,
              help="The pool's namespace [env BKCTL_NAMESPACE].")
@click.option("--gateway-endpoint", envvar="BKCTL_GATEWAY_ENDPOINT",
              help="Reach the gateway here instead of the address the API returns [env BKCTL_GATEWAY_ENDPOINT].")
@api_command
def doctor_command(opts: Options, pool: str | None, namespace: str, gateway_endpoint: str | None) -> None:
    """Check the API, credentials, clock and (with --pool) the gateway; say what to fix. Exits 11 if a check failed.

    --output json prints the checks as a list of {name, status, detail, remedy}.
    """
    check_gateway_endpoint(gateway_endpoint)
    doctor = Doctor(opts=opts)
    check_api(doctor)
    check_credentials(doctor)
    check_gateway(doctor, pool, namespace, gateway_endpoint)
    _report(doctor.checks, opts.output)
    if any(c.status == "failed" for c in doctor.checks):
        raise BkctlError(EXIT_CHECKS_FAILED, f"{sum(c.status == 'failed' for c in doctor.checks)} check(s) failed")
