"""Allocation tokens: strong, stored only as hashes, checked in constant time; ids are safe names."""

from __future__ import annotations

import base64
import re
import urllib.parse

import pytest
from hypothesis import given
from hypothesis import strategies as st

from buildkit_controller.core.tokens import (
    ALLOCATION_ID_MAX_LENGTH,
    TOKEN_BYTES,
    hash_token,
    is_valid_allocation_id,
    new_allocation_id,
    new_token,
    verify_token,
)

DNS_LABEL = re.compile(r"[a-z0-9]([a-z0-9-]*[a-z0-9])?")


def _decode(token: str) -> bytes:
    return base64.urlsafe_b64decode(token + "=" * (-len(token) % 4))


def test_token_is_urlsafe_unpadded_base64_of_32_random_bytes() -> None:
    token = new_token()
    assert re.fullmatch(r"[A-Za-z0-9_-]+", token), "only URL-safe characters, no padding"
    assert len(_decode(token)) == TOKEN_BYTES == 32


def test_tokens_do_not_repeat_and_use_the_whole_alphabet() -> None:
    tokens = [new_token() for _ in range(2000)]
    assert len(set(tokens)) == len(tokens)
    # 2000 x 43 characters from a 64-letter alphabet: a biased or truncated generator would miss some.
    assert len(set("".join(tokens))) == 64


def test_longer_tokens_on_request_but_never_shorter() -> None:
    assert len(_decode(new_token(48))) == 48
    with pytest.raises(ValueError, match="at least 32"):
        new_token(16)


def test_hash_names_its_algorithm_and_never_contains_the_token() -> None:
    token = new_token()
    stored = hash_token(token)
    assert re.fullmatch(r"sha256:[0-9a-f]{64}", stored)
    assert stored != token
    assert token not in stored
    assert hash_token(token) == stored, "the same token always hashes the same way"
    assert hash_token(new_token()) != stored


def test_verify_accepts_the_token_and_rejects_any_other() -> None:
    token = new_token()
    stored = hash_token(token)
    assert verify_token(token, stored) is True
    assert verify_token(new_token(), stored) is False
    assert verify_token(token[:-1], stored) is False
    assert verify_token(token + "A", stored) is False


@pytest.mark.parametrize(
    "stored",
    [
        "",
        "sha256:",
        "sha256:" + "0" * 63,
        "md5:" + "0" * 64,
        "SHA256:" + "0" * 64,
        None,
        42,
        b"sha256:" + b"0" * 64,
    ],
)
def test_verify_returns_false_for_malformed_stored_hash(stored: object) -> None:
    assert verify_token(new_token(), stored) is False


def test_verify_uppercase_hex_is_not_the_stored_form() -> None:
    token = new_token()
    assert verify_token(token, hash_token(token).upper().replace("SHA256", "sha256")) is False


@pytest.mark.parametrize("token", ["", None, 7, b"token", "x" * 10_000, "\ud800", "é" * 10])
def test_verify_returns_false_for_malformed_token(token: object) -> None:
    assert verify_token(token, hash_token("something")) is False


def test_verify_takes_the_raw_token_not_the_hash() -> None:
    token = new_token()
    stored = hash_token(token)
    assert verify_token(stored, stored) is False, "a leaked hash must not work as a credential"


def test_ten_thousand_allocation_ids_are_unique_and_valid() -> None:
    ids = [new_allocation_id() for _ in range(10_000)]
    assert len(set(ids)) == len(ids)
    for allocation_id in ids:
        assert len(allocation_id) == ALLOCATION_ID_MAX_LENGTH == 32
        assert DNS_LABEL.fullmatch(allocation_id)
        assert is_valid_allocation_id(allocation_id)


def test_allocation_id_needs_no_escaping_in_a_uri_path() -> None:
    allocation_id = new_allocation_id()
    assert urllib.parse.quote(allocation_id, safe="") == allocation_id


@pytest.mark.parametrize("value", ["a", "abc-123", "0" * 32, "x4lrfnbddaktff4oarx2eeq6byqe75xg"])
def test_valid_allocation_ids(value: str) -> None:
    assert is_valid_allocation_id(value)


@pytest.mark.parametrize(
    "value",
    ["", "a" * 33, "ABC", "a/b", "../etc", "a.b", "-ab", "ab-", "a b", "é", "a\n", None, 12, b"abc"],
)
def test_invalid_allocation_ids(value: object) -> None:
    assert not is_valid_allocation_id(value)


@given(st.text(max_size=40))
def test_anything_accepted_as_an_id_is_a_short_dns_label(value: str) -> None:
    if is_valid_allocation_id(value):
        assert len(value) <= 32
        assert DNS_LABEL.fullmatch(value)
        assert urllib.parse.quote(value, safe="") == value
