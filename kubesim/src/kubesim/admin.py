"""``/kubesim/...``: fault injection over HTTP, for tests whose client runs in another process.

POST   /kubesim/faults          {"verb", "resource", "status", "count", "delay", ...}  → the rule
GET    /kubesim/faults          → active rules
DELETE /kubesim/faults          → clear all rules
POST   /kubesim/watches/drop    ?resource=PLURAL (optional) → {"dropped": N}
POST   /kubesim/history/expire  → {"resourceVersion": RV}; watching from older versions is 410
GET    /kubesim/names           → {"svc.ns.svc": "127.B.128.1", "svc.ns.svc.cluster.local": ...}
"""

from __future__ import annotations

import json
from typing import TYPE_CHECKING

from aiohttp import web

from .errors import BadRequest
from .faults import FaultRule

if TYPE_CHECKING:
    from .server import KubeSim

__all__ = ["admin_routes"]

_RULE_FIELDS = frozenset(
    {"verb", "resource", "namespace", "name", "status", "message", "delay", "count", "retry_after"}
)


def admin_routes(sim: KubeSim) -> list[web.RouteDef]:
    async def add_fault(request: web.Request) -> web.Response:
        try:
            spec = await request.json()
        except json.JSONDecodeError as exc:
            raise BadRequest(f"fault rule must be JSON: {exc}") from exc
        unknown = set(spec) - _RULE_FIELDS
        if unknown:
            raise BadRequest(f"unknown fault rule fields: {sorted(unknown)}")
        rule = sim.faults.add(FaultRule(**spec))
        return web.json_response(rule.to_json(), status=201)

    async def list_faults(_: web.Request) -> web.Response:
        return web.json_response([rule.to_json() for rule in sim.faults.rules])

    async def clear_faults(_: web.Request) -> web.Response:
        sim.faults.clear()
        return web.json_response([])

    async def drop_watches(request: web.Request) -> web.Response:
        return web.json_response({"dropped": sim.drop_watches(request.query.get("resource"))})

    async def expire_history(_: web.Request) -> web.Response:
        return web.json_response({"resourceVersion": str(sim.expire_history())})

    async def names(_: web.Request) -> web.Response:
        return web.json_response(sim.names())

    return [
        web.get("/kubesim/names", names),
        web.post("/kubesim/faults", add_fault),
        web.get("/kubesim/faults", list_faults),
        web.delete("/kubesim/faults", clear_faults),
        web.post("/kubesim/watches/drop", drop_watches),
        web.post("/kubesim/history/expire", expire_history),
    ]
