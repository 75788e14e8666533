"""``bkctl build``: allocate, create a remote buildx builder, build, and always clean up.

docker and its buildx plugin cannot be installed on these machines, so docker is emulated: a small Python
script written by each test plays ``docker``, appending every invocation (argv, and for ``buildx create``
whether the certificate files existed and their modes) to a log, exiting with a chosen code, and, for
``buildx build``, optionally sleeping so that a test can signal bkctl mid-build. Everything else is real:
the bkctl console script, the allocation API (hypercorn) and a cache plugin installed as a distribution,
over kubesim (the emulated Kubernetes API server).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import textwrap
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from cryptography import x509
from stevedore import ExtensionManager

from buildkit_controller.bkctl.errors import EXIT_DOCKER, EXIT_NOT_FOUND
from buildkit_controller.controller.manifests.names import API_VERSION
from buildkit_controller.core.models import Worker
from buildkit_controller.core.settings import PluginSettings
from kubesim import KubeSim

from .conftest import (
    ALLOCATION_ID,
    BKCTL,
    Api,
    FakeServer,
    Reply,
    Result,
    allocation_answer,
    bkctl,
    clean_env,
    play_api,
    serving,
)

GATEWAY = "tcp://builds.default.svc:1235"  # the pool's gatewayEndpoint, as the API returns it
CACHE_FROM = "type=registry,ref=registry.example/cache:builds"
CACHE_TO = "type=registry,ref=registry.example/cache:builds,mode=max"

FAKE_DOCKER = """\
#!{python}
import json, os, signal, stat, sys, time
from pathlib import Path

args = sys.argv[1:]
log = Path(os.environ["FAKE_DOCKER_LOG"])

def note(**more):
    with log.open("a") as out:
        out.write(json.dumps({{"argv": args, **more}}) + "\\n")

def mode(path):
    return oct(stat.S_IMODE(os.stat(path).st_mode)) if os.path.exists(path) else None

if args[:2] == ["buildx", "create"]:
    opts = dict(part.split("=", 1) for part in args[args.index("--driver-opt") + 1].split(","))
    paths = {{name: opts[name] for name in ("cacert", "cert", "key")}}
    note(modes={{name: mode(path) for name, path in paths.items()}},
         dir_mode=mode(os.path.dirname(paths["key"])), client_cert=Path(paths["cert"]).read_text())
    print(args[args.index("--name") + 1])
    sys.exit(int(os.environ.get("FAKE_DOCKER_CREATE_EXIT", "0")))
if args[:2] == ["buildx", "build"]:
    def stop(signum, frame):
        note(signal=signum)
        sys.exit(128 + signum)
    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    note(started=True)
    print("fake build output", flush=True)
    if "FAKE_DOCKER_KILL" in os.environ:  # as the OOM killer would
        os.kill(os.getpid(), int(os.environ["FAKE_DOCKER_KILL"]))
    time.sleep(float(os.environ.get("FAKE_DOCKER_SLEEP", "0")))
    sys.exit(int(os.environ.get("FAKE_DOCKER_EXIT", "0")))
note()
"""

CACHE_PLUGIN = f"""
from buildkit_controller.core import hookimpl
from buildkit_controller.core.models import CacheOptions

class RegistryHints:
    @hookimpl
    def bkc_cache_client_options(self, backend, pool):
        return CacheOptions(cache_from=({CACHE_FROM!r},), cache_to=({CACHE_TO!r},))
"""


@dataclass
class FakeDocker:
    path: Path
    log: Path

    def calls(self) -> list[dict[str, Any]]:
        if not self.log.exists():
            return []
        return [json.loads(line) for line in self.log.read_text().splitlines()]

    def call(self, *subcommand: str) -> dict[str, Any]:
        found = [c for c in self.calls() if c["argv"][:len(subcommand)] == list(subcommand) and "signal" not in c]
        assert len(found) == 1, self.calls()
        return found[0]

    def env(self, api: Api, **extra: str) -> dict[str, str]:
        return api.env(BKCTL_DOCKER=str(self.path), FAKE_DOCKER_LOG=str(self.log), **extra)


@pytest.fixture
def docker(tmp_path: Path) -> FakeDocker:
    path = tmp_path / "bin" / "docker"
    path.parent.mkdir()
    path.write_text(FAKE_DOCKER.format(python=sys.executable))
    path.chmod(0o755)
    return FakeDocker(path, tmp_path / "docker.log")


@pytest.fixture
def cache_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A cache plugin (``registry-hints``) installed as a distribution, handing out cache hints."""
    site = tmp_path / "site"
    info = site / "fake_registry_hints-1.0.dist-info"
    info.mkdir(parents=True)
    (site / "fake_registry_hints.py").write_text(textwrap.dedent(CACHE_PLUGIN))
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-registry-hints\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(
        "[buildkit_controller.cache]\nregistry-hints = fake_registry_hints:RegistryHints\n")
    monkeypatch.syspath_prepend(str(site))
    monkeypatch.setattr(ExtensionManager, "ENTRY_POINT_CACHE", {})  # stevedore caches entry points per process
    yield
    sys.modules.pop("fake_registry_hints", None)


@pytest_asyncio.fixture
async def api(kubesim: KubeSim, tmp_path: Path, cache_plugin: None) -> AsyncIterator[Api]:
    """The API over HTTP; pool default/builds has a cache backend whose plugin hands out hints."""
    plugins = PluginSettings.from_env({"BKC_PLUGINS_CACHE": "local,registry-hints"})
    spec = {"cache": {"backends": [{"type": "registry-hints", "registry-hints": {}}]}}
    async with serving(kubesim, tmp_path, plugins=plugins, pool_spec=spec) as served:
        yield served


def allocation_id(client_cert_pem: str) -> str:
    cert = x509.load_pem_x509_certificate(client_cert_pem.encode())
    uris = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    [uri] = uris.get_values_for_type(x509.UniformResourceIdentifier)
    return uri.removeprefix("buildkit://allocation/")


async def assert_cleaned_up(docker: FakeDocker, api: Api) -> None:
    """The builder was removed, the certificates are gone, the allocation was released."""
    created = docker.call("buildx", "create")
    builder = created["argv"][created["argv"].index("--name") + 1]
    assert docker.call("buildx", "rm")["argv"] == ["buildx", "rm", builder]
    opts = dict(part.split("=", 1) for part in created["argv"][created["argv"].index("--driver-opt") + 1].split(","))
    assert not Path(opts["key"]).parent.exists()
    status = await bkctl("status", allocation_id(created["client_cert"]), env=api.env())
    assert status.code == EXIT_NOT_FOUND, status.err


USER_ARGS = ["-t", "registry.example/app:1", "--build-arg", "GREETING=hello world", "-o", "type=local,dest=out",
             "--push", "."]


async def test_build_creates_the_remote_builder_and_cleans_up(api: Api, docker: FakeDocker) -> None:
    result = await bkctl("build", "-p", "builds", "--", *USER_ARGS, env=docker.env(api))
    assert result.code == 0, result.err
    assert result.out == "fake build output\n"  # the build's stdout only (buildx create's is not passed on)
    created = docker.call("buildx", "create")
    builder = created["argv"][created["argv"].index("--name") + 1]
    assert created["argv"][:6] == ["buildx", "create", "--name", builder, "--driver", "remote"]
    assert created["argv"][-1] == GATEWAY
    assert created["modes"] == {"cacert": "0o600", "cert": "0o600", "key": "0o600"}  # there while docker ran
    assert created["dir_mode"] == "0o700"
    assert "servername=" not in created["argv"][7]
    build = docker.call("buildx", "build")
    assert build["argv"] == ["buildx", "build", "--builder", builder, "--cache-from", CACHE_FROM,
                             "--cache-to", CACHE_TO, *USER_ARGS]
    await assert_cleaned_up(docker, api)


async def test_the_seed_readmes_build_command(api: Api, docker: FakeDocker) -> None:
    seed = ["--platform", "linux/amd64,linux/arm64", "--tag", "myapp:latest", "--push", "."]
    result = await bkctl("build", "--pool", "builds", "--", *seed, env=docker.env(api))
    assert result.code == 0, result.err
    assert docker.call("buildx", "build")["argv"][-len(seed):] == seed
    await assert_cleaned_up(docker, api)


async def test_own_cache_flags_replace_the_hints(api: Api, docker: FakeDocker) -> None:
    mine = ["--cache-from=type=gha", "."]
    result = await bkctl("build", "-p", "builds", "--gateway-endpoint", "127.0.0.1:31235", "--", *mine,
                         env=docker.env(api))
    assert result.code == 0, result.err
    assert docker.call("buildx", "build")["argv"][4:] == ["--cache-to", CACHE_TO, *mine]
    created = docker.call("buildx", "create")["argv"]
    assert created[-1] == "tcp://127.0.0.1:31235"
    assert created[7].endswith(",servername=builds.default.svc")  # the name the gateway's certificate carries


async def test_failing_build_keeps_its_exit_code(api: Api, docker: FakeDocker) -> None:
    result = await bkctl("build", "-p", "builds", "--", ".", env=docker.env(api, FAKE_DOCKER_EXIT="17"))
    assert result.code == 17, result.err
    await assert_cleaned_up(docker, api)


async def test_failing_create_is_one_line_and_cleans_up(api: Api, docker: FakeDocker) -> None:
    result = await bkctl("build", "-p", "builds", "--", ".", env=docker.env(api, FAKE_DOCKER_CREATE_EXIT="1"))
    assert result.code == EXIT_DOCKER
    assert result.err.startswith("bkctl: error: docker buildx create failed (exit 1)"), result.err
    assert [c["argv"][1] for c in docker.calls()] == ["create", "rm"]  # no build
    await assert_cleaned_up(docker, api)


async def test_missing_docker(api: Api, tmp_path: Path) -> None:
    result = await bkctl("build", "-p", "builds", "--docker", str(tmp_path / "nodocker"), "--", ".", env=api.env())
    assert result.code == EXIT_DOCKER
    assert result.err == (f"bkctl: error: docker executable '{tmp_path / 'nodocker'}' not found; install Docker "
                          "with the buildx plugin, or point --docker/BKCTL_DOCKER at it\n")
    workers = await api.kube.list(API_VERSION, "BuildKitWorker", "default")
    assert [Worker.from_body(w).allocation for w in workers] == [None, None]  # nothing was allocated


async def signal_when(ready: Callable[[], bool], signum: int, *args: str, env: dict[str, str]) -> Result:
    """Run bkctl (in a session of its own), send it ``signum`` once ``ready()``; kill what is left after."""
    proc = await asyncio.create_subprocess_exec(BKCTL, *args, env=clean_env(env), stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.PIPE, start_new_session=True)
    try:
        deadline = time.monotonic() + 20
        while not ready():
            assert time.monotonic() < deadline, "bkctl never got there"
            await asyncio.sleep(0.05)
        proc.send_signal(signum)  # to bkctl alone, as `kill` or a CI runner would: bkctl forwards it
        out, err = await asyncio.wait_for(proc.communicate(), timeout=20)
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)  # bkctl and its docker child, if a check above failed
    assert proc.returncode is not None
    return Result(proc.returncode, out.decode(), err.decode())


def build_started(docker: FakeDocker) -> Callable[[], bool]:
    return lambda: any(c.get("started") for c in docker.calls())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM])
async def test_signal_is_forwarded_then_everything_is_cleaned_up(api: Api, docker: FakeDocker,
                                                                 signum: signal.Signals) -> None:
    started = time.monotonic()
    result = await signal_when(build_started(docker), signum, "build", "-p", "builds", "--", ".",
                               env=docker.env(api, FAKE_DOCKER_SLEEP="30"))
    assert result.code == 128 + signum, result.err
    assert time.monotonic() - started < 15  # did not sit out the 30 s build
    assert [c["signal"] for c in docker.calls() if "signal" in c] == [signum]  # forwarded once
    assert result.err == f"bkctl: interrupted by {signum.name}; cleaned up\n"
    await assert_cleaned_up(docker, api)


async def test_signal_while_waiting_for_the_allocation(fake: FakeServer, docker: FakeDocker) -> None:
    """Nothing to clean up yet: bkctl stops at once, and docker is never run."""
    def queued(_: BaseHTTPRequestHandler) -> Reply:
        time.sleep(2)
        return Reply(503, b'{"error": "no_capacity", "message": "full"}')
    fake.routes["/api/v1/workers/allocate"] = queued
    env = {"BKCTL_ENDPOINT": fake.url, "BKCTL_TOKEN": "t", "BKCTL_DOCKER": str(docker.path)}
    result = await signal_when(lambda: "/api/v1/workers/allocate" in fake.seen, signal.SIGTERM,
                               "build", "-p", "builds", "--", ".", env=env)
    assert (result.code, result.err) == (128 + signal.SIGTERM, "bkctl: interrupted by SIGTERM while allocating\n")
    assert docker.calls() == []


async def test_build_killed_by_a_signal_bkctl_did_not_send(api: Api, docker: FakeDocker) -> None:
    """SIGKILL (the OOM killer, say): 128 + 9 as a shell says it, not Python's -9 (which would exit 247)."""
    result = await bkctl("build", "-p", "builds", "--", ".",
                         env=docker.env(api, FAKE_DOCKER_KILL=str(int(signal.SIGKILL))))
    assert result.code == 128 + signal.SIGKILL, result.err
    assert result.err == "bkctl: docker buildx build was killed by SIGKILL, exit 137\n"
    await assert_cleaned_up(docker, api)


async def test_signal_after_the_api_answered_still_releases(fake: FakeServer, docker: FakeDocker,
                                                           tmp_path: Path) -> None:
    """The answer's headers are in, its body not yet: the signal waits for the answer, which is then released."""
    released = play_api(fake, allocation_answer(), body_delay=3)
    temp = tmp_path / "tmp"
    temp.mkdir()
    first: list[float] = []

    def answering() -> bool:  # the headers went out a moment ago: bkctl has read them by now
        if fake.headers_sent and not first:
            first.append(time.monotonic())
        return bool(first) and time.monotonic() - first[0] > 1.0

    env = {"BKCTL_ENDPOINT": fake.url, "BKCTL_TOKEN": "t", "BKCTL_DOCKER": str(docker.path),
           "FAKE_DOCKER_LOG": str(docker.log), "TMPDIR": str(temp)}
    result = await signal_when(answering, signal.SIGTERM, "build", "-p", "builds", "--", ".", env=env)
    assert (result.code, result.err) == (128 + signal.SIGTERM, "bkctl: interrupted by SIGTERM; cleaned up\n")
    assert released == [{"token": f"{ALLOCATION_ID}.s3cret"}]
    assert docker.calls() == []  # no builder was created after the signal
    assert list(temp.iterdir()) == []  # nor certificates left behind


async def test_an_answer_without_a_token_is_a_warning(fake: FakeServer, docker: FakeDocker) -> None:
    answer = {k: v for k, v in allocation_answer().items() if k != "token"}
    released = play_api(fake, answer)
    env = {"BKCTL_ENDPOINT": fake.url, "BKCTL_TOKEN": "t", "BKCTL_DOCKER": str(docker.path),
           "FAKE_DOCKER_LOG": str(docker.log)}
    result = await bkctl("build", "-p", "builds", "--", ".", env=env)
    assert result.code == 0, result.err
    assert result.err == (f"bkctl: warning: could not release allocation {ALLOCATION_ID} (the allocation answer "
                          "carries no token to release it with); it ends at 2030-01-01T00:00:00Z\n")
    assert released == []
    assert [c["argv"][1] for c in docker.calls()] == ["create", "build", "rm"]
