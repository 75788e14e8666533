"""``bkctl doctor`` against the real API (hypercorn, over kubesim, the emulated Kubernetes API server), and
against a stand-in server that plays an API with a wrong clock and another version. The gateway handshake
needs running gateway pods: that part is in test_doctor_dev.py, against the dev mode."""

from __future__ import annotations

import email.utils
import json
import time
from typing import Any

import pytest

from buildkit_controller.bkctl.doctor import Check, Doctor
from buildkit_controller.bkctl.errors import EXIT_CHECKS_FAILED, EXIT_USAGE
from buildkit_controller.bkctl.options import Options
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.core.models import Worker

from .conftest import (
    ALLOCATION_ID,
    Api,
    FakeServer,
    Reply,
    Result,
    TlsApi,
    allocation_answer,
    bkctl,
    play_api,
    server_certificate,
)


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


async def test_api_date_without_a_time_zone_or_not_a_date(fake: FakeServer) -> None:
    """``-0000`` (RFC 5322: UTC, local zone unknown; what email.utils.formatdate writes) is UTC; garbage is
    an unknown clock, not a traceback."""
    fake.routes["/api/v1/health"] = lambda _: _health(email.utils.formatdate(time.time()))
    result = await bkctl("doctor", "--endpoint", fake.url, "--token", "t", "-o", "json")
    assert "Traceback" not in result.err, result.err
    assert checks(result)["clock"]["status"] == "passed", result.out
    fake.routes["/api/v1/health"] = lambda _: _health("around noon")
    garbled = await bkctl("doctor", "--endpoint", fake.url, "--token", "t", "-o", "json")
    assert "Traceback" not in garbled.err, garbled.err
    assert checks(garbled)["clock"] == {"name": "clock", "status": "skipped", "remedy": "",
                                        "detail": "unknown: the API's Date header 'around noon' is not a date"}


@pytest.mark.parametrize("endpoint", ["gw:abc", "gw:99999", "gw:0", "gw", ":1235"])
async def test_a_gateway_endpoint_that_is_not_host_port_is_a_usage_error(api: Api, endpoint: str) -> None:
    """Refused before anything is allocated, as one line."""
    result = await bkctl("doctor", "-p", "builds", "--gateway-endpoint", endpoint, env=api.env())
    assert (result.code, result.out) == (EXIT_USAGE, ""), result.err
    assert result.err == (f"bkctl: error: --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT {endpoint!r} is not HOST:PORT "
                          "(with a port from 1 to 65535)\n")
    workers = await api.kube.list(API_VERSION, "BuildKitWorker", "default")
    assert [Worker.from_body(w).allocation for w in workers] == [None, None]


async def test_an_answer_the_gateway_would_refuse_fails_its_checks_and_is_released(fake: FakeServer) -> None:
    """A certificate signed by the pool's CA but for serverAuth, and a gateway address that is no HOST:PORT:
    two failed checks with what to do, and the allocation released all the same."""
    released = play_api(fake, allocation_answer(usage="server", gateway="tcp://gw:abc"))
    result = await bkctl("doctor", "-p", "builds", "--endpoint", fake.url, "--token", "t", "-o", "json")
    assert result.code == EXIT_CHECKS_FAILED, result.out + result.err
    assert result.err == "bkctl: error: 2 check(s) failed\n"
    found = checks(result)
    assert found["client certificate"]["status"] == "failed"
    assert found["client certificate"]["detail"] == ("the client certificate is not for client authentication "
                                                     "(no clientAuth extended key usage)")
    assert found["client certificate"]["remedy"].startswith("report this to the operator")
    assert found["gateway"]["status"] == "failed"
    assert found["gateway"]["detail"] == "the gateway address 'gw:abc' is not HOST:PORT (with a port from 1 to 65535)"
    assert found["gateway"]["remedy"].startswith("pass --gateway-endpoint/BKCTL_GATEWAY_ENDPOINT HOST:PORT")
    assert found["release"]["status"] == "passed"
    assert released == [{"token": f"{ALLOCATION_ID}.s3cret"}]


async def test_a_client_certificate_for_another_allocation(fake: FakeServer) -> None:
    answer = allocation_answer()
    released = play_api(fake, {**answer, "allocationId": "otheralloc0002", "gatewayEndpoint": "127.0.0.1:1"})
    result = await bkctl("doctor", "-p", "builds", "--endpoint", fake.url, "--token", "t", "-o", "json")
    found = checks(result)
    assert found["client certificate"]["detail"] == (f"the client certificate names buildkit://allocation/"
                                                     f"{ALLOCATION_ID}, not allocation otheralloc0002")
    assert found["release"]["status"] == "passed" and released == [{"token": answer["token"]}]


def test_an_unforeseen_error_is_a_failed_check_not_a_traceback() -> None:
    opts = Options(endpoint="http://127.0.0.1:1", token="t", tls_ca=None, insecure_skip_verify=False,
                   audience="buildkit-controller", output="text")
    doctor = Doctor(opts=opts)
    with doctor.check("gateway"):
        raise RuntimeError("something nobody foresaw")
    with doctor.check("release"):
        doctor.passed("release", "allocation x released")
    [failed, released] = doctor.checks
    assert (failed.name, failed.status, failed.detail) == ("gateway", "failed",
                                                           "unexpected error: RuntimeError: something nobody foresaw")
    assert failed.remedy.startswith("this is a bug in bkctl or an answer it did not expect")
    assert released == Check(name="release", status="passed", detail="allocation x released")
