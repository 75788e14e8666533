"""``buildkit-gateway``: placeholder until the gateway lands (issue 7)."""

from __future__ import annotations

import sys

__all__ = ["main"]


def main() -> None:
    sys.exit("buildkit-gateway: not implemented yet")
