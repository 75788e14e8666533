"""Shared base for models parsed from CR bodies: frozen, camelCase aliases, field-path errors."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Annotated, Any, Self

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic.alias_generators import to_camel

from buildkit_controller.core.errors import SpecError
from buildkit_controller.core.models.units import format_duration, parse_duration, parse_quantity

__all__ = ["DURATION_PATTERN", "QUANTITY_PATTERN", "Duration", "Quantity", "Timestamp", "_Model"]


def _to_duration(value: object) -> object:
    if isinstance(value, str):
        return parse_duration(value)
    return value


def _to_quantity(value: object) -> object:
    if isinstance(value, bool):
        raise ValueError("a quantity is a number or a string such as 500m or 2Gi")
    if isinstance(value, int | float | str):
        parse_quantity(value)
        return str(value)
    return value


#: What the CRD schema enforces for durations (the same grammar ``parse_duration`` reads).
DURATION_PATTERN = r"^(0|(([0-9]+(\.[0-9]*)?|\.[0-9]+)(ns|us|µs|ms|s|m|h|d))+)$"
#: Kubernetes' own quantity pattern, as its built-in schemas declare it.
QUANTITY_PATTERN = (r"^(\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))(([KMGTPE]i)|[numkMGTPE]|"
                    r"([eE](\+|-)?(([0-9]+(\.[0-9]*)?)|(\.[0-9]+))))?$")

#: A Go-style duration string (``15m``) held as a ``timedelta``; dumps back to the string form.
Duration = Annotated[timedelta, BeforeValidator(_to_duration), PlainSerializer(format_duration),
                     WithJsonSchema({"type": "string", "pattern": DURATION_PATTERN})]
#: A Kubernetes resource quantity, validated and kept as the user's string (``1`` stays ``"1"``).
Quantity = Annotated[str, BeforeValidator(_to_quantity), WithJsonSchema({
    "anyOf": [{"type": "integer"}, {"type": "string"}], "pattern": QUANTITY_PATTERN,
    "x-kubernetes-int-or-string": True})]
#: An RFC 3339 timestamp; naive values are rejected so every comparison is in UTC.
Timestamp = AwareDatetime


class _Model(BaseModel):
    """Immutable, camelCase on the wire, unknown fields ignored (the CRD schema prunes them)."""

    model_config = ConfigDict(
        frozen=True,
        populate_by_name=True,
        alias_generator=to_camel,
        extra="ignore",
        str_strip_whitespace=True,
    )

    @classmethod
    def parse(cls, data: Mapping[str, Any] | None, *, path: str = "spec") -> Self:
        """Validate ``data``; a failure raises ``SpecError`` naming the first bad field's path."""
        try:
            return cls.model_validate(dict(data or {}))
        except ValidationError as exc:
            raise _spec_error(exc, path) from None


def _spec_error(exc: ValidationError, root: str) -> SpecError:
    first = exc.errors()[0]
    where = ".".join([root, *(str(p) if not isinstance(p, int) else f"[{p}]" for p in first["loc"])])
    message = first["msg"].removeprefix("Value error, ")
    return SpecError(where.replace(".[", "["), message)
