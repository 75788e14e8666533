"""Printing answers as text, JSON or shell exports."""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

from buildkit_controller.bkctl.certs import CertFiles

__all__ = ["allocation_env", "allocation_text", "as_json", "buildkit_host", "key_values", "pools_table"]


def as_json(value: Any) -> str:
    return json.dumps(value, indent=2)


def buildkit_host(gateway: str) -> str:
    """``tcp://host:port`` for BUILDKIT_HOST / buildx, whatever scheme the endpoint came with."""
    return f"tcp://{gateway.removeprefix('tcp://')}"


def allocation_env(answer: Mapping[str, Any], files: CertFiles, gateway: str, server_name: str) -> str:
    """``server_name`` is the name on the gateway's certificate (for ``--tlsservername`` when
    BUILDKIT_HOST is an overridden address)."""
    exports = {
        "BUILDKIT_HOST": buildkit_host(gateway),
        "BKCTL_TLS_SERVER_NAME": server_name,
        "BKCTL_WORKER": answer.get("workerName", ""),
        "BKCTL_ALLOCATION_ID": answer.get("allocationId", ""),
        "BKCTL_ALLOCATION_TOKEN": answer.get("token", ""),
        "BKCTL_EXPIRES_AT": answer.get("expiresAt", ""),
        "BKCTL_CERTS_DIR": str(files.directory),
        "BKCTL_CA_CERT": str(files.ca_cert),
        "BKCTL_CLIENT_CERT": str(files.client_cert),
        "BKCTL_CLIENT_KEY": str(files.client_key),
    }
    return "\n".join(f"export {name}={shlex.quote(str(value))}" for name, value in exports.items())


def allocation_text(answer: Mapping[str, Any], files: CertFiles, gateway: str) -> str:
    token = answer.get("token", "")
    return "\n".join([
        "Worker allocated successfully!",
        f"Worker:     {answer.get('workerName')}",
        f"Allocation: {answer.get('allocationId')}",
        f"Token:      {token}",
        f"Endpoint:   {buildkit_host(gateway)}",
        f"Expires:    {answer.get('expiresAt')}",
        f"Certs:      {files.directory}",
        f"To release: bkctl release {token}",
    ])


def key_values(answer: Mapping[str, Any]) -> str:
    width = max((len(key) for key in answer), default=0) + 1
    return "\n".join(f"{key + ':':<{width}} {value}" for key, value in answer.items())


def pools_table(pools: Sequence[Mapping[str, Any]]) -> str:
    header = ("NAMESPACE", "NAME", "PHASE", "WORKERS", "ENDPOINT")
    rows = [header] + [(str(p.get("namespace")), str(p.get("name")), str(p.get("phase")),
                        " ".join(f"{k}={v}" for k, v in (p.get("workers") or {}).items()) or "-",
                        str(p.get("endpoint"))) for p in pools]
    widths = [max(len(row[i]) for row in rows) for i in range(len(header))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)
