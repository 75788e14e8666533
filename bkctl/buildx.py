"""The ``docker buildx`` command lines ``bkctl build`` runs: pure functions of the allocation and the user's args.

Remote driver options (``docker buildx create --driver remote --driver-opt``): ``cacert``, ``cert``, ``key``
(paths) and ``servername`` (the TLS name to expect; buildx defaults to the endpoint's host).
"""

from __future__ import annotations

import csv
import io
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from buildkit_controller.bkctl.certs import CertFiles
from buildkit_controller.bkctl.errors import EXIT_DOCKER, BkctlError

__all__ = ["BuildPlan", "find_docker", "plan_build"]


@dataclass(frozen=True, kw_only=True)
class BuildPlan:
    """The three docker command lines of one ``bkctl build``."""

    builder: str
    create: list[str]
    build: list[str]
    remove: list[str]


def find_docker(wanted: str) -> str:
    """The docker executable's path, or a :class:`BkctlError` saying how to provide one."""
    found = shutil.which(wanted)
    if found is None:
        raise BkctlError(EXIT_DOCKER, f"docker executable {wanted!r} not found; install Docker with the buildx "
                                      "plugin, or point --docker/BKCTL_DOCKER at it")
    return found


def _driver_opts(files: CertFiles, server_name: str | None) -> str:
    """``key=value,...`` as buildx parses it (CSV): a path containing a comma or a quote gets quoted."""
    fields = [f"cacert={files.ca_cert}", f"cert={files.client_cert}", f"key={files.client_key}"]
    if server_name:
        fields.append(f"servername={server_name}")
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return line.getvalue()


def _gave(args: Sequence[str], flag: str) -> bool:
    return any(arg == flag or arg.startswith(f"{flag}=") for arg in args)


def cache_flags(cache: Mapping[str, Any] | None, user_args: Sequence[str]) -> list[str]:
    """The pool's ``--cache-from``/``--cache-to`` hints, each kind only if the user gave none of their own."""
    flags: list[str] = []
    for kind in ("from", "to"):
        flag = f"--cache-{kind}"
        if not _gave(user_args, flag):
            flags += [part for hint in (cache or {}).get(kind) or [] for part in (flag, str(hint))]
    return flags


def plan_build(docker: str, answer: Mapping[str, Any], files: CertFiles, *, address: str,
               server_name: str | None, user_args: Sequence[str]) -> BuildPlan:
    """Create a remote builder for ``address`` (``host:port``), build with it, remove it."""
    builder = f"bkctl-{answer.get('workerName', 'worker')}-{str(answer.get('allocationId', ''))[:8]}"
    return BuildPlan(
        builder=builder,
        create=[docker, "buildx", "create", "--name", builder, "--driver", "remote",
                "--driver-opt", _driver_opts(files, server_name), f"tcp://{address}"],
        build=[docker, "buildx", "build", "--builder", builder, *cache_flags(answer.get("cache"), user_args),
               *user_args],
        remove=[docker, "buildx", "rm", builder],
    )
