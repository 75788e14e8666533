"""The flags every API command shares, and how a command reports failure."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import click

from buildkit_controller.bkctl.client import ApiClient, Connection
from buildkit_controller.bkctl.credentials import find_credential
from buildkit_controller.bkctl.errors import BkctlError

__all__ = ["DEFAULT_ENDPOINT", "Options", "api_command", "fail"]

DEFAULT_ENDPOINT = "http://buildkit-controller.buildkit-system.svc:8082"
OUTPUT = click.Choice(["text", "json", "env"])
F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True, kw_only=True)
class Options:
    """The flags every API command shares."""

    endpoint: str
    token: str | None
    tls_ca: str | None
    insecure_skip_verify: bool
    audience: str
    output: str
    timeout: float | None = None

    def client(self) -> ApiClient:
        connection = Connection(endpoint=self.endpoint, tls_ca=self.tls_ca,
                                insecure_skip_verify=self.insecure_skip_verify)
        return ApiClient(connection, lambda: find_credential(self.token, os.environ, self.audience).token,
                         timeout=self.timeout)


def fail(exc: BkctlError) -> None:
    click.echo(f"bkctl: error: {' '.join(exc.message.split())}", err=True)  # always one line
    sys.exit(exc.exit_code)


_COMMON = [
    click.option("--endpoint", envvar="BKCTL_ENDPOINT", default=DEFAULT_ENDPOINT, show_default=True,
                 help="Allocation API base URL [env BKCTL_ENDPOINT]."),
    click.option("--token", envvar="BKCTL_TOKEN", help="Bearer token for the API [env BKCTL_TOKEN]; "
                 "default: the credential plugins in BKC_PLUGINS_CREDENTIALS (github-actions,serviceaccount)."),
    click.option("--tls-ca", envvar=["BKCTL_TLS_CA", "BKCTL_TLS_CA_CERT"], type=click.Path(dir_okay=False),
                 help="CA bundle (PEM) for an https endpoint [env BKCTL_TLS_CA, BKCTL_TLS_CA_CERT]."),
    click.option("--insecure-skip-verify", envvar=["BKCTL_INSECURE_SKIP_VERIFY", "BKCTL_TLS_SKIP_VERIFY"],
                 is_flag=True, help="Do not verify the API's TLS certificate [env BKCTL_INSECURE_SKIP_VERIFY]."),
    click.option("--audience", envvar="BKCTL_AUDIENCE", default="buildkit-controller", show_default=True,
                 help="Audience to request from credential plugins (e.g. the GitHub ID token)."),
    click.option("--timeout", envvar="BKCTL_TIMEOUT", type=click.FloatRange(min=0.1),
                 help="Seconds to wait for the API [env BKCTL_TIMEOUT; default 30, allocate 300]."),
    click.option("--output", "-o", type=OUTPUT, default="text", show_default=True, help="Output format."),
    click.option("--json", "json_output", is_flag=True, hidden=True, help="Same as --output json (seed)."),
]


def api_command(func: F) -> F:
    """Add the shared flags, hand them over as ``opts``, and turn a BkctlError into one line + exit code."""
    @functools.wraps(func)
    def wrapper(*, endpoint: str, token: str | None, tls_ca: str | None, insecure_skip_verify: bool,
                audience: str, timeout: float | None, output: str, json_output: bool, **kwargs: Any) -> Any:
        opts = Options(endpoint=endpoint, token=token, tls_ca=tls_ca, audience=audience, timeout=timeout,
                       output="json" if json_output else output, insecure_skip_verify=insecure_skip_verify)
        try:
            return func(opts, **kwargs)
        except BkctlError as exc:
            fail(exc)
    decorated: Any = wrapper
    for option in reversed(_COMMON):
        decorated = option(decorated)
    return decorated  # type: ignore[no-any-return]


