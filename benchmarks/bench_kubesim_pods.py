"""Benchmark kubesim's pod runtime: pod start latency and bytes through the stand-in buildkitd.

Run:  .venv/bin/python benchmarks/bench_kubesim_pods.py [--pods 5] [--mib 256] [--chunk-kib 1024]

Measures (one process for kubesim and the clients, as tests use it):
- create → Ready for N pods without a process, and for N stand-in buildkitd pods (process, mount
  namespace, exec readiness probe through ``buildctl``);
- the ``Session`` echo stream of one stand-in buildkitd over mTLS: MiB/s each way, direct to the pod
  IP — a baseline for gateway throughput tests.
Needs root (mount namespaces).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import time

import grpc
from kubernetes_asyncio import client

from kubesim import KubeSim
from kubesim.buildkitd.proto import control_pb2, control_pb2_grpc
from kubesim.certs import CA


def _worker(name: str) -> dict:
    container = {
        "name": "buildkitd",
        "image": "moby/buildkit:v0.31.1-rootless",
        "args": [
            "--addr=unix:///run/user/1000/buildkit/buildkitd.sock",
            "--addr=tcp://$(POD_IP):1234",
            "--tlscacert=/certs/ca.crt",
            "--tlscert=/certs/tls.crt",
            "--tlskey=/certs/tls.key",
        ],
        "env": [{"name": "POD_IP", "valueFrom": {"fieldRef": {"fieldPath": "status.podIP"}}}],
        "readinessProbe": {
            "exec": {
                "command": [
                    "buildctl",
                    "--addr=unix:///run/user/1000/buildkit/buildkitd.sock",
                    "debug",
                    "workers",
                ]
            },
            "periodSeconds": 5,
            "timeoutSeconds": 5,
        },
        "volumeMounts": [{"name": "certs", "mountPath": "/certs", "readOnly": True}],
    }
    spec = {
        "containers": [container],
        "volumes": [{"name": "certs", "secret": {"secretName": "certs"}}],
        "automountServiceAccountToken": False,
    }
    return {"metadata": {"name": name, "labels": {"bench": name.split("-", maxsplit=1)[0]}}, "spec": spec}


async def _until_ready(core: client.CoreV1Api, label: str, count: int) -> None:
    while True:
        pods = (await core.list_namespaced_pod("default", label_selector=f"bench={label}")).items
        ready = [p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])]
        if len(ready) == count:
            return
        await asyncio.sleep(0.05)


async def _start(core: client.CoreV1Api, bodies: list[dict], label: str) -> float:
    started = time.monotonic()
    for body in bodies:
        await core.create_namespaced_pod("default", body)
    await _until_ready(core, label, len(bodies))
    return time.monotonic() - started


async def _throughput(ip: str, ca: CA, mib: int, chunk_kib: int) -> float:
    pair = ca.issue("bench")
    creds = grpc.ssl_channel_credentials(ca.pem, pair.key, pair.cert)
    options = [("grpc.ssl_target_name_override", "buildkitd"), ("grpc.max_receive_message_length", 64 << 20)]
    chunk = b"x" * (chunk_kib * 1024)
    count = mib * 1024 // chunk_kib

    async def outgoing():
        for _ in range(count):
            yield control_pb2.BytesMessage(data=chunk)

    async with grpc.aio.secure_channel(f"{ip}:1234", creds, options=options) as channel:
        stub = control_pb2_grpc.ControlStub(channel)
        started = time.monotonic()
        received = 0
        async for message in stub.Session(outgoing()):
            received += len(message.data)
        elapsed = time.monotonic() - started
    assert received == count * len(chunk)
    return mib / elapsed


async def main(args: argparse.Namespace) -> None:
    ca = CA("bench-ca")
    server = ca.issue("buildkitd", server=True, dns=("buildkitd",))
    async with KubeSim(pod_grace_cap=1) as sim, client.ApiClient(client.Configuration(host=sim.url)) as api:
        core = client.CoreV1Api(api)
        data = {
            k: base64.b64encode(v).decode()
            for k, v in {"ca.crt": ca.pem, "tls.crt": server.cert, "tls.key": server.key}.items()
        }
        await core.create_namespaced_secret("default", {"metadata": {"name": "certs"}, "data": data})
        plain = [
            {
                "metadata": {"name": f"plain-{i}", "labels": {"bench": "plain"}},
                "spec": {"containers": [{"name": "c", "image": "nginx"}]},
            }
            for i in range(args.pods)
        ]
        seconds = await _start(core, plain, "plain")
        print(f"{args.pods} pods without a process: Ready after {seconds:.2f} s")
        seconds = await _start(core, [_worker(f"bk-{i}") for i in range(args.pods)], "bk")
        print(f"{args.pods} stand-in buildkitd pods (process + exec probe): Ready after {seconds:.2f} s")
        pod = await core.read_namespaced_pod("bk-0", "default")
        rate = await _throughput(pod.status.pod_ip, ca, args.mib, args.chunk_kib)
        what = f"{args.mib} MiB in {args.chunk_kib} KiB messages"
        print(f"Session echo over mTLS, {what}: {rate:.0f} MiB/s each way")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pods", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--chunk-kib", type=int, default=1024)
    asyncio.run(main(parser.parse_args()))
