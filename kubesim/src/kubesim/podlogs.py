"""``GET /api/v1/namespaces/NS/pods/NAME/log``: a container's output, as ``kubectl logs`` reads it.

Query parameters: ``container`` (required when the pod has several), ``previous``, ``tailLines``,
``limitBytes``, ``follow`` (streams new output until the container stops or the client goes).
``timestamps`` and ``sinceSeconds`` are ignored. Containers without a process have an empty log.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import BadRequest, NotFound
from .resources import ResourceType

if TYPE_CHECKING:
    from .kubelet.kubelet import Kubelet
    from .store import Store

__all__ = ["serve_log"]


def _container(pod: dict[str, object], wanted: str | None, name: str) -> str:
    containers = [c["name"] for c in (pod.get("spec") or {}).get("containers") or ()]  # type: ignore[attr-defined]
    if wanted:
        if wanted not in containers:
            raise BadRequest(f"container {wanted} is not valid for pod {name}")
        return wanted
    if len(containers) != 1:
        raise BadRequest(f"a container name must be specified for pod {name}, choose one of: [{' '.join(containers)}]")
    return str(containers[0])


async def serve_log(
    *,
    store: Store,
    kubelet: Kubelet | None,
    request: web.Request,
    rtype: ResourceType,
    namespace: str,
    name: str,
) -> web.StreamResponse:
    pod = store.get(rtype, namespace, name)
    container = _container(pod, request.query.get("container"), name)
    worker = kubelet.worker(namespace, name) if kubelet else None
    previous = request.query.get("previous") == "true"
    path = worker.log_path(container, previous) if worker else None
    if previous and (path is None or not path.exists()):
        raise BadRequest(f'previous terminated container "{container}" in pod "{name}" not found')
    data = path.read_bytes() if path is not None and path.exists() else b""
    if "tailLines" in request.query:
        lines = data.splitlines(keepends=True)
        data = b"".join(lines[-int(request.query["tailLines"]) :]) if int(request.query["tailLines"]) else b""
    if "limitBytes" in request.query:
        data = data[: int(request.query["limitBytes"])]
    if request.query.get("follow") != "true" or path is None or previous:
        return web.Response(body=data, content_type="text/plain")
    response = web.StreamResponse(headers={"Content-Type": "text/plain"})
    await response.prepare(request)
    await response.write(data)
    offset = path.stat().st_size if path.exists() else 0
    await _follow(
        response=response,
        path=path,
        offset=offset,
        kubelet=kubelet,
        ns=namespace,
        name=name,
        container=container,
    )
    return response


async def _follow(
    *,
    response: web.StreamResponse,
    path: Path,
    offset: int,
    kubelet: Kubelet | None,
    ns: str,
    name: str,
    container: str,
) -> None:
    while True:
        worker = kubelet.worker(ns, name) if kubelet else None
        runner = next((r for r in worker.runners if r.name == container), None) if worker else None
        if path.exists() and path.stat().st_size > offset:
            with path.open("rb") as handle:
                handle.seek(offset)
                chunk = handle.read()
            offset += len(chunk)
            await response.write(chunk)
        elif runner is None or "running" not in runner.state:
            return
        await asyncio.sleep(0.2)


def not_found() -> NotFound:
    return NotFound("the server could not find the requested resource")
