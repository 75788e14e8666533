"""Durations and resource quantities as users write them in CRs.

Durations follow Go's ``time.ParseDuration`` (``15m``, ``1h30m``, ``8760h``, ``500ms``) because the
seed's manifests use that form; ``d`` (days) is accepted as a convenience. Quantities follow the
Kubernetes resource-quantity grammar (``500m``, ``2``, ``2Gi``, ``1e3``) and are compared as
``Decimal`` so that ``1`` and ``1000m`` are equal.
"""

from __future__ import annotations

import re
from datetime import timedelta
from decimal import Decimal, InvalidOperation

__all__ = ["format_duration", "parse_duration", "parse_quantity"]

MAX_SECONDS = Decimal(int(timedelta.max.total_seconds()) - 86400)
_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h|d)")
_UNIT_SECONDS = {
    "ns": Decimal("1e-9"),
    "us": Decimal("1e-6"),
    "µs": Decimal("1e-6"),
    "ms": Decimal("1e-3"),
    "s": Decimal(1),
    "m": Decimal(60),
    "h": Decimal(3600),
    "d": Decimal(86400),
}
_BINARY = {"Ki": 2**10, "Mi": 2**20, "Gi": 2**30, "Ti": 2**40, "Pi": 2**50, "Ei": 2**60}
_DECIMAL = {"n": "1e-9", "u": "1e-6", "m": "1e-3", "": "1", "k": "1e3", "M": "1e6", "G": "1e9",
            "T": "1e12", "P": "1e15", "E": "1e18"}
_QUANTITY = re.compile(r"([+-]?(?:\d+(?:\.\d*)?|\.\d+))(?:([eE][+-]?\d+)|(Ki|Mi|Gi|Ti|Pi|Ei|[numkMGTPE])?)")


def parse_duration(text: str) -> timedelta:
    """Parse a Go-style duration such as ``1h30m``; raise ``ValueError`` on anything else."""
    value = text.strip()
    if value == "0":
        return timedelta(0)
    pos, total = 0, Decimal(0)
    for match in _DURATION_PART.finditer(value):
        if match.start() != pos:
            break
        total += Decimal(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        pos = match.end()
    if pos != len(value) or pos == 0:
        raise ValueError(f"invalid duration {text!r} (expected e.g. 30s, 15m, 1h30m, 7d)")
    # Absurd lengths saturate instead of overflowing; every caller caps durations anyway.
    return timedelta(seconds=float(min(total, MAX_SECONDS)))


def format_duration(delta: timedelta) -> str:
    """Render a duration the way users write it (``1h30m``, ``45s``), dropping zero parts."""
    seconds = int(delta.total_seconds())
    if seconds == 0:
        return "0s"
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{hours}h" if hours else "", f"{minutes}m" if minutes else "", f"{secs}s" if secs else ""]
    return "".join(parts)


def parse_quantity(value: str | int | float) -> Decimal:
    """Parse a Kubernetes quantity (``500m``, ``2Gi``, ``1.5``) into a ``Decimal`` of base units."""
    text = str(value).strip()
    match = _QUANTITY.fullmatch(text)
    if not match:
        raise ValueError(f"invalid quantity {value!r} (expected e.g. 500m, 2, 512Mi, 4Gi)")
    number, exponent, suffix = match.groups()
    try:
        base = Decimal(number)
        if exponent:
            return base * Decimal(f"1{exponent}")
        if suffix in _BINARY:
            return base * _BINARY[suffix]
        return base * Decimal(_DECIMAL[suffix or ""])
    except InvalidOperation as exc:  # pragma: no cover - the regex admits only valid decimals
        raise ValueError(f"invalid quantity {value!r}") from exc
