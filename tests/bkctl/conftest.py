"""bkctl end to end: the real ``bkctl`` console script, run as a subprocess, against the real allocation
API served by hypercorn on 127.0.0.1 in the test's event loop.

The emulated part is the Kubernetes API server: kubesim runs in-process, with our CRDs, a pool and
its Secrets. Pods do not run: workers are pre-made and marked Idle and Ready through their status,
as the operator would after a real readiness probe. A small threaded HTTP server plays third parties
(the GitHub Actions ID token endpoint, a wrong endpoint, an overloaded API).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import json
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib.metadata import version
from pathlib import Path
from typing import Any

import httpx
import pytest
import pytest_asyncio
from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat
from cryptography.x509.oid import NameOID

from buildkit_controller.controller.api.serve import ApiOptions, run_api
from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.manifests.names import API_VERSION, IDLE_LABEL, POOL_LABEL
from buildkit_controller.controller.manifests.secrets import pool_secret
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core.models import Pool
from buildkit_controller.core.pki import (
    AllocationIdentity,
    create_ca,
    issue_allocation_certificate,
    issue_server_certificate,
)
from buildkit_controller.core.pool_certs import plan_pool_certificates
from buildkit_controller.core.settings import PluginSettings
from buildkit_controller.core.testing import NOW
from buildkit_controller.plugins.token import new_static_token
from kubesim import KubeSim
from kubesim.testing import kubesim  # noqa: F401 - a pytest fixture

BKCTL = str(Path(sys.executable).with_name("bkctl"))
#: Variables of the test process that must not leak into bkctl's environment.
_SCRUB = ("BKCTL_", "ACTIONS_ID_TOKEN_", "BKC_PLUGINS_")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    def json(self) -> Any:
        return json.loads(self.out)


def clean_env(env: Mapping[str, str] | None = None) -> dict[str, str]:
    """This process's environment without bkctl's variables, plus ``env``."""
    return {**{k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}, **(env or {})}


async def bkctl(*args: str, env: Mapping[str, str] | None = None) -> Result:
    """Run the console script with a clean environment (plus ``env``) without blocking the API."""
    proc = await asyncio.create_subprocess_exec(
        BKCTL, *args, env=clean_env(env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=30)
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


@dataclass
class Api:
    url: str
    kube: Kube
    token_dir: Path
    pool: Pool
    token: str = ""

    def new_token(self, subject: str, pools: list[str] | None = None) -> str:
        token, entry = new_static_token(subject, pools)
        self.token_dir.mkdir(exist_ok=True)
        (self.token_dir / subject).write_text(json.dumps(entry))
        return token

    def env(self, **extra: str) -> dict[str, str]:
        return {"BKCTL_ENDPOINT": self.url, "BKCTL_TOKEN": self.token, **extra}


async def _make_pool(kube: Kube, spec: Mapping[str, Any], name: str = "builds", namespace: str = "default") -> Pool:
    body = await kube.create({"apiVersion": API_VERSION, "kind": "BuildKitPool",
                              "metadata": {"name": name, "namespace": namespace}, "spec": dict(spec)})
    pool = Pool.from_body(body)
    for logical, data in plan_pool_certificates(pool, {}, NOW).data.items():
        await kube.create(pool_secret(pool, logical, data))
    return pool


async def _idle_workers(kube: Kube, pool: Pool, count: int) -> None:
    for n in range(count):
        name = f"{pool.name}-worker-{n:03d}"
        await kube.create({"apiVersion": API_VERSION, "kind": "BuildKitWorker",
                           "metadata": {"name": name, "namespace": pool.namespace,
                                        "labels": {POOL_LABEL: pool.name, IDLE_LABEL: "true"}},
                           "spec": {"poolRef": {"name": pool.name}}})
        await kube.patch(API_VERSION, "BuildKitWorker", name, pool.namespace, {"status": {
            "phase": "Idle", "podName": name, "podIP": f"127.0.9.{n + 1}", "endpoint": f"tcp://127.0.9.{n + 1}:1234",
            "conditions": [{"type": "Ready", "status": "True", "reason": "PodReady", "message": "",
                            "lastTransitionTime": "2026-06-01T12:00:00Z"}]}}, status=True)


async def _wait_serving(url: str, task: asyncio.Task[None]) -> None:
    async with httpx.AsyncClient(verify=False) as client:  # noqa: S501 - only waiting for the port
        for _ in range(200):
            if task.done():
                task.result()
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{url}/healthz")).status_code == httpx.codes.OK:
                    return
            await asyncio.sleep(0.05)
    raise TimeoutError("the API did not start")


@contextlib.asynccontextmanager
async def serving(kubesim: KubeSim, tmp_path: Path, tls: tuple[Path, Path] | None = None,  # noqa: F811
                  plugins: PluginSettings | None = None, pool_spec: Mapping[str, Any] | None = None
                  ) -> AsyncIterator[Api]:
    """The allocation API (hypercorn, for real) over kubesim, with pool default/builds and 2 idle workers."""
    kube = await Kube.connect(host=kubesim.url)
    for crd in all_crds():
        await kube.create(crd)
    pool = await _make_pool(kube, pool_spec or {})
    await _idle_workers(kube, pool, 2)
    port = free_port()
    served = Api(url=f"{'https' if tls else 'http'}://127.0.0.1:{port}", kube=kube,
                 token_dir=tmp_path / "tokens", pool=pool)
    served.token = served.new_token("ci-bot")
    stop = asyncio.Event()
    options = ApiOptions(listen=f"127.0.0.1:{port}", server=kubesim.url,
                         certfile=str(tls[0]) if tls else None, keyfile=str(tls[1]) if tls else None,
                         environ={"BKC_AUTH_TOKEN_DIR": str(served.token_dir)})
    task = asyncio.create_task(run_api(options, plugins or PluginSettings(), stop))
    try:
        await _wait_serving(served.url, task)
        yield served
    finally:
        stop.set()
        await asyncio.wait_for(task, timeout=10)
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(signum)
        await kube.close()


@pytest_asyncio.fixture
async def api(kubesim: KubeSim, tmp_path: Path) -> AsyncIterator[Api]:  # noqa: F811
    """The API over plain HTTP."""
    async with serving(kubesim, tmp_path) as served:
        yield served


def server_certificate(directory: Path) -> tuple[Path, Path, Path]:
    """A throw-away CA and a certificate for 127.0.0.1 signed by it: (ca.crt, tls.crt, tls.key)."""
    def name(cn: str) -> x509.Name:
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def build(subject: str, key: ec.EllipticCurvePrivateKey, signer: ec.EllipticCurvePrivateKey,
              issuer: str, ca: bool) -> x509.Certificate:
        now = datetime.datetime.now(datetime.UTC)
        builder = (x509.CertificateBuilder().subject_name(name(subject)).issuer_name(name(issuer))
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=1))
                   .not_valid_after(now + datetime.timedelta(hours=1))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
        if not ca:
            builder = builder.add_extension(x509.SubjectAlternativeName(
                [x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
        return builder.sign(signer, hashes.SHA256())

    ca_key, key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    paths = directory / "ca.crt", directory / "tls.crt", directory / "tls.key"
    paths[0].write_bytes(build("test ca", ca_key, ca_key, "test ca", ca=True).public_bytes(Encoding.PEM))
    paths[1].write_bytes(build("127.0.0.1", key, ca_key, "test ca", ca=False).public_bytes(Encoding.PEM))
    paths[2].write_bytes(key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption()))
    return paths


@dataclass(frozen=True)
class TlsApi:
    api: Api
    ca: Path


@pytest_asyncio.fixture
async def tls_api(kubesim: KubeSim, tmp_path: Path  # noqa: F811
                  ) -> AsyncIterator[TlsApi]:
    """The API over HTTPS, with a certificate from a throw-away CA."""
    ca, cert, key = server_certificate(tmp_path)
    async with serving(kubesim, tmp_path, (cert, key)) as served:
        yield TlsApi(served, ca)


# --- a stand-in for third-party HTTP servers ----------------------------------------------------
@dataclass
class Reply:
    status: int
    body: bytes
    headers: dict[str, str] = field(default_factory=dict)
    body_delay: float = 0.0  # seconds between the headers (sent at once) and the body


def read_json(handler: BaseHTTPRequestHandler) -> Any:
    """The JSON body of the request ``handler`` serves."""
    return json.loads(handler.rfile.read(int(handler.headers.get("Content-Length", "0"))) or b"null")


Route = Callable[[BaseHTTPRequestHandler], Reply]


@dataclass
class FakeServer:
    """Answers GETs and POSTs with the route registered for the path (query excluded)."""

    url: str
    routes: dict[str, Route] = field(default_factory=dict)
    seen: list[str] = field(default_factory=list)
    headers_sent: list[str] = field(default_factory=list)  # paths whose reply's body is delayed, headers out


def _handler(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        date: str | None = None

        def answer(self) -> None:
            fake.seen.append(self.path)
            route = fake.routes.get(self.path.split("?", 1)[0])
            reply = route(self) if route else Reply(404, b"<html>nothing here</html>", {"Content-Type": "text/html"})
            self.date = reply.headers.get("Date")  # a route may set the clock it answers with
            self.send_response(reply.status)
            for name, value in {"Content-Length": str(len(reply.body)), **reply.headers}.items():
                if name != "Date":  # sent by send_response, from date_time_string
                    self.send_header(name, value)
            self.end_headers()
            if reply.body_delay:
                self.wfile.flush()
                fake.headers_sent.append(self.path)
                time.sleep(reply.body_delay)
            self.wfile.write(reply.body)

        do_GET = do_POST = answer

        def date_time_string(self, timestamp: float | None = None) -> str:
            return self.date or super().date_time_string(timestamp)

        def log_message(self, *args: Any) -> None:
            pass

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer(url="")
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler(server))
    server.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()
    thread.join(timeout=5)


# --- a stand-in allocation API, for answers the real one never gives ----------------------------
ALLOCATION_ID = "fakealloc0001"


def allocation_answer(*, usage: str = "client", gateway: str = "tcp://builds.default.svc:1235") -> dict[str, Any]:
    """An allocation answer with real certificates from a throw-away tenant CA; ``usage="server"`` gives a
    certificate signed by that CA but for serverAuth, one the gateway would refuse."""
    ca = create_ca("default/builds tenant CA", lifetime=datetime.timedelta(days=1))
    hour = datetime.timedelta(hours=1)
    if usage == "client":
        leaf = issue_allocation_certificate(
            ca, AllocationIdentity(allocation_id=ALLOCATION_ID, pool="builds", namespace="default"), lifetime=hour)
    else:
        leaf = issue_server_certificate(ca, dns_names=["builds.default.svc"], lifetime=hour)
    return {"workerName": "builds-worker-000", "allocationId": ALLOCATION_ID, "token": f"{ALLOCATION_ID}.s3cret",
            "endpoint": "tcp://127.0.9.1:1234", "gatewayEndpoint": gateway, "expiresAt": "2030-01-01T00:00:00Z",
            "caCert": base64.b64encode(ca.certificate_pem).decode(),
            "clientCert": base64.b64encode(leaf.certificate_pem).decode()}


def play_api(fake: FakeServer, answer: Mapping[str, Any], *, body_delay: float = 0.0) -> list[Any]:
    """Make ``fake`` the allocation API handing out ``answer``; the list fills with the release requests' bodies."""
    released: list[Any] = []

    def ok(body: Any, delay: float = 0.0) -> Reply:
        return Reply(200, json.dumps(body).encode(), {"Content-Type": "application/json"}, body_delay=delay)

    def release(handler: BaseHTTPRequestHandler) -> Reply:
        released.append(read_json(handler))
        return ok({"message": "Worker released successfully"})

    fake.routes.update({
        "/api/v1/health": lambda _: ok({"status": "ok"}),
        "/api/v1/openapi.json": lambda _: ok({"info": {"version": version("buildkit-controller")}}),
        "/api/v1/pools": lambda _: ok({"pools": [{"namespace": "default", "name": "builds"}]}),
        "/api/v1/workers/allocate": lambda _: ok(answer, body_delay),
        "/api/v1/workers/release": release,
    })
    return released
