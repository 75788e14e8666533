"""An allocation request as the API receives it (seed field names), validated strictly."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from pydantic import Field, StringConstraints, field_validator

from buildkit_controller.core.models._base import Duration, _Model

__all__ = ["AllocationRequest"]

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$"
JOB_ID = r"^[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}$"
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 63
MAX_METADATA_VALUE = 256
MIN_TTL = timedelta(minutes=1)

_Label = Annotated[str, StringConstraints(pattern=DNS_LABEL, max_length=63)]
_Key = Annotated[str, StringConstraints(min_length=1, max_length=MAX_METADATA_KEY)]
_Value = Annotated[str, StringConstraints(max_length=MAX_METADATA_VALUE)]


class AllocationRequest(_Model):
    """Body of ``POST /api/v1/workers/allocate``."""

    pool_name: _Label
    namespace: _Label = "default"
    #: Clamped between 1m and the pool's maxTokenTTL; ``expiresAt`` in the answer says what you got.
    ttl: Duration | None = None
    job_id: Annotated[str, StringConstraints(pattern=JOB_ID)] | None = None
    metadata: Annotated[dict[_Key, _Value], Field(max_length=MAX_METADATA_ENTRIES)] = Field(default_factory=dict)
    #: A size profile (``sm``…``xl`` or a plugin's), capped at the pool's ``maxSize``.
    size: Annotated[str, StringConstraints(min_length=1, max_length=63)] | None = None
    #: PEM PKCS#10; when present the server signs it and returns no private key.
    csr: str | None = Field(default=None, max_length=4096)

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: timedelta | None) -> timedelta | None:
        return None if value is None else max(value, MIN_TTL)
