"""``buildkit-controller``: the server-side command (plugins listing now; operator, API, dev later)."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from dataclasses import asdict
from importlib.metadata import version
from pathlib import Path
from typing import Any

import click

from buildkit_controller.controller.crds import all_crds, crd_yaml, write_crds
from buildkit_controller.core._loader import InstalledPlugin, installed_plugins, load_plugins
from buildkit_controller.core.errors import ConfigError
from buildkit_controller.core.settings import GROUPS, PluginSettings

__all__ = ["main"]

EXIT_CONFIG = 2


def _settings(ctx: click.Context) -> PluginSettings:
    settings: PluginSettings = ctx.obj
    return settings


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--plugins", "plugin_overrides", multiple=True, metavar="GROUP=NAME[,NAME...]",
              help="Enable exactly these plugins of GROUP, in this order (repeatable). Overrides the "
                   f"BKC_PLUGINS_<GROUP> environment variables. Groups: {', '.join(GROUPS)}.")
@click.version_option(package_name="buildkit-controller")
@click.pass_context
def cli(ctx: click.Context, plugin_overrides: Sequence[str]) -> None:
    """Kubernetes operator for pools of BuildKit daemons.

    Plugins are discovered through entry points; installed is not enabled: the BKC_PLUGINS_<GROUP>
    variables (set by the Helm chart) or --plugins name the enabled ones.
    """
    ctx.obj = PluginSettings.from_env(os.environ, plugin_overrides)


def _table(rows: list[InstalledPlugin]) -> str:
    header = ("GROUP", "NAME", "ENABLED", "DISTRIBUTION", "VERSION", "TARGET")
    cells = [header] + [(p.group, p.name, "yes" if p.enabled else "no", p.distribution or "-",
                         p.version or "-", p.target) for p in rows]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip()
                     for row in cells)


@cli.command("plugins")
@click.option("--output", "-o", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.pass_context
def plugins_command(ctx: click.Context, output: str) -> None:
    """List installed plugins per group, whether each is enabled, and where it comes from.

    Exits 2 when an enabled plugin is missing or fails to load.
    """
    settings = _settings(ctx)
    load_plugins(settings)  # fail the same way start-up would
    rows = installed_plugins(settings)
    if output == "json":
        click.echo(json.dumps([asdict(p) for p in rows], indent=2))
    else:
        click.echo(_table(rows))


@cli.command("crds")
@click.option("--write", "directory", type=click.Path(file_okay=False, path_type=Path),
              help="Write one YAML file per CRD into DIRECTORY instead of printing them.")
def crds_command(directory: Path | None) -> None:
    """Print the CRDs (for `kubectl apply -f -`), or write them into a directory."""
    if directory is not None:
        for path in write_crds(directory):
            click.echo(f"wrote {path}")
        return
    click.echo("---\n".join(crd_yaml(crd) for crd in all_crds()), nl=False)


@cli.group("tokens")
def tokens_group() -> None:
    """Static API tokens for the `token` auth method."""


@tokens_group.command("create")
@click.option("--subject", required=True, help="Identity the token authenticates as (what RBAC rules match).")
@click.option("--pool", "pools", multiple=True, metavar="PATTERN",
              help="Limit the token to pools matching PATTERN (name or namespace/name glob); repeatable.")
@click.option("--name", help="Entry name in the token Secret (default: the subject, made safe).")
def tokens_create(subject: str, pools: Sequence[str], name: str | None) -> None:
    """Make a new token: prints it once (on stdout) and the Secret entry that stores only its hash."""
    from buildkit_controller.plugins.token import new_static_token  # noqa: PLC0415 - built-in plugin

    token, entry = new_static_token(subject, list(pools) or None)
    key = name or "".join(c if c.isalnum() or c in "-._" else "-" for c in subject)
    click.echo(token)
    click.echo(f"# Store the hash (never the token) in the token Secret, e.g.:\n"
               f"#   kubectl create secret generic buildkit-controller-tokens --dry-run=client -o yaml "
               f"--from-literal={key}='{json.dumps(entry)}' | kubectl apply -f -", err=True)


@cli.command("api")
@click.option("--listen", default="0.0.0.0:8082", show_default=True, help="Address to serve the API on.")
@click.option("--server", metavar="URL", help="API server URL (no auth); default: in-cluster, then kubeconfig.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG",
              help="Kubeconfig file to use when not running in a cluster.")
@click.option("--certfile", type=click.Path(dir_okay=False, exists=True), help="TLS certificate (PEM).")
@click.option("--keyfile", type=click.Path(dir_okay=False, exists=True), help="TLS private key (PEM).")
@click.option("--client-ca", type=click.Path(dir_okay=False, exists=True),
              help="Extra CA bundle (PEM) whose client certificates TLS accepts. Client certificates are "
                   "optional and, with TLS, always accepted from the identity CA and pools' worker CAs.")
@click.option("--namespace", envvar="POD_NAMESPACE", default="buildkit-system", show_default=True,
              help="The API's namespace, where its identity CA Secret lives.")
@click.option("--audience", default="buildkit-controller", show_default=True,
              help="Audience API tokens must carry (ServiceAccount, OIDC).")
@click.option("--print-openapi", is_flag=True, help="Print the OpenAPI document and exit (no cluster needed).")
@click.pass_context
def api_command(ctx: click.Context, print_openapi: bool, **options: Any) -> None:
    """Serve the allocation API (CI jobs get workers and certificates here)."""
    if print_openapi:
        from buildkit_controller.controller.api.schemas import openapi_document  # noqa: PLC0415

        click.echo(json.dumps(openapi_document(version("buildkit-controller")), indent=2, sort_keys=True))
        return
    from buildkit_controller.controller.api.serve import ApiOptions, run_api  # noqa: PLC0415 - server-only

    _configure_logging()
    asyncio.run(run_api(ApiOptions(**options), _settings(ctx)))


@cli.command("dev")
@click.option("--api-listen", default="127.0.0.1:8082", show_default=True, help="Where the allocation API listens.")
@click.option("--pool", "pool_files", multiple=True, type=click.Path(dir_okay=False, exists=True, path_type=Path),
              default=("examples/pool-example.yaml",), show_default=True,
              help="Pool manifests to apply at start (repeatable).")
@click.option("--workdir", type=click.Path(file_okay=False, path_type=Path),
              help="Where to keep the kubeconfig and the dev token (default: a new temporary folder).")
@click.pass_context
def dev_command(ctx: click.Context, api_listen: str, pool_files: tuple[Path, ...], workdir: Path | None) -> None:
    """Run everything locally: embedded Kubernetes (kubesim), operator, API and the example pool."""
    try:
        from buildkit_controller.controller.dev import DevOptions, run_dev  # noqa: PLC0415 - server-only
    except ModuleNotFoundError as exc:
        raise ConfigError(f"dev mode needs {exc.name!r}: install the [server] extra and ./kubesim "
                          "(the README's `make dev` does both)") from None

    _configure_logging()
    asyncio.run(run_dev(DevOptions(api_listen=api_listen, pool_files=pool_files, workdir=workdir), _settings(ctx)))


@cli.command("operator")
@click.option("--server", metavar="URL",
              help="API server URL (no auth); default: in-cluster, then kubeconfig.")
@click.option("--kubeconfig", type=click.Path(dir_okay=False), envvar="KUBECONFIG",
              help="Kubeconfig file to use when not running in a cluster.")
@click.option("--standalone", is_flag=True,
              help="Do not coordinate with other replicas (Kopf peering). Only for one replica.")
@click.option("--priority", type=int, help="Peering priority; the highest live replica works.")
@click.option("--peering-lifetime", type=int, default=60, show_default=True,
              help="Seconds after which a silent replica is considered gone and another takes over.")
@click.option("--resync", type=float, default=10.0, show_default=True,
              help="Seconds between reconciles of an unchanged pool.")
@click.pass_context
def operator_command(ctx: click.Context, resync: float, **connection: Any) -> None:
    """Run the Kopf operator for BuildKitPools and BuildKitWorkers until interrupted."""
    # Server-only imports: `pip install buildkit-controller` (no [server] extra) must still run `plugins`.
    from buildkit_controller.controller.reconciler.context import OperatorSettings  # noqa: PLC0415
    from buildkit_controller.controller.reconciler.run import OperatorOptions, run_operator  # noqa: PLC0415

    options = OperatorOptions(**connection)
    settings = OperatorSettings(resync_seconds=resync)
    _configure_logging()
    asyncio.run(run_operator(options, _settings(ctx), settings))


def _configure_logging() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def main(argv: Sequence[str] | None = None) -> None:
    """Console-script entry point: configuration errors become one line on stderr and exit 2."""
    try:
        cli.main(args=list(argv) if argv is not None else None, standalone_mode=False)
    except ConfigError as exc:
        click.echo(f"buildkit-controller: error: {exc}", err=True)
        sys.exit(EXIT_CONFIG)
    except click.exceptions.Exit as exc:
        sys.exit(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except click.Abort:
        click.echo("Aborted!", err=True)
        sys.exit(1)
