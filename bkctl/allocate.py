"""``bkctl allocate`` and ``bkctl env``: get a worker, write its certificates, print how to use it."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import click

from buildkit_controller.bkctl import render
from buildkit_controller.bkctl.certs import CertFiles, KeyPair, new_key_pair, write_certs
from buildkit_controller.bkctl.client import ALLOCATE_TIMEOUT
from buildkit_controller.bkctl.errors import EXIT_CODES_HELP, EXIT_USAGE, EXIT_WRONG_ENDPOINT, BkctlError
from buildkit_controller.bkctl.options import Options, api_command
from buildkit_controller.bkctl.progress import progress, waiting

__all__ = [
    "POOL_OPTIONS",
    "allocate_command",
    "allocate_worker",
    "check_gateway_endpoint",
    "env_command",
    "gateway_address",
    "gateway_server_name",
    "release_after_failure",
    "release_worker",
    "request_allocation",
    "split_host_port",
    "with_options",
]

POOL_OPTIONS = [
    click.option("--pool", "-p", envvar="BKCTL_POOL", required=True, help="Pool to allocate from [env BKCTL_POOL]."),
    click.option("--namespace", "-n", envvar="BKCTL_NAMESPACE", default="default", show_default=True,
                 help="The pool's namespace [env BKCTL_NAMESPACE]."),
    click.option("--ttl", default="1h", show_default=True,
                 help="Lease length (clamped by the pool's maxTokenTTL; expiresAt says what you got)."),
    click.option("--job-id", envvar="BKCTL_JOB_ID", help="CI job id recorded with the allocation [env BKCTL_JOB_ID]."),
    click.option("--size", envvar="BKCTL_SIZE",
                 help="Worker size profile (sm, md, lg, xl, or a plugin's), capped at the pool's maxSize "
                      "[env BKCTL_SIZE]; default: the pool's size."),
    click.option("--gateway-endpoint", envvar="BKCTL_GATEWAY_ENDPOINT",
                 help="Use this gateway address instead of the one the API returns [env BKCTL_GATEWAY_ENDPOINT]."),
]
_CERT_OPTIONS = [
    click.option("--certs-dir", type=click.Path(file_okay=False, path_type=Path),
                 help="Where to write ca.crt, client.crt, client.key (default: a new private temp dir)."),
    click.option("--server-key", is_flag=True,
                 help="Let the server generate the private key (seed behaviour) instead of sending a CSR."),
]


def with_options(options: list[Callable[[Any], Any]]) -> Callable[[Any], Any]:
    """Apply a list of click options in the order they are listed (the order ``--help`` shows)."""
    def decorate(func: Any) -> Any:
        for option in reversed(options):
            func = option(func)
        return func
    return decorate


def split_host_port(address: str) -> tuple[str, int]:
    """``(host, port)`` of ``host:port`` (``tcp://`` optional, an IPv6 host in brackets); else a ValueError."""
    try:
        parts = urlsplit(f"tcp://{address.removeprefix('tcp://')}")
        host, port = parts.hostname, parts.port  # .port raises for a port that is no number or out of range
        extra = parts.username or parts.path or parts.query or parts.fragment
    except ValueError:  # also an unbalanced IPv6 bracket
        host, port, extra = None, None, None
    if not host or port is None or not 0 < port < 65536 or extra:
        raise ValueError(f"{address!r} is not HOST:PORT (with a port from 1 to 65535)")
    return host, port


def check_gateway_endpoint(value: str | None) -> None:
    """A usage error (exit 2), before anything is allocated, unless ``--gateway-endpoint`` is ``host:port``."""
    if value is None:
        return
    try:
        split_host_port(value)
    except ValueError as exc:
        raise BkctlError(EXIT_USAGE, f"--gateway-endpoint/BKCTL_GATEWAY_ENDPOINT {exc}") from None


def request_allocation(opts: Options, pair: KeyPair | None, *, pool: str, namespace: str, ttl: str,
                       job_id: str | None, size: str | None = None,
                       on_response: Callable[[], None] | None = None) -> dict[str, Any]:
    """``POST /workers/allocate`` (with the CSR of ``pair``), waiting in the pool's queue if need be.

    ``on_response`` is called as soon as the API's answer starts arriving (its status line and headers).
    """
    body: dict[str, Any] = {"poolName": pool, "namespace": namespace, "ttl": ttl}
    if job_id:
        body["jobId"] = job_id
    if size:
        body["size"] = size
    if pair is not None:
        body["csr"] = pair.csr_pem
    client = opts.client()
    with waiting(f"Allocating a worker from pool {namespace}/{pool}..."):
        return client.call("POST", "/api/v1/workers/allocate", body, timeout=ALLOCATE_TIMEOUT,
                           on_response=on_response)


def allocate_worker(opts: Options, *, certs_dir: Path | None = None, server_key: bool = False,
                    **wanted: Any) -> tuple[dict[str, Any], CertFiles]:
    """Allocate a worker and write its certificates (``wanted``: pool, namespace, ttl, job_id).

    When the certificates cannot be written, the allocation is released again before the error is raised.
    """
    pair = None if server_key else new_key_pair()
    answer = request_allocation(opts, pair, **wanted)
    try:
        files = write_certs(answer, pair.key_pem if pair else None, certs_dir)
    except BkctlError as exc:
        raise BkctlError(exc.exit_code, f"{exc.message}; {release_after_failure(opts, answer)}") from None
    progress(f"Worker {answer.get('workerName')} allocated; certificates in {files.directory}")
    return answer, files


def release_worker(opts: Options, answer: dict[str, Any]) -> None:
    """Release the allocation ``answer`` came with (its worker is deleted)."""
    token = answer.get("token")
    if not isinstance(token, str) or not token:
        raise BkctlError(EXIT_WRONG_ENDPOINT, "the allocation answer carries no token to release it with")
    opts.client().call("POST", "/api/v1/workers/release", {"token": token})


def release_after_failure(opts: Options, answer: dict[str, Any]) -> str:
    """Release ``answer``'s allocation after a later step failed; say how that went (for the error line)."""
    try:
        release_worker(opts, answer)
    except BkctlError as exc:
        return (f"could not release allocation {answer.get('allocationId')} either ({exc.message}); "
                f"it ends at {answer.get('expiresAt')}")
    return f"allocation {answer.get('allocationId')} released"


def gateway_address(answer: dict[str, Any], override: str | None) -> str:
    """``host:port`` of the gateway: the override, else the answer's ``gatewayEndpoint`` (or ``endpoint``)."""
    return (override or str(answer.get("gatewayEndpoint") or answer.get("endpoint", ""))).removeprefix("tcp://")


def gateway_server_name(answer: dict[str, Any]) -> str:
    """The name the gateway's certificate carries: the host of the ``gatewayEndpoint`` the API returned."""
    try:
        return urlsplit(f"tcp://{gateway_address(answer, None)}").hostname or ""
    except ValueError:  # an unbalanced IPv6 bracket: no name (the address itself fails where it is used)
        return ""


def _print(answer: dict[str, Any], files: CertFiles, output: str, gateway_override: str | None) -> None:
    gateway = gateway_address(answer, gateway_override)
    if output == "json":
        click.echo(render.as_json({**answer, **files.as_json(), "buildkitHost": render.buildkit_host(gateway)}))
    elif output == "env":
        click.echo(render.allocation_env(answer, files, gateway, gateway_server_name(answer)))
    else:
        click.echo(render.allocation_text(answer, files, gateway))


@click.command("allocate", epilog=EXIT_CODES_HELP)
@with_options(POOL_OPTIONS + _CERT_OPTIONS)
@api_command
def allocate_command(opts: Options, gateway_endpoint: str | None, **wanted: Any) -> None:
    """Allocate a worker; write its certificates (mode 0600, private dir) and print how to reach it.

    A P-256 key is generated here and only a CSR is sent: the private key never leaves this machine.
    """
    check_gateway_endpoint(gateway_endpoint)
    answer, files = allocate_worker(opts, **wanted)
    _print(answer, files, opts.output, gateway_endpoint)


@click.command("env", epilog=EXIT_CODES_HELP)
@with_options(POOL_OPTIONS + _CERT_OPTIONS)
@api_command
def env_command(opts: Options, gateway_endpoint: str | None, **wanted: Any) -> None:
    """Allocate a worker and print shell exports: eval "$(bkctl env -p POOL)".

    Exports BUILDKIT_HOST, BKCTL_TLS_SERVER_NAME, BKCTL_ALLOCATION_TOKEN, BKCTL_ALLOCATION_ID,
    BKCTL_WORKER, BKCTL_EXPIRES_AT, BKCTL_CERTS_DIR, BKCTL_CA_CERT, BKCTL_CLIENT_CERT and
    BKCTL_CLIENT_KEY. --output is ignored.
    """
    check_gateway_endpoint(gateway_endpoint)
    answer, files = allocate_worker(opts, **wanted)
    _print(answer, files, "env", gateway_endpoint)
