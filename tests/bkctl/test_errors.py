"""Each failure is one line on stderr, no traceback, and its own exit code. 401/403/404 come from the
real API (over kubesim, the emulated Kubernetes API server); a stand-in server plays an overloaded API
(503) and a server that is not the API at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildkit_controller.bkctl import errors

from .conftest import Api, FakeServer, Reply, Result, bkctl, free_port


def one_line(result: Result, code: int, *phrases: str) -> None:
    assert result.code == code, result.err
    assert result.err.startswith("bkctl: error: ") and result.err.count("\n") == 1, result.err
    assert "Traceback" not in result.err
    for phrase in phrases:
        assert phrase in result.err


CODES = [errors.EXIT_API, errors.EXIT_USAGE, errors.EXIT_CREDENTIALS, errors.EXIT_CONNECT, errors.EXIT_WRONG_ENDPOINT,
         errors.EXIT_UNAUTHORIZED, errors.EXIT_FORBIDDEN, errors.EXIT_NOT_FOUND, errors.EXIT_UNAVAILABLE,
         errors.EXIT_DOCKER, errors.EXIT_CHECKS_FAILED]


def test_exit_codes_are_distinct_and_documented() -> None:
    assert len(set(CODES)) == len(CODES) == len(errors.__all__) - 2  # all but EXIT_CODES_HELP and BkctlError
    assert all(f" {code} " in errors.EXIT_CODES_HELP for code in CODES)
    documented = (Path(__file__).parents[2] / "docs" / "bkctl.md").read_text()
    assert all(f"\n| {code} | " in documented for code in [*CODES, 130, 143])


async def test_help_documents_the_exit_codes() -> None:
    shown = await bkctl("--help")
    assert shown.code == 0 and "Exit codes:" in shown.out


@pytest.mark.parametrize(("case", "code", "phrase"), [
    ("401", errors.EXIT_UNAUTHORIZED, "unauthorized (401)"),
    ("403", errors.EXIT_FORBIDDEN, "forbidden (403)"),
    ("404", errors.EXIT_NOT_FOUND, "not found (404): not_found: pool default/nosuch not found"),
])
async def test_api_refusals(api: Api, case: str, code: int, phrase: str) -> None:
    token = {"401": "bkct_not-a-real-token", "403": api.new_token("other", ["elsewhere/*"])}.get(case, api.token)
    pool = "nosuch" if case == "404" else "builds"
    one_line(await bkctl("allocate", "-p", pool, env=api.env(BKCTL_TOKEN=token)), code, phrase)


async def test_refused_connection() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    one_line(await bkctl("pools", "--endpoint", url, "--token", "t"), errors.EXIT_CONNECT,
             f"cannot connect to {url}")


async def test_unknown_host() -> None:
    url = "http://api.nosuch.invalid:8082"  # .invalid never resolves (RFC 2606)
    one_line(await bkctl("pools", "--endpoint", url, "--token", "t"), errors.EXIT_CONNECT, f"cannot connect to {url}")


async def test_not_the_api(fake: FakeServer) -> None:
    one_line(await bkctl("pools", "--endpoint", fake.url, "--token", "t"), errors.EXIT_WRONG_ENDPOINT,
             "answered HTTP 404 without an API error body")
    one_line(await bkctl("pools", "--endpoint", "ftp://127.0.0.1", "--token", "t"), errors.EXIT_WRONG_ENDPOINT,
             "invalid endpoint")


async def test_no_capacity_shows_retry_after(fake: FakeServer) -> None:
    body = json.dumps({"error": "no_capacity", "message": "pool default/builds is at capacity"}).encode()
    fake.routes["/api/v1/workers/allocate"] = lambda _: Reply(503, body, {"Retry-After": "7",
                                                                          "Content-Type": "application/json"})
    one_line(await bkctl("allocate", "-p", "builds", "--endpoint", fake.url, "--token", "t"),
             errors.EXIT_UNAVAILABLE, "unavailable (503): no_capacity: pool default/builds is at capacity",
             "retry after 7 s")


async def test_other_errors_carry_the_server_message(api: Api) -> None:
    one_line(await bkctl("allocate", "-p", "builds", "--ttl", "soon", env=api.env()), errors.EXIT_API,
             "HTTP 400: bad_request: body.ttl")
