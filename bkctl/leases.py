"""``bkctl release|renew|status|pools``: what to do with an allocation after it was made."""

from __future__ import annotations

import shlex
from typing import Any
from urllib.parse import quote

import click

from buildkit_controller.bkctl import render
from buildkit_controller.bkctl.errors import EXIT_CODES_HELP, EXIT_USAGE, BkctlError
from buildkit_controller.bkctl.options import Options, api_command

__all__ = ["pools_command", "release_command", "renew_command", "status_command"]

_ALLOCATION = click.argument("allocation", envvar="BKCTL_ALLOCATION_TOKEN", metavar="TOKEN|ALLOCATION_ID")


def _lease(allocation: str) -> dict[str, str]:
    """The allocation token (``<id>.<secret>``) or, for its owner, the bare allocation id."""
    return {"token": allocation} if "." in allocation else {"allocationId": allocation}


def _show(answer: dict[str, Any], output: str, text: str | None = None) -> None:
    if output == "json":
        click.echo(render.as_json(answer))
    elif output == "env":
        click.echo("\n".join(f"export BKCTL_{key.upper()}={shlex.quote(str(value))}" for key, value in answer.items()
                             if isinstance(value, str | int | bool)))
    else:
        click.echo(text if text is not None else render.key_values(answer))


@click.command("release", epilog=EXIT_CODES_HELP)
@_ALLOCATION
@api_command
def release_command(opts: Options, allocation: str) -> None:
    """Release an allocation (its worker is deleted). A second release exits 8 (not found)."""
    answer = opts.client().call("POST", "/api/v1/workers/release", _lease(allocation))
    _show(answer, opts.output, "Worker released successfully")


@click.command("renew", epilog=EXIT_CODES_HELP)
@_ALLOCATION
@click.option("--ttl", help="New lease length from now (default: the pool's tokenTTL).")
@api_command
def renew_command(opts: Options, allocation: str, ttl: str | None) -> None:
    """Extend an allocation's lease (never beyond allocatedAt + the pool's maxTokenTTL)."""
    body: dict[str, Any] = {**_lease(allocation), **({"ttl": ttl} if ttl else {})}
    answer = opts.client().call("POST", "/api/v1/workers/renew", body)
    _show(answer, opts.output, f"Lease extended until {answer.get('expiresAt')}")


@click.command("status", epilog=EXIT_CODES_HELP)
@click.argument("allocation", required=False, metavar="[TOKEN|ALLOCATION_ID]")
@click.option("--pool", "-p", help="Show this pool instead of an allocation.")
@click.option("--namespace", "-n", envvar="BKCTL_NAMESPACE", default="default", show_default=True,
              help="The pool's namespace [env BKCTL_NAMESPACE].")
@api_command
def status_command(opts: Options, allocation: str | None, pool: str | None, namespace: str) -> None:
    """Show an allocation (by token or id; owner only) or, with --pool, a pool."""
    if (allocation is None) == (pool is None):
        raise BkctlError(EXIT_USAGE, "status takes an allocation (token or id) or --pool, not both or neither")
    if pool is not None:
        answer = opts.client().call("GET", f"/api/v1/pools/{quote(namespace, safe='')}/{quote(pool, safe='')}")
    else:
        allocation_id = (allocation or "").split(".", 1)[0]
        answer = opts.client().call("GET", f"/api/v1/workers/{quote(allocation_id, safe='')}")
    _show(answer, opts.output)


@click.command("pools", epilog=EXIT_CODES_HELP)
@api_command
def pools_command(opts: Options) -> None:
    """List the pools you may use."""
    answer = opts.client().call("GET", "/api/v1/pools")
    pools = answer.get("pools") or []
    if opts.output == "json":
        click.echo(render.as_json(pools))
    else:
        click.echo(render.pools_table(pools))
