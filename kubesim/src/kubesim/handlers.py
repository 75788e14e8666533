"""REST handlers for resources: get, list, watch, create, update, patch, delete, deletecollection."""

from __future__ import annotations

import base64
import json
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from . import tables
from .errors import BadRequest, Gone, MethodNotAllowed, NotFound, UnsupportedMediaType
from .faults import Faults
from .patching import apply_patch
from .resources import ResourceType
from .routing import Target
from .selectors import Selector
from .store import Store, WriteOptions
from .watch import WatchRequest, serve_error, serve_watch

__all__ = ["Context", "dispatch", "json_response", "read_body"]


@dataclass(kw_only=True)
class Context:
    """What every handler needs; one per server."""

    store: Store
    faults: Faults
    orphaned: set[str] = field(default_factory=set)  # owner uids deleted with propagationPolicy=Orphan
    bookmark_interval: float = 1.0
    watch_timeout: float = 1800.0
    extra: dict[str, Any] = field(default_factory=dict)


def json_response(body: Any, status: int = 200, warnings: list[str] | None = None) -> web.Response:
    response = web.Response(body=json.dumps(body).encode(), status=status, content_type="application/json")
    for text in warnings or ():
        # RFC 7234 warn-code 299, as kube-apiserver sends them (kubectl prints "Warning: ...").
        quoted = text.replace("\\", "\\\\").replace('"', '\\"')
        response.headers.add("Warning", f'299 - "{quoted}"')
    return response


async def read_body(request: web.Request) -> Any:
    content_type = request.headers.get("Content-Type", "application/json")
    raw = await request.read()
    if "protobuf" in content_type:
        raise UnsupportedMediaType(
            "the body of the request was in an unknown format - accepted media types "
            "include: application/json, application/yaml"
        )
    if not raw:
        return None
    try:
        if "yaml" in content_type:
            return yaml.safe_load(raw)
        return json.loads(raw)
    except (ValueError, yaml.YAMLError) as exc:
        raise BadRequest(f"error decoding request body: {exc}") from exc


def _flag(request: web.Request, name: str) -> bool:
    """Booleans as Go's strconv.ParseBool reads them (clients send ``true``, ``True`` or ``1``)."""
    return request.query.get(name, "").lower() in ("1", "t", "true")


def verb_of(request: web.Request, target: Target) -> str:
    method = request.method
    if method == "GET":
        if target.name:
            return "get"
        return "watch" if target.watch or _flag(request, "watch") else "list"
    if method == "DELETE":
        return "delete" if target.name else "deletecollection"
    return {"POST": "create", "PUT": "update", "PATCH": "patch"}.get(method, method.lower())


def present(rtype: ResourceType, obj: dict[str, Any]) -> dict[str, Any]:
    """The object as seen through the requested API version (CRDs share storage across versions)."""
    if obj.get("apiVersion") == rtype.api_version:
        return obj
    return {**obj, "apiVersion": rtype.api_version}


def _options(request: web.Request, subresource: str = "") -> WriteOptions:
    return WriteOptions(
        field_validation=request.query.get("fieldValidation", ""),
        dry_run=bool(request.query.getall("dryRun", [])),
        subresource=subresource,
    )


def _selector(request: web.Request, target: Target) -> Selector:
    return Selector.parse(
        target.namespace or None, request.query.get("labelSelector"), request.query.get("fieldSelector")
    )


def _encode_continue(rv: int, last: tuple[str, str]) -> str:
    return base64.urlsafe_b64encode(json.dumps({"rv": rv, "start": list(last)}).encode()).decode()


def _decode_continue(token: str) -> tuple[int, tuple[str, str]]:
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        return int(data["rv"]), (data["start"][0], data["start"][1])
    except (ValueError, KeyError, IndexError, TypeError) as exc:
        raise BadRequest("continue key is not valid: incorrect encoded start resourceVersion") from exc


def _page(
    ctx: Context, request: web.Request, objects: list[dict[str, Any]]
) -> tuple[list[dict[str, Any]], str, int, int]:
    """Apply ``continue`` and ``limit``: (page, next token, remaining count, list resourceVersion)."""
    list_rv = ctx.store.resource_version
    token = request.query.get("continue")
    if token:
        list_rv, start = _decode_continue(token)
        if list_rv < ctx.store.log.floor:
            raise Gone(
                "The provided continue parameter is too old to display a consistent list result. "
                "You can start a new list without the continue parameter."
            )
        objects = [o for o in objects if (o["metadata"].get("namespace", ""), o["metadata"]["name"]) > start]
    limit = int(request.query.get("limit") or 0)
    if limit <= 0 or len(objects) <= limit:
        return objects, "", 0, list_rv
    page = objects[:limit]
    last = (page[-1]["metadata"].get("namespace", ""), page[-1]["metadata"]["name"])
    return page, _encode_continue(list_rv, last), len(objects) - limit, list_rv


async def do_list(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    objects = ctx.store.items(rtype.key, _selector(request, target))
    page, token, remaining, list_rv = _page(ctx, request, objects)
    if tables.wants_table(request.headers.get("Accept", "")):
        return json_response(
            tables.table(
                rtype,
                [present(rtype, o) for o in page],
                include=request.query.get("includeObject", "Metadata"),
                resource_version=str(list_rv),
                continue_token=token,
            )
        )
    meta: dict[str, Any] = {"resourceVersion": str(list_rv)}
    if token:
        meta.update({"continue": token, "remainingItemCount": remaining})
    return json_response(
        {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": meta,
            "items": [present(rtype, o) for o in page],
        }
    )


async def do_watch(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.StreamResponse:
    query = request.query
    timeout = float(query.get("timeoutSeconds") or ctx.watch_timeout)
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    include = query.get("includeObject", "Metadata")

    def render(obj: dict[str, Any], first: bool) -> dict[str, Any]:
        obj = present(rtype, obj)
        if as_table:
            return tables.table(
                rtype,
                [obj],
                include=include,
                headers=first,
                resource_version=obj["metadata"].get("resourceVersion", ""),
            )
        return obj

    req = WatchRequest(
        rtype=rtype,
        selector=_selector(request, target),
        resource_version=query.get("resourceVersion", ""),
        send_initial=_flag(request, "sendInitialEvents"),
        bookmarks=_flag(request, "allowWatchBookmarks"),
        timeout=timeout,
        bookmark_interval=ctx.bookmark_interval,
    )
    return await serve_watch(request, ctx.store, req, render)


async def do_get(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    obj = present(rtype, ctx.store.get(rtype, target.namespace, target.name))
    if tables.wants_table(request.headers.get("Accept", "")):
        return json_response(
            tables.table(
                rtype,
                [obj],
                include=request.query.get("includeObject", "Metadata"),
                resource_version=obj["metadata"]["resourceVersion"],
            )
        )
    return json_response(obj)


def _require_object(body: Any) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise BadRequest("the request body must be a JSON object")
    return body


async def do_create(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    if rtype.namespaced and not target.namespace:
        raise MethodNotAllowed(
            f"the server does not allow this method on the requested resource "
            f"({rtype.plural} must be created in a namespace)"
        )
    body = _require_object(await read_body(request))
    opts = _options(request)
    obj = ctx.store.create(rtype, target.namespace, body, opts)
    return json_response(present(rtype, obj), 201, opts.warnings)


async def do_update(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    body = _require_object(await read_body(request))
    opts = _options(request, target.subresource)
    obj = ctx.store.update(rtype, target.namespace, target.name, body, opts)
    return json_response(present(rtype, obj), warnings=opts.warnings)


async def do_patch(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    content_type = request.headers.get("Content-Type", "")
    body = await read_body(request)
    opts = _options(request, target.subresource)
    if "apply-patch" in content_type and ctx.store.find(rtype, target.namespace, target.name) is None:
        created = ctx.store.create(
            rtype,
            target.namespace,
            {**_require_object(body), "metadata": {**(body.get("metadata") or {}), "name": target.name}},
            opts,
        )
        return json_response(present(rtype, created), 201, opts.warnings)

    def patcher(current: dict[str, Any]) -> dict[str, Any]:
        return apply_patch(content_type, current, body, custom=rtype.custom, kind=rtype.kind, name=target.name)

    obj = ctx.store.patch(rtype, target.namespace, target.name, patcher, opts)
    return json_response(present(rtype, obj), warnings=opts.warnings)


def _delete_options(request: web.Request, body: Any) -> dict[str, Any]:
    options = dict(body) if isinstance(body, dict) else {}
    for key in ("gracePeriodSeconds", "propagationPolicy"):
        if key in request.query:
            options[key] = request.query[key]
    return options


def _grace(rtype: ResourceType, obj: dict[str, Any], options: dict[str, Any]) -> int:
    """Only pods bound to a node get graceful deletion (their kubelet must confirm it)."""
    spec = obj.get("spec") or {}
    if rtype.kind != "Pod" or not spec.get("nodeName"):
        return 0
    given = options.get("gracePeriodSeconds")
    return int(given if given is not None else spec.get("terminationGracePeriodSeconds", 30))


def _delete_one(
    ctx: Context, request: web.Request, rtype: ResourceType, obj: dict[str, Any], options: dict[str, Any]
) -> dict[str, Any]:
    meta = obj["metadata"]
    if options.get("propagationPolicy") == "Orphan":
        ctx.orphaned.add(meta["uid"])
    return ctx.store.delete(
        rtype,
        meta.get("namespace", ""),
        meta["name"],
        grace=_grace(rtype, obj, options),
        preconditions=options.get("preconditions"),
        dry_run=bool(request.query.getall("dryRun", [])),
    )


async def do_delete(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    options = _delete_options(request, await read_body(request))
    current = ctx.store.get(rtype, target.namespace, target.name)
    result = _delete_one(ctx, request, rtype, current, options)
    still_there = ctx.store.find(rtype, target.namespace, target.name) is not None
    if still_there or rtype.custom or rtype.kind == "Pod":
        # A real server answers 200 for graceful pod deletion too (202 only for orphanDependents=false).
        return json_response(present(rtype, result), 200)
    return json_response(
        {
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Success",
            "details": {
                "name": target.name,
                "group": rtype.group,
                "kind": rtype.plural,
                "uid": result["metadata"]["uid"],
            },
        }
    )


async def do_delete_collection(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.Response:
    options = _delete_options(request, await read_body(request))
    objects = ctx.store.items(rtype.key, _selector(request, target))
    deleted = [present(rtype, _delete_one(ctx, request, rtype, obj, options)) for obj in objects]
    return json_response(
        {
            "kind": f"{rtype.kind}List",
            "apiVersion": rtype.api_version,
            "metadata": {"resourceVersion": str(ctx.store.resource_version)},
            "items": deleted,
        }
    )


_HANDLERS = {
    "get": do_get,
    "list": do_list,
    "watch": do_watch,
    "create": do_create,
    "update": do_update,
    "patch": do_patch,
    "delete": do_delete,
    "deletecollection": do_delete_collection,
}


async def dispatch(ctx: Context, request: web.Request, rtype: ResourceType, target: Target) -> web.StreamResponse:
    verb = verb_of(request, target)
    resource = f"{rtype.plural}/{target.subresource}" if target.subresource else rtype.plural
    try:
        await ctx.faults.apply(verb, resource, target.namespace, target.name)
    except Gone as exc:
        if verb != "watch":
            raise
        return await serve_error(request, exc)  # real servers report expiry inside the watch stream
    if target.subresource and (target.subresource not in rtype.subresources or verb not in ("get", "update", "patch")):
        raise NotFound("the server could not find the requested resource")
    if not target.subresource and verb not in rtype.verbs:
        raise MethodNotAllowed("the server does not allow this method on the requested resource")
    return await _HANDLERS[verb](ctx, request, rtype, target)
