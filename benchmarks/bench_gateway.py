"""The pool gateway side by side with nginx (``stream``, ``ssl_verify_client on``, TLS to the worker).

Needs nginx with the stream module (Debian/Ubuntu, as root)::

    apt-get update && apt-get install -y nginx libnginx-mod-stream

Without it the benchmark says so and exits with status 2. Run from the repository root (about 5
minutes with the defaults on a 2-core VM)::

    .venv/bin/python benchmarks/bench_gateway.py [--rounds 7] [--mib 1024] [--conns 300]
        [--concurrency 8] [--idle 200] [--json bench-gateway.json]

Everything is on 127.0.0.1 with ephemeral ports, bounded in bytes, connections and time; every
process started here is stopped by its PID, also on Ctrl-C. Setup: one PKI made with
``buildkit_controller.core.pki`` (tenant CA, worker CA, the gateway's two certificates, the worker's
certificate for ``buildkit-worker.<pool>.<ns>``, an allocation certificate); a worker stand-in
process (mTLS, thread per connection); ``kubesim serve`` holding one allocated BuildKitWorker; then
``buildkit-gateway`` (uvloop) and nginx (1 worker process, upstream session reuse on, its default),
both with the same certificates, in front of the same worker, driven by the same client.

Targets: ``gateway`` and ``nginx`` as deployed (both resume TLS sessions to the worker: nginx's
``proxy_ssl_session_reuse on`` default, the gateway's ``--worker-session-reuse`` default), and
``gateway-noreuse`` / ``nginx-noreuse`` with that turned off (full handshakes on both sides).
Equal TLS on both: TLS 1.3 to the client (X25519, TLS_AES_256_GCM_SHA384, two session tickets,
the certificate file's chain only) and TLS 1.3 to the worker too. nginx 1.22 would speak TLS 1.2
to its upstream unless told (``proxy_ssl_protocols``; 1.23.4 changed the default), and a TLS 1.2
resumption skips the key exchange and the new tickets that a TLS 1.3 one costs both the proxy
and the worker.

Per round, in an order rotated every round, the proxy's process CPU read from ``/proc``:

``up`` / ``down``     MIB MiB over one connection, client→worker / worker→client: MB/s, CPU s/GiB
``conn``              CONNS short connections, each a full client handshake (client certificate),
                      a 1-byte ping/pong through to the worker, close: connections/s with
                      CONCURRENCY client threads, CPU ms per connection, and time to first byte
                      p50/p99 from CONNS/3 sequential ones. On ``gateway``/``nginx`` this is the
                      "session-resumed" rate (worker side resumed), on ``*-noreuse`` "full-handshake".
``client_resumed``    the same with the client also resuming its session to the proxy
``idle``              IDLE idle proxied connections held open: memory per connection (RSS growth)

The connection tests of all targets run back to back, once in the round's order and once in
reverse, and are summed: load that drifts during a round (the VM is shared) weighs on every target
alike. Each also reports the CPU per connection of the load itself (client threads and worker
stand-in: ``*_loadgen_cpu_ms``), how busy the whole machine was (``*_machine_busy``) and how much
of it went to other work (``*_other_busy``; a warning is printed above 15 %). Connection
rates are bounded by the two cores that the proxy shares with the load, so they dilute the
proxies' difference; the proxy's CPU per connection is the undiluted comparison.

Ratios are medians of per-round ratios (the VM is noisy; see research/performance.md). Floors
(exit status 1 if missed): throughput >= 0.80x nginx both ways, session-resumed connections/s >=
0.85x nginx. The full-handshake ratio is reported, not gated.
"""

from __future__ import annotations

import argparse
import concurrent.futures as cf
import contextlib
import datetime as dt
import json
import os
import shutil
import signal
import socket
import ssl
import statistics
import struct
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

from buildkit_controller.core import pki
from buildkit_controller.core.tokens import new_allocation_id

POOL, NAMESPACE = "bench", "default"
WORKER_NAME = f"buildkit-worker.{POOL}.{NAMESPACE}"
NGINX_MODULE = "/usr/lib/nginx/modules/ngx_stream_module.so"
TICK = os.sysconf("SC_CLK_TCK")
PROCS: list[subprocess.Popen[bytes]] = []
HOUR = dt.timedelta(hours=1)

NGINX_CONF = """load_module {module};
worker_processes 1;
error_log {run}/{name}-error.log error;
pid {run}/{name}.pid;
events {{ worker_connections 8192; }}
stream {{
    server {{
        listen 127.0.0.1:{port} ssl backlog=1024;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {tls}/tls.crt;
        ssl_certificate_key {tls}/tls.key;
        ssl_client_certificate {tls}/ca.crt;
        ssl_verify_client on;
        proxy_pass 127.0.0.1:{worker_port};
        proxy_ssl on;
        proxy_ssl_certificate {wc}/tls.crt;
        proxy_ssl_certificate_key {wc}/tls.key;
        proxy_ssl_trusted_certificate {wc}/ca.crt;
        proxy_ssl_verify on;
        proxy_ssl_name {worker_name};
        proxy_ssl_protocols TLSv1.2 TLSv1.3;
        proxy_ssl_session_reuse {reuse};
    }}
}}
"""


# ------------------------------------------------------------------ PKI and the worker stand-in
def write_pki(root: Path) -> str:
    """All certificates into ``root``; returns the allocation id."""
    since = dt.datetime.now(dt.UTC) - dt.timedelta(minutes=5)
    tenant = pki.create_ca("bench-tenant", lifetime=HOUR * 24, now=since)
    worker = pki.create_ca("bench-worker", lifetime=HOUR * 24, now=since)
    allocation_id = new_allocation_id()
    identity = pki.AllocationIdentity(allocation_id=allocation_id, pool=POOL, namespace=NAMESPACE)
    leaves = {
        "tls": (pki.issue_server_certificate(tenant, dns_names=["localhost"], ip_addresses=["127.0.0.1"],
                                             lifetime=HOUR * 12), tenant),
        "worker-client": (pki.issue_client_certificate(worker, common_name="gateway",
                                                       uris=["buildkit://gateway"], lifetime=HOUR * 12), worker),
        "worker-server": (pki.issue_server_certificate(worker, dns_names=[WORKER_NAME], lifetime=HOUR * 12),
                          worker),
        "client": (pki.issue_allocation_certificate(tenant, identity, lifetime=HOUR * 12), tenant),
        "direct-client": (pki.issue_client_certificate(worker, common_name="direct", uris=["buildkit://direct"],
                                                       lifetime=HOUR * 12), worker),
    }
    for name, (leaf, ca) in leaves.items():
        folder = root / name
        folder.mkdir(parents=True)
        (folder / "tls.crt").write_bytes(leaf.certificate_pem)
        (folder / "tls.key").write_bytes(leaf.private_key_pem or b"")
        (folder / "ca.crt").write_bytes(ca.certificate_pem)
    (root / "serial").write_text(pki.serial_decimal(leaves["client"][0].certificate))
    return allocation_id


def _recv_exact(sock: ssl.SSLSocket, n: int) -> bytes:
    out = bytearray()
    while len(out) < n:
        chunk = sock.recv(n - len(out))
        if not chunk:
            raise EOFError
        out += chunk
    return bytes(out)


def _serve_one(ctx: ssl.SSLContext, raw: socket.socket) -> None:
    """Commands (9-byte header: letter + length): U upload (sink, answer K), D download (source),
    P ping (answer P), E echo."""
    payload = memoryview(bytes(1 << 20))
    with contextlib.suppress(OSError, EOFError), ctx.wrap_socket(raw, server_side=True) as sock:
        header = _recv_exact(sock, 9)
        command, left = header[:1], struct.unpack("!Q", header[1:])[0]
        buffer = bytearray(1 << 20)
        if command == b"P":
            sock.sendall(b"P")
        elif command == b"U":
            while left > 0:
                got = sock.recv_into(buffer)
                if not got:
                    raise EOFError
                left -= got
            sock.sendall(b"K")
        elif command == b"D":
            while left > 0:
                sock.sendall(payload[:min(left, len(payload))])
                left -= min(left, len(payload))
        elif command == b"E":
            while left > 0:
                got = sock.recv_into(buffer, min(left, len(buffer)))
                if not got:
                    raise EOFError
                sock.sendall(memoryview(buffer)[:got])
                left -= got
        sock.recv(1)  # until the client goes away


def worker_main(folder: str) -> None:
    """The worker stand-in (a subprocess): mTLS with the worker CA only, like buildkitd."""
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.load_cert_chain(f"{folder}/tls.crt", f"{folder}/tls.key")
    ctx.load_verify_locations(f"{folder}/ca.crt")
    listener = socket.create_server(("127.0.0.1", 0), backlog=1024)
    print(listener.getsockname()[1], flush=True)
    while True:
        raw, _ = listener.accept()
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        threading.Thread(target=_serve_one, args=(ctx, raw), daemon=True).start()


# ------------------------------------------------------------------ processes
def spawn(command: list[str], **kwargs: Any) -> subprocess.Popen[bytes]:
    process = subprocess.Popen(command, stdin=subprocess.DEVNULL, **kwargs)
    PROCS.append(process)
    return process


def stop_all() -> None:
    for process in reversed(PROCS):
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
    for process in reversed(PROCS):
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    PROCS.clear()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on port {port}")


def tree_cpu(pid: int) -> float:
    """utime+stime (s) of ``pid`` and its children (nginx: master and worker)."""
    total, todo = 0.0, [pid]
    parents: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                parents.setdefault(int(f.read().rsplit(")", 1)[1].split()[1]), []).append(int(entry))
    while todo:
        current = todo.pop()
        with contextlib.suppress(OSError), open(f"/proc/{current}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
            total += sum(int(x) for x in fields[11:15]) / TICK
        todo += parents.get(current, [])
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of ``pid`` and its direct children."""
    pids = [pid]
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            with contextlib.suppress(OSError), open(f"/proc/{entry}/stat") as f:
                if int(f.read().rsplit(")", 1)[1].split()[1]) == pid:
                    pids.append(int(entry))
    total = 0
    for current in pids:
        with contextlib.suppress(OSError), open(f"/proc/{current}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


def api(url: str, path: str, body: dict[str, Any], method: str = "POST",
        content_type: str = "application/json") -> None:
    request = urllib.request.Request(url + path, data=json.dumps(body).encode(), method=method,  # noqa: S310
                                     headers={"Content-Type": content_type})
    with urllib.request.urlopen(request, timeout=10):  # noqa: S310 - kubesim on 127.0.0.1
        pass


def create_worker(url: str, allocation_id: str, serial: str, worker_port: int) -> None:
    from buildkit_controller.controller.crds import render_crds  # noqa: PLC0415 - only the benchmark

    for crd in render_crds():
        api(url, "/apis/apiextensions.k8s.io/v1/customresourcedefinitions", crd)
    time.sleep(0.3)  # the CRD's endpoints appear once it is Established
    now = dt.datetime.now(dt.UTC)
    stamp = "%Y-%m-%dT%H:%M:%SZ"
    base = f"/apis/buildkit.smrt-devops.net/v1alpha1/namespaces/{NAMESPACE}/buildkitworkers"
    api(url, base, {
        "apiVersion": "buildkit.smrt-devops.net/v1alpha1", "kind": "BuildKitWorker",
        "metadata": {"name": "w1", "labels": {"buildkit.smrt-devops.net/pool": POOL}},
        "spec": {"poolRef": {"name": POOL}, "allocation": {
            "id": allocation_id, "tokenHash": "sha256:" + "0" * 64, "subject": "bench", "jobId": "bench",
            "allocatedAt": now.strftime(stamp), "expiresAt": (now + HOUR * 6).strftime(stamp),
            "certSerial": serial}}})
    api(url, base + "/w1/status", {"status": {
        "phase": "Allocated", "endpoint": f"tcp://127.0.0.1:{worker_port}",
        "conditions": [{"type": "Ready", "status": "True", "reason": "PodReady", "message": "",
                        "lastTransitionTime": now.strftime(stamp)}]}},
        method="PATCH", content_type="application/merge-patch+json")


# ------------------------------------------------------------------ the client
class Client:
    """Blocking TLS client (threads for concurrency); one session kept for the ``resumed`` tests."""

    def __init__(self, folder: Path, trust: Path, port: int, server_name: str) -> None:
        self.ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        self.ctx.load_verify_locations(trust)
        self.ctx.load_cert_chain(folder / "tls.crt", folder / "tls.key")
        self.port, self.server_name = port, server_name
        self.session: ssl.SSLSession | None = None

    def connect(self, resume: bool = False) -> ssl.SSLSocket:
        raw = socket.create_connection(("127.0.0.1", self.port), timeout=30)
        raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return self.ctx.wrap_socket(raw, server_hostname=self.server_name,
                                    session=self.session if resume else None)

    def upload(self, nbytes: int) -> None:
        chunk = memoryview(bytes(1 << 20))
        with self.connect() as sock:
            sock.sendall(b"U" + struct.pack("!Q", nbytes))
            for offset in range(0, nbytes, len(chunk)):
                sock.sendall(chunk[:min(len(chunk), nbytes - offset)])
            if sock.recv(1) != b"K":
                raise RuntimeError("upload not acknowledged")

    def download(self, nbytes: int) -> None:
        buffer = bytearray(1 << 20)
        with self.connect() as sock:
            sock.sendall(b"D" + struct.pack("!Q", nbytes))
            while nbytes > 0:
                got = sock.recv_into(buffer)
                if not got:
                    raise EOFError("short download")
                nbytes -= got

    def ping(self, resume: bool = False, keep: bool = False) -> float | None:
        """One short connection; ``keep``: remember its session for ``resume`` (reading it costs
        the client a DER copy of the session, so only when asked)."""
        started = time.perf_counter()
        try:
            with self.connect(resume) as sock:
                sock.sendall(b"P" + struct.pack("!Q", 0))
                ok = sock.recv(1) == b"P"
                elapsed = time.perf_counter() - started
                if keep and ok and (session := sock.session) is not None and session.has_ticket:
                    self.session = session
                if resume and not sock.session_reused:
                    raise RuntimeError("the session was not resumed")
        except (OSError, ssl.SSLError):
            return None
        return elapsed if ok else None

    def echo_check(self, nbytes: int = 8 << 20) -> None:
        import hashlib  # noqa: PLC0415

        data, digest = os.urandom(nbytes), hashlib.sha256()
        with self.connect() as sock:
            sock.sendall(b"E" + struct.pack("!Q", nbytes))
            for offset in range(0, nbytes, 256 << 10):
                piece = data[offset:offset + (256 << 10)]
                sock.sendall(piece)
                digest.update(_recv_exact(sock, len(piece)))
        if digest.digest() != hashlib.sha256(data).digest():
            raise RuntimeError("echo mismatch: the proxy corrupted data")

    def hold(self) -> ssl.SSLSocket:
        """An idle proxied connection, known to reach the worker (echo of 1 byte)."""
        sock = self.connect()
        sock.sendall(b"E" + struct.pack("!Q", 1 << 30) + b"x")
        _recv_exact(sock, 1)
        return sock


# ------------------------------------------------------------------ measurements
def measured(fn: Callable[[], Any], pid: int | None) -> tuple[Any, float, float]:
    cpu = tree_cpu(pid) if pid else 0.0
    started = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - started, (tree_cpu(pid) - cpu) if pid else 0.0


def machine_busy() -> tuple[int, int]:
    """(busy, total) jiffies of all CPUs so far, from /proc/stat (whatever runs, ours or not)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    return sum(fields) - fields[3] - fields[4], sum(fields)


def run_bytes(client: Client, pid: int | None, args: argparse.Namespace) -> dict[str, float]:
    """1 GiB (``--mib``) up and down over one connection: MB/s and the proxy's CPU s per GiB."""
    r: dict[str, float] = {}
    nbytes, gib = args.mib << 20, (args.mib << 20) / 2**30
    for name, fn in (("up", client.upload), ("down", client.download)):
        _, wall, cpu = measured(lambda fn=fn: fn(nbytes), pid)
        r[f"{name}_MBps"], r[f"{name}_cpu_s_per_GiB"] = nbytes / wall / 1e6, cpu / gib
    return r


def loadgen_cpu(worker_pid: int) -> float:
    """CPU seconds of the load: this process (the client threads) and the worker stand-in."""
    own = os.times()
    return own.user + own.system + tree_cpu(worker_pid)


def run_conns(client: Client, pid: int | None, args: argparse.Namespace, tests: str,
              worker_pid: int) -> dict[str, tuple[float, ...]]:
    """Short connections: raw sums per kind, merged over passes by :func:`merge_conns`.

    ``conn``: full client handshakes (the worker side as the proxy has it: resumed by default);
    ``client_resumed`` (``tests == "all"``): the client resumes its session to the proxy too.
    The CPU per connection of the load (:func:`loadgen_cpu`) shows how much of the two cores the
    client and the worker stand-in take themselves."""
    out: dict[str, tuple[float, ...]] = {}
    client.ping(keep=True)  # a fresh session for the client-resumption test
    for kind, resume in (("conn", False), ("client_resumed", True))[:2 if tests == "all" else 1]:
        latencies, _, _ = measured(lambda resume=resume: [client.ping(resume) for _ in range(args.conns // 3)],
                                   pid)
        busy0, load0 = machine_busy(), loadgen_cpu(worker_pid)
        with cf.ThreadPoolExecutor(args.concurrency) as pool:
            results, wall, cpu = measured(
                lambda resume=resume: list(pool.map(lambda _: client.ping(resume), range(args.conns))), pid)
        busy1, load1 = machine_busy(), loadgen_cpu(worker_pid)
        good = sum(1 for x in results if x is not None)
        errors = len(results) - good + sum(1 for x in latencies if x is None)
        out[kind] = (good, wall, cpu, errors, busy1[0] - busy0[0], busy1[1] - busy0[1], load1 - load0,
                     *(x for x in latencies if x is not None))
    return out


def merge_conns(passes: list[dict[str, tuple[float, ...]]]) -> dict[str, float]:
    """Connection metrics of one round from its passes (summed, so a pass in each order of the
    targets weighs the same): rate, proxy CPU per connection, TTFB p50/p99, machine busy share."""
    r: dict[str, float] = {}
    for kind in passes[0]:
        rows = [p[kind] for p in passes]
        good, wall, cpu, errors = (sum(row[i] for row in rows) for i in range(4))
        busy, total, load = (sum(row[i] for row in rows) for i in range(4, 7))
        ok = sorted(x for row in rows for x in row[7:])
        r[f"{kind}_ttfb_p50_ms"] = 1000 * ok[len(ok) // 2]
        r[f"{kind}_ttfb_p99_ms"] = 1000 * ok[max(0, int(len(ok) * 0.99) - 1)]
        r[f"{kind}_per_s"] = good / wall
        r[f"{kind}_cpu_ms"] = 1000 * cpu / max(1, good)
        r[f"{kind}_loadgen_cpu_ms"] = 1000 * load / max(1, good)
        r[f"{kind}_machine_busy"] = busy / max(1, total)
        # What neither the proxy nor the load used: other work on the VM (kubesim idles).
        r[f"{kind}_other_busy"] = max(0.0, busy / TICK - cpu - load) / max(1e-9, total / TICK)
        r[f"{kind}_errors"] = errors
    return r


def idle_memory(client: Client, pid: int, count: int) -> float:
    """RSS growth of the proxy per idle proxied connection, in KiB."""
    time.sleep(0.5)
    before = tree_rss(pid)
    held = [client.hold() for _ in range(count)]
    time.sleep(0.5)
    grown = tree_rss(pid) - before
    for sock in held:
        sock.close()
    time.sleep(0.5)
    return grown / count / 1024


# ------------------------------------------------------------------ set-up and report
def start_gateway(root: Path, run: Path, url: str, name: str, *extra: str) -> tuple[int, int]:
    port, metrics_port = free_port(), free_port()
    process = spawn([str(Path(sys.executable).parent / "buildkit-gateway"), f"--pool={POOL}",
                     f"--namespace={NAMESPACE}", f"--listen=127.0.0.1:{port}",
                     f"--metrics-listen=127.0.0.1:{metrics_port}", f"--tls-dir={root / 'tls'}",
                     f"--worker-client-dir={root / 'worker-client'}", f"--server={url}", "--log-level=warning",
                     "--drain-timeout=2", "--max-connections-per-allocation=100000", *extra],
                    stderr=open(run / f"{name}.log", "wb"))  # noqa: SIM115 - the child owns it
    return port, process.pid


def start_nginx(root: Path, run: Path, name: str, worker_port: int, reuse: str) -> tuple[int, int]:
    port, conf = free_port(), run / f"{name}.conf"
    conf.write_text(NGINX_CONF.format(module=NGINX_MODULE, run=run, name=name, port=port, tls=root / "tls",
                                      wc=root / "worker-client", worker_port=worker_port,
                                      worker_name=WORKER_NAME, reuse=reuse))
    process = spawn(["nginx", "-p", str(run), "-c", str(conf), "-e", str(run / f"{name}-error.log"),
                     "-g", "daemon off;"])
    return port, process.pid


def start_targets(root: Path, run: Path, url: str, worker_port: int, with_direct: bool) -> dict[str, Any]:
    """name -> (Client, pid of the proxy or None, which tests)."""
    started = {
        "gateway": (*start_gateway(root, run, url, "gateway"), "all"),
        "nginx": (*start_nginx(root, run, "nginx", worker_port, "on"), "all"),
        "gateway-noreuse": (*start_gateway(root, run, url, "gateway-noreuse", "--no-worker-session-reuse"),
                            "conn"),
        "nginx-noreuse": (*start_nginx(root, run, "nginx-noreuse", worker_port, "off"), "conn"),
    }
    trust, targets = root / "tls" / "ca.crt", {}
    for name, (port, pid, tests) in started.items():
        wait_port(port)
        targets[name] = (Client(root / "client", trust, port, "localhost"), pid, tests)
    if with_direct:
        targets["direct"] = (Client(root / "direct-client", root / "worker-client" / "ca.crt", worker_port,
                                    WORKER_NAME), None, "all")
    return targets


PAIRS = (("gateway", "nginx"), ("gateway-noreuse", "nginx-noreuse"))


def summarize(results: dict[str, list[dict[str, float]]], memory: dict[str, float]) -> dict[str, Any]:
    """Medians per target and metric, and the median of per-round ratios for each pair."""
    summary: dict[str, Any] = {"medians": {}, "ratios": {}, "idle_KiB_per_conn": memory}
    for name, rounds in results.items():
        summary["medians"][name] = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
    for ours, theirs in PAIRS:
        summary["ratios"][f"{ours}/{theirs}"] = {
            k: statistics.median(a[k] / b[k] for a, b in zip(results[ours], results[theirs], strict=True))
            for k in results[ours][0] if "errors" not in k and all(b[k] for b in results[theirs])}
    keys = list(results["gateway"][0])
    print(f"\n{'metric':24s}" + "".join(f"{n:>16s}" for n in results)
          + "".join(f"{a + '/' + b[:5]:>22s}" for a, b in PAIRS))
    for key in keys:
        cells = [summary["medians"][n].get(key) for n in results]
        ratios = [summary["ratios"][f"{a}/{b}"].get(key) for a, b in PAIRS]
        print(f"{key:24s}" + "".join(f"{v:16.3g}" if v is not None else f"{'-':>16s}" for v in cells)
              + "".join(f"{v:22.2f}" if v is not None else f"{'-':>22s}" for v in ratios))
    for name, kib in memory.items():
        print(f"idle memory per proxied connection, {name}: {kib:.0f} KiB")
    return summary


def check_floors(summary: dict[str, Any], results: dict[str, list[dict[str, float]]]) -> bool:
    ratios = summary["ratios"]["gateway/nginx"]
    checks = [("up_MBps", ratios["up_MBps"], 0.80), ("down_MBps", ratios["down_MBps"], 0.80),
              ("session-resumed conn/s", ratios["conn_per_s"], 0.85)]
    passed = True
    for label, ratio, floor in checks:
        passed &= ratio >= floor
        print(f"{'PASS' if ratio >= floor else 'FAIL'}: {label} {ratio:.2f}x nginx (floor {floor:.2f}x)")
    full = summary["ratios"]["gateway-noreuse/nginx-noreuse"]["conn_per_s"]
    print(f"info: full-handshake conn/s {full:.2f}x nginx (no session reuse on either side)")
    cpu = ratios["conn_cpu_ms"]
    print(f"info: proxy CPU per session-resumed connection {cpu:.2f}x nginx's; connection rates lie "
          f"between 1/{cpu:.2f} = {1 / cpu:.2f}x (proxy CPU-bound) and ~1x (load-bound)")
    other = statistics.median(r["conn_other_busy"] for rounds in results.values() for r in rounds)
    if other > 0.15:
        print(f"warning: other work kept {other:.0%} of the machine busy during the connection tests: "
              "every process, the proxies included, got only its fair share of the cores, which "
              "pushes connection ratios towards the CPU ratio; rerun on a quieter machine")
    return passed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--mib", type=int, default=1024, help="bytes per throughput test, MiB")
    parser.add_argument("--conns", type=int, default=300, help="connections per connection test")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--idle", type=int, default=200, help="idle connections for the memory test")
    parser.add_argument("--direct", action="store_true", help="also measure client→worker without a proxy")
    parser.add_argument("--json")
    parser.add_argument("--worker", help=argparse.SUPPRESS)  # internal: run the worker stand-in
    args = parser.parse_args()
    if args.worker:
        worker_main(args.worker)
        return 0
    if shutil.which("nginx") is None or not Path(NGINX_MODULE).exists():
        print("nginx with the stream module is not installed; install it with:\n"
              "    apt-get update && apt-get install -y nginx libnginx-mod-stream", file=sys.stderr)
        return 2
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))  # unwinds through stop_all
    try:
        return run(args)
    finally:
        stop_all()


def run(args: argparse.Namespace) -> int:
    from kubesim.testing import run_kubesim  # noqa: PLC0415 - only needed past the nginx check

    work = Path(tempfile.mkdtemp(prefix="bench-gateway-"))
    allocation_id = write_pki(work / "pki")
    worker = spawn([sys.executable, __file__, "--worker", str(work / "pki" / "worker-server")],
                   stdout=subprocess.PIPE)
    assert worker.stdout is not None
    worker_port = int(worker.stdout.readline())
    with run_kubesim(work, "--no-https") as sim:
        create_worker(sim.url, allocation_id, (work / "pki" / "serial").read_text(), worker_port)
        targets = start_targets(work / "pki", work, sim.url, worker_port, args.direct)
        for client, _, _ in targets.values():
            _ready(client)
            client.echo_check()
        print(f"# cores={os.cpu_count()} rounds={args.rounds} bytes={args.mib}MiB conns={args.conns} "
              f"concurrency={args.concurrency} loadavg={os.getloadavg()} openssl={ssl.OPENSSL_VERSION}",
              flush=True)
        results: dict[str, list[dict[str, float]]] = {name: [] for name in targets}
        names = list(targets)
        for number in range(args.rounds):
            order = names[number % len(names):] + names[:number % len(names)]
            bulk = {name: run_bytes(targets[name][0], targets[name][1], args)
                    for name in order if targets[name][2] == "all"}
            # The connection tests of all targets back to back, then again in reverse order: a
            # machine whose load drifts during the round weighs on every target alike.
            passes: dict[str, list[dict[str, tuple[float, ...]]]] = {name: [] for name in names}
            for name in order + order[::-1]:
                client, pid, tests = targets[name]
                passes[name].append(run_conns(client, pid, args, tests, worker.pid))
            for name in names:
                results[name].append({**bulk.get(name, {}), **merge_conns(passes[name])})
                print(f"round {number} {name}: " + " ".join(f"{k}={v:.3g}" for k, v in results[name][-1].items()),
                      flush=True)
        memory = {n: idle_memory(c, pid, args.idle) for n, (c, pid, t) in targets.items() if t == "all" and pid}
        summary = summarize(results, memory)
    stop_all()
    shutil.rmtree(work / "pki")  # throwaway keys; the logs stay
    passed = check_floors(summary, results)
    if args.json:
        Path(args.json).write_text(json.dumps({"args": vars(args), "rounds": results, "summary": summary},
                                              indent=1))
    print(f"# logs in {work}")
    return 0 if passed else 1


def _ready(client: Client, timeout: float = 20) -> None:
    """The gateway refuses until its worker cache has synced: wait for a successful ping."""
    deadline = time.monotonic() + timeout
    while client.ping() is None:
        if time.monotonic() > deadline:
            raise RuntimeError(f"no answer through port {client.port}")
        time.sleep(0.2)


if __name__ == "__main__":
    sys.exit(main())
