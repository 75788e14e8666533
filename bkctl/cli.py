"""``bkctl``: allocate BuildKit workers from CI, build on them, release them; ``doctor`` says what is wrong."""

from __future__ import annotations

import sys
from importlib.metadata import PackageNotFoundError, version

import click

from buildkit_controller.bkctl.allocate import allocate_command, env_command
from buildkit_controller.bkctl.build import build_command
from buildkit_controller.bkctl.doctor import doctor_command
from buildkit_controller.bkctl.errors import EXIT_CODES_HELP
from buildkit_controller.bkctl.leases import pools_command, release_command, renew_command, status_command

__all__ = ["cli", "main"]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 110},
             epilog=EXIT_CODES_HELP)
def cli() -> None:
    """Allocate BuildKit workers from a buildkit-controller pool for a CI job.

    \b
      bkctl build -p my-pool -n ci -- -t IMAGE --push .   # allocate, docker buildx build, clean up
      bkctl allocate -p my-pool -n ci -o json    # a worker, certificates in a private temp dir
      eval "$(bkctl env -p my-pool -n ci)"       # the same, as shell exports (BUILDKIT_HOST, ...)
      bkctl release "$BKCTL_ALLOCATION_TOKEN"
      bkctl doctor -p my-pool -n ci              # what is wrong, and how to fix it
    """


def main() -> None:
    """The ``bkctl`` console script."""
    try:
        cli.main(prog_name="bkctl")
    except KeyboardInterrupt:  # pragma: no cover - interactive
        click.echo("bkctl: interrupted", err=True)
        sys.exit(130)


def _version() -> str:
    try:
        return version("buildkit-controller")
    except PackageNotFoundError:  # pragma: no cover - not installed
        return "0+unknown"


@cli.command("version")
def version_command() -> None:
    """Print bkctl's version."""
    click.echo(f"bkctl v{_version()}")


for _command in (build_command, allocate_command, env_command, release_command, renew_command, status_command,
                 pools_command, doctor_command):
    cli.add_command(_command)
