"""Each failure is one line on stderr, no traceback, and its own exit code. 401/403/404 come from the
real API (over kubesim, the emulated Kubernetes API server); a stand-in server plays an overloaded API
(503) and a server that is not the API at all."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from buildkit_controller.bkctl import errors
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.core.models import Worker

from .conftest import ALLOCATION_ID, Api, FakeServer, Reply, Result, allocation_answer, bkctl, free_port, play_api


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
    assert all(code in errors.EXIT_CODES_HELP for code in ("130/143", "128+N", "137"))
    documented = (Path(__file__).parents[2] / "docs" / "bkctl.md").read_text()
    assert all(f"\n| {code} | " in documented for code in [*CODES, 130, 143, "128+N"])


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


async def allocated(api: Api) -> list[str | None]:
    """The allocation of each worker of pool default/builds (released workers are deleted)."""
    workers = await api.kube.list(API_VERSION, "BuildKitWorker", "default")
    return [Worker.from_body(w).allocation for w in workers if not w["metadata"].get("deletionTimestamp")]


@pytest.mark.parametrize("command", ["allocate", "env", "build"])
async def test_a_gateway_endpoint_that_is_not_host_port(api: Api, command: str, tmp_path: Path) -> None:
    """A usage error before anything is allocated (build: before even looking for docker)."""
    env = api.env(BKCTL_DOCKER=str(tmp_path / "nodocker"))  # never this machine's docker
    one_line(await bkctl(command, "-p", "builds", "--gateway-endpoint", "gw:99999", env=env),
             errors.EXIT_USAGE, "--gateway-endpoint/BKCTL_GATEWAY_ENDPOINT 'gw:99999' is not HOST:PORT")
    one_line(await bkctl(command, "-p", "builds", env={**env, "BKCTL_GATEWAY_ENDPOINT": "gw:abc"}),
             errors.EXIT_USAGE, "'gw:abc' is not HOST:PORT")
    assert await allocated(api) == [None, None]


async def test_certificates_that_cannot_be_written_are_released(api: Api, tmp_path: Path) -> None:
    certs = tmp_path / "certs"
    (certs / "client.crt").mkdir(parents=True)  # in the way, whoever runs this (root too)
    result = await bkctl("allocate", "-p", "builds", "--certs-dir", str(certs), env=api.env())
    one_line(result, errors.EXIT_CREDENTIALS, f"cannot write certificates to {certs}: Is a directory; allocation ")
    assert result.err.endswith(" released\n")
    assert await allocated(api) == [None]  # the allocated worker was released (and deleted)
    assert sorted(p.name for p in certs.iterdir()) == ["client.crt"]  # ca.crt, written first, removed


async def test_a_malformed_answer_is_released_and_leaves_no_files(fake: FakeServer, tmp_path: Path) -> None:
    released = play_api(fake, {**allocation_answer(), "clientCert": "not base64!"})
    temp = tmp_path / "tmp"
    temp.mkdir()
    result = await bkctl("allocate", "-p", "builds", "--endpoint", fake.url, "--token", "t", env={"TMPDIR": str(temp)})
    one_line(result, errors.EXIT_WRONG_ENDPOINT,
             f"the allocation answer has no valid base64 'clientCert'; allocation {ALLOCATION_ID} released")
    assert released == [{"token": f"{ALLOCATION_ID}.s3cret"}]
    assert list(temp.iterdir()) == []
