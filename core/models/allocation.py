"""An allocation request as the API receives it (seed field names), validated strictly."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import timedelta

from pydantic import Field, field_validator

from buildkit_controller.core.models._base import Duration, _Model

__all__ = ["AllocationRequest"]

_DNS_LABEL = re.compile(r"[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?")
_JOB_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/@-]{0,127}")
MAX_METADATA_ENTRIES = 16
MAX_METADATA_KEY = 63
MAX_METADATA_VALUE = 256


class AllocationRequest(_Model):
    """Body of ``POST /api/v1/workers/allocate``."""

    pool_name: str
    namespace: str = "default"
    ttl: Duration | None = None
    job_id: str | None = None
    metadata: Mapping[str, str] = Field(default_factory=dict)
    size: str | None = None
    #: PEM PKCS#10; when present the server signs it and returns no private key.
    csr: str | None = Field(default=None, max_length=16384)

    @field_validator("pool_name", "namespace")
    @classmethod
    def _dns_label(cls, value: str) -> str:
        if not _DNS_LABEL.fullmatch(value):
            raise ValueError("must be a lowercase DNS label (a-z, 0-9, '-', at most 63 characters)")
        return value

    @field_validator("job_id")
    @classmethod
    def _job(cls, value: str | None) -> str | None:
        if value is not None and not _JOB_ID.fullmatch(value):
            raise ValueError("must be 1-128 characters of letters, digits and ._:/@-")
        return value

    @field_validator("ttl")
    @classmethod
    def _ttl(cls, value: timedelta | None) -> timedelta | None:
        if value is not None and value < timedelta(minutes=1):
            raise ValueError("must be at least 1m")
        return value

    @field_validator("metadata")
    @classmethod
    def _metadata(cls, value: Mapping[str, str]) -> Mapping[str, str]:
        if len(value) > MAX_METADATA_ENTRIES:
            raise ValueError(f"at most {MAX_METADATA_ENTRIES} entries")
        for key, item in value.items():
            if not key or len(key) > MAX_METADATA_KEY or len(item) > MAX_METADATA_VALUE:
                raise ValueError(f"keys are 1-{MAX_METADATA_KEY} characters, values at most "
                                 f"{MAX_METADATA_VALUE}")
        return value
