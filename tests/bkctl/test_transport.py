"""TLS to the API (--tls-ca, --insecure-skip-verify, an untrusted certificate) and timeouts. The API is
real and served over HTTPS by hypercorn; the Kubernetes API server behind it is kubesim (emulated)."""

from __future__ import annotations

import time
from http.server import BaseHTTPRequestHandler

from buildkit_controller.bkctl.errors import EXIT_CONNECT, EXIT_CREDENTIALS

from .conftest import FakeServer, Reply, TlsApi, bkctl
from .test_errors import one_line


async def test_https_with_the_ca(tls_api: TlsApi) -> None:
    env = tls_api.api.env()
    trusted = await bkctl("pools", "--tls-ca", str(tls_api.ca), env=env)
    assert trusted.code == 0 and "builds" in trusted.out, trusted.err
    seed_names = await bkctl("pools", env={**env, "BKCTL_TLS_CA_CERT": str(tls_api.ca)})
    assert seed_names.code == 0, seed_names.err
    skipped = await bkctl("pools", env={**env, "BKCTL_INSECURE_SKIP_VERIFY": "true"})
    assert skipped.code == 0, skipped.err


async def test_https_untrusted_or_bad_ca(tls_api: TlsApi) -> None:
    env = tls_api.api.env()
    one_line(await bkctl("pools", env=env), EXIT_CONNECT, "cannot connect to https://127.0.0.1",
             "CERTIFICATE_VERIFY_FAILED")
    not_a_ca = tls_api.ca.with_name("tls.key")
    one_line(await bkctl("pools", "--tls-ca", str(not_a_ca), env=env), EXIT_CREDENTIALS, "cannot load CA")


async def test_timeout(fake: FakeServer) -> None:
    def slow(_: BaseHTTPRequestHandler) -> Reply:
        time.sleep(2)
        return Reply(200, b'{"pools": []}')
    fake.routes["/api/v1/pools"] = slow
    one_line(await bkctl("pools", "--endpoint", fake.url, "--token", "t", "--timeout", "0.3"), EXIT_CONNECT,
             f"timed out talking to {fake.url}")
