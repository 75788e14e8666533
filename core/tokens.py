"""Allocation tokens and allocation ids.

An allocation token is the bearer secret a CI job uses to release or renew its worker. It is
returned exactly once, when the allocation is made, and only its hash is stored (in the
BuildKitWorker's ``spec.allocation.tokenHash``), so reading the CR never yields a usable secret.

Tokens carry 256 random bits, so a single unsalted SHA-256 is enough: salts and slow key-derivation
functions exist to protect low-entropy passwords from guessing, and nobody can guess 2^256 values.

An allocation id names an allocation in URLs, labels and the client certificate's URI SAN
(``buildkit://allocation/<id>``). It is not secret. Ids are 32 characters of lowercase base32, so
they fit a DNS label, a Kubernetes label value and a URI path segment without escaping, and leave
room under X.509's 64-character limits.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "ALLOCATION_ID_MAX_LENGTH",
    "TOKEN_BYTES",
    "TOKEN_HASH_PREFIX",
    "hash_token",
    "is_valid_allocation_id",
    "new_allocation_id",
    "new_token",
    "verify_token",
]

#: Random bytes in a token; 32 bytes = 256 bits, the floor the security review asks for.
TOKEN_BYTES = 32
#: Names the hash algorithm in stored hashes, so a future algorithm can live beside this one.
TOKEN_HASH_PREFIX = "sha256:"  # noqa: S105  an algorithm tag, not a secret
#: Longest allocation id accepted anywhere (generated ids are exactly this long).
ALLOCATION_ID_MAX_LENGTH = 32

# 20 random bytes are 160 bits; base32 turns them into exactly 32 characters with no padding.
_ALLOCATION_ID_BYTES = 20
# Tokens longer than this are refused before hashing: no legitimate token is near it, and it bounds
# the work an attacker can make verify_token do.
_MAX_TOKEN_LENGTH = 512
_STORED_HASH = re.compile(r"sha256:[0-9a-f]{64}")
# A DNS label (RFC 1123) capped at 32 characters: safe in URIs, label values and Pod names.
_ALLOCATION_ID = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,30}[a-z0-9])?")


def new_token(nbytes: int = TOKEN_BYTES) -> str:
    """Return a fresh URL-safe token (base64url, no padding) of ``nbytes`` random bytes.

    Refuses fewer than :data:`TOKEN_BYTES` bytes so no caller can weaken the guarantee by accident.
    """
    if nbytes < TOKEN_BYTES:
        raise ValueError(f"a token needs at least {TOKEN_BYTES} random bytes, not {nbytes}")
    return secrets.token_urlsafe(nbytes)


def hash_token(token: str) -> str:
    """Return the value to store for ``token``: ``sha256:`` followed by 64 lowercase hex digits."""
    return TOKEN_HASH_PREFIX + hashlib.sha256(token.encode("utf-8")).hexdigest()


def verify_token(token: object, stored_hash: object) -> bool:
    """Tell whether ``token`` hashes to ``stored_hash``, in constant time.

    Returns False, never raises, for anything malformed (wrong types, empty or oversized token,
    a stored value that is not a ``sha256:`` hash), because callers are request handlers that should
    answer 401 and move on.
    """
    if not isinstance(token, str) or not 0 < len(token) <= _MAX_TOKEN_LENGTH:
        return False
    if not isinstance(stored_hash, str) or not _STORED_HASH.fullmatch(stored_hash):
        return False
    try:
        candidate = hash_token(token).encode("ascii")
    except UnicodeEncodeError:  # lone surrogates cannot be UTF-8 encoded, so cannot be our token
        return False
    return hmac.compare_digest(candidate, stored_hash.encode("ascii"))


def new_allocation_id() -> str:
    """Return a fresh allocation id: 32 lowercase base32 characters (160 random bits)."""
    raw = base64.b32encode(secrets.token_bytes(_ALLOCATION_ID_BYTES))
    return raw.decode("ascii").lower()


def is_valid_allocation_id(value: object) -> bool:
    """Tell whether ``value`` can be an allocation id: a lowercase DNS label of at most 32 characters.

    Ids arrive from URLs and certificate SANs; anything that could escape a URI path, a label value
    or a log line (``/``, ``..``, uppercase, spaces, non-ASCII) is refused here, in one place.
    """
    return isinstance(value, str) and _ALLOCATION_ID.fullmatch(value) is not None
