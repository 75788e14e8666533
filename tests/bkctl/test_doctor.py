"""``bkctl doctor`` against the real API (hypercorn, over kubesim, the emulated Kubernetes API server), and
against a stand-in server that plays an API with a wrong clock and another version. The gateway handshake
needs running gateway pods: that part is in test_doctor_dev.py, against the dev mode."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

from buildkit_controller.bkctl.errors import EXIT_CHECKS_FAILED

from .conftest import Api, FakeServer, Reply, Result, TlsApi, bkctl, server_certificate


def checks(result: Result) -> dict[str, dict[str, Any]]:
    """``doctor -o json``'s list, by check name."""
    return {c["name"]: c for c in json.loads(result.out)}


def statuses(result: Result) -> dict[str, str]:
    return {name: c["status"] for name, c in checks(result).items()}


async def test_healthy_without_a_pool(api: Api) -> None:
    result = await bkctl("doctor", env=api.env())
    assert result.code == 0, result.out + result.err
    assert result.err == ""
    lines = result.out.splitlines()
    assert lines[0] == f"[ ok ] api: {api.url} answered /api/v1/health"
    assert "[ ok ] credentials: a token from --token/BKCTL_TOKEN" in lines
    assert "[ ok ] authentication: the API accepted the token; pools you may use: default/builds" in lines
    assert any(line.startswith("[ ok ] clock: within 30 s of the API's") for line in lines)
    assert lines[-1] == ("[skip] allocation: skipped: pass --pool to check a fresh allocation and the gateway "
                         "handshake")


async def test_bad_token_and_unknown_pool(api: Api) -> None:
    result = await bkctl("doctor", "-p", "nosuch", "-o", "json", env=api.env(BKCTL_TOKEN="bkct_wrong"))
    assert result.code == EXIT_CHECKS_FAILED
    assert result.err == "bkctl: error: 1 check(s) failed\n"
    found = checks(result)
    assert found["authentication"]["status"] == "failed"
    assert found["authentication"]["detail"].startswith("unauthorized (401)")
    assert "the API rejected the token" in found["authentication"]["remedy"]
    assert found["allocation"] == {"name": "allocation", "status": "skipped", "remedy": "",
                                   "detail": "needs the API to accept the token"}
    unknown = await bkctl("doctor", "-p", "nosuch", "-o", "json", env=api.env())
    assert checks(unknown)["allocation"]["remedy"] == ("check --pool and --namespace; `bkctl pools` lists the "
                                                        "pools you may use")


async def test_api_certificate_from_another_ca(tls_api: TlsApi) -> None:
    """BKCTL_TLS_CA names a CA that did not sign the API's certificate: a failed check with the remedy."""
    other = tls_api.ca.parent / "other"
    other.mkdir()
    wrong_ca = server_certificate(other)[0]
    result = await bkctl("doctor", env=tls_api.api.env(BKCTL_TLS_CA=str(wrong_ca)))
    assert result.code == EXIT_CHECKS_FAILED
    assert "Traceback" not in result.err
    lines = result.out.splitlines()
    assert lines[0].startswith(f"[FAIL] api: cannot connect to {tls_api.api.url}")
    assert "CERTIFICATE_VERIFY_FAILED" in lines[0]
    assert lines[1] == ("       fix: the API's TLS certificate is not trusted here: pass --tls-ca/BKCTL_TLS_CA "
                        "the CA bundle that signed it (--insecure-skip-verify only for a throw-away test setup)")
    assert "[skip] authentication: needs a reachable API and a credential" in lines
    fixed = await bkctl("doctor", "-o", "json", env=tls_api.api.env(BKCTL_TLS_CA=str(tls_api.ca)))
    assert fixed.code == 0 and statuses(fixed)["api"] == "passed", fixed.out


def _health(date: str) -> Reply:
    return Reply(200, b'{"status": "ok"}', {"Content-Type": "application/json", "Date": date})


async def test_clock_skew_and_version_mismatch(fake: FakeServer) -> None:
    five_minutes_ago = email.utils.formatdate(time.time() - 300, usegmt=True)
    fake.routes["/api/v1/health"] = lambda _: _health(five_minutes_ago)
    fake.routes["/api/v1/openapi.json"] = lambda _: Reply(200, b'{"info": {"version": "9.1.0"}}')
    result = await bkctl("doctor", "--endpoint", fake.url, "--token", "t", "-o", "json")
    assert result.code == EXIT_CHECKS_FAILED
    found = checks(result)
    assert found["clock"]["status"] == "failed"
    assert found["clock"]["detail"].startswith("this machine's clock is 30")  # 300 or 301 s
    assert found["clock"]["detail"].endswith("s ahead of the API's (more than 30 s)")
    assert found["clock"]["remedy"].startswith("synchronise the clock")
    assert found["version"]["status"] == "failed"
    assert found["version"]["remedy"] == ("install the bkctl that matches the API: "
                                          "pip install 'buildkit-controller==9.1.0'")
    now = email.utils.formatdate(time.time(), usegmt=True)
    fake.routes["/api/v1/health"] = lambda _: _health(now)
    in_time = await bkctl("doctor", "--endpoint", fake.url, "--token", "t", "-o", "json")
    assert statuses(in_time)["clock"] == "passed"


async def test_not_the_api(fake: FakeServer) -> None:
    result = await bkctl("doctor", "--endpoint", fake.url, "--token", "t")
    assert result.code == EXIT_CHECKS_FAILED
    assert result.out.splitlines()[:2] == [
        f"[FAIL] api: {fake.url} answered HTTP 404 without an API error body; is --endpoint/BKCTL_ENDPOINT the "
        "allocation API?",
        "       fix: --endpoint/BKCTL_ENDPOINT must be the allocation API's base URL, e.g. "
        "http://buildkit-controller.buildkit-system.svc:8082"]
