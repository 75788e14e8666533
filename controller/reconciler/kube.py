"""A small layer over ``kubernetes_asyncio``'s ApiClient: get, list, ensure, patch, delete.

``ensure`` is create-or-update for objects the operator owns: it creates the object when missing and
otherwise merge-patches only the fields the operator manages (labels, annotations and owner
references it sets, ``spec``, ``data``...), and only when they differ — so a reconcile that changes
nothing writes nothing.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

from kubernetes_asyncio import config as kube_config
from kubernetes_asyncio.client import ApiClient, Configuration
from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.crds import GROUP, VERSION

__all__ = ["KINDS", "MERGE", "Kube", "changed_fields", "resource_path"]

# At DEBUG the client logs every response body: TokenReviews echo the reviewed token, and Secrets
# carry keys. Secrets never reach logs, whatever level the root logger is at.
logging.getLogger("kubernetes_asyncio.client.rest").setLevel(logging.INFO)

MERGE = "application/merge-patch+json"
#: Top-level fields the operator owns on the objects it creates (``status`` is written separately).
MANAGED = ("spec", "data", "stringData", "rules", "roleRef", "subjects", "automountServiceAccountToken")


def changed_fields(current: Mapping[str, Any], desired: Mapping[str, Any]) -> dict[str, Any]:
    """The merge patch that makes ``current`` carry ``desired``'s managed fields, or ``{}``."""
    patch: dict[str, Any] = {}
    for key in MANAGED:
        if key in desired and not _contains(current.get(key), desired[key]):
            patch[key] = desired[key]
    meta = {k: v for k, v in desired.get("metadata", {}).items()
            if k in ("labels", "annotations", "ownerReferences")
            and not _contains(current.get("metadata", {}).get(k), v)}
    if meta:
        patch["metadata"] = meta
    return patch


def _contains(current: Any, desired: Any) -> bool:
    """Whether ``current`` already holds everything in ``desired`` (server defaults may add more)."""
    if isinstance(desired, Mapping):
        return isinstance(current, Mapping) and all(_contains(current.get(k), v) for k, v in desired.items())
    if isinstance(desired, list):
        return (isinstance(current, list) and len(current) == len(desired)
                and all(_contains(c, d) for c, d in zip(current, desired, strict=True)))
    return bool(current == desired)


#: (apiVersion, kind) → (plural, namespaced) for every kind the operator touches.
KINDS: Mapping[tuple[str, str], tuple[str, bool]] = {
    ("v1", "Secret"): ("secrets", True),
    ("v1", "ConfigMap"): ("configmaps", True),
    ("v1", "Service"): ("services", True),
    ("v1", "ServiceAccount"): ("serviceaccounts", True),
    ("v1", "Pod"): ("pods", True),
    ("v1", "Namespace"): ("namespaces", False),
    ("v1", "Event"): ("events", True),
    ("apps/v1", "Deployment"): ("deployments", True),
    ("rbac.authorization.k8s.io/v1", "Role"): ("roles", True),
    ("rbac.authorization.k8s.io/v1", "RoleBinding"): ("rolebindings", True),
    ("apiextensions.k8s.io/v1", "CustomResourceDefinition"): ("customresourcedefinitions", False),
    ("kopf.dev/v1", "ClusterKopfPeering"): ("clusterkopfpeerings", False),
    ("authentication.k8s.io/v1", "TokenReview"): ("tokenreviews", False),
    (f"{GROUP}/{VERSION}", "BuildKitPool"): ("buildkitpools", True),
    (f"{GROUP}/{VERSION}", "BuildKitWorker"): ("buildkitworkers", True),
    (f"{GROUP}/{VERSION}", "BuildKitOIDCConfig"): ("buildkitoidcconfigs", True),
}


def resource_path(api_version: str, kind: str, namespace: str | None, name: str | None = None,
                  subresource: str | None = None) -> str:
    """The REST path of a collection or an object, e.g. ``/api/v1/namespaces/ns/secrets/s``."""
    plural, namespaced = KINDS[(api_version, kind)]
    root = f"/api/{api_version}" if "/" not in api_version else f"/apis/{api_version}"
    scope = f"namespaces/{namespace}" if namespaced and namespace else None
    return "/".join(part for part in (root, scope, plural, name, subresource) if part)


class Kube:
    """The operator's API client. Create with :meth:`connect`; close with :meth:`close`.

    Errors surface as ``kubernetes_asyncio.client.exceptions.ApiException`` (``.status``).
    """

    def __init__(self, api: ApiClient) -> None:
        self.api = api

    @classmethod
    async def connect(cls, *, kubeconfig: str | None = None, host: str | None = None) -> Kube:
        """In-cluster config when available, else the kubeconfig (or a bare ``host`` for tests)."""
        configuration = Configuration()
        if host:
            configuration.host = host
        elif kubeconfig:
            await kube_config.load_kube_config(config_file=kubeconfig, client_configuration=configuration)
        else:
            try:
                kube_config.load_incluster_config(client_configuration=configuration)
            except kube_config.ConfigException:
                await kube_config.load_kube_config(client_configuration=configuration)
        api = ApiClient(configuration)
        # kubernetes_asyncio opens its aiohttp session with trust_env=True, which makes aiohttp look
        # for ~/.netrc in a thread on every request: ~40% of the operator's CPU under load (py-spy).
        # Proxies still work through Configuration.proxy; environment proxies are not read.
        api.rest_client.pool_manager._trust_env = False
        return cls(api)

    async def close(self) -> None:
        await self.api.close()

    async def request(self, method: str, path: str, body: Any = None, *, query: Any = None,
                      content_type: str = "application/json") -> dict[str, Any]:
        result = await self.api.call_api(
            path, method, query_params=list((query or {}).items()), body=body,
            header_params={"Accept": "application/json", "Content-Type": content_type},
            response_types_map={200: "object", 201: "object", 202: "object"},
            auth_settings=["BearerToken"], _return_http_data_only=True)
        return dict(result or {})

    async def get(self, api_version: str, kind: str, name: str,
                  namespace: str | None) -> dict[str, Any] | None:
        try:
            return await self.request("GET", resource_path(api_version, kind, namespace, name))
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise

    async def list(self, api_version: str, kind: str, namespace: str | None,
                   labels: Mapping[str, str] | None = None, *, limit: int | None = None) -> list[dict[str, Any]]:
        """Objects of a kind (matching ``labels``); with ``limit``, only the first page of that many."""
        selector = ",".join(f"{k}={v}" for k, v in (labels or {}).items())
        query = {"labelSelector": selector} if selector else {}
        if limit:
            query["limit"] = str(limit)
        found = await self.request("GET", resource_path(api_version, kind, namespace), query=query or None)
        return [dict(item) for item in found.get("items") or []]

    async def create(self, body: Mapping[str, Any]) -> dict[str, Any]:
        namespace = body.get("metadata", {}).get("namespace")
        return await self.request("POST", resource_path(body["apiVersion"], body["kind"], namespace),
                                  dict(body))

    async def patch(self, api_version: str, kind: str, name: str, namespace: str | None,
                    patch: Any, *, status: bool = False, content_type: str = MERGE) -> dict[str, Any]:
        path = resource_path(api_version, kind, namespace, name, "status" if status else None)
        return await self.request("PATCH", path, patch, content_type=content_type)

    async def delete(self, api_version: str, kind: str, name: str, namespace: str | None) -> bool:
        """Delete (background propagation); ``False`` if it was already gone."""
        try:
            await self.request("DELETE", resource_path(api_version, kind, namespace, name),
                               {"propagationPolicy": "Background"})
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    async def token_review(self, token: str, audiences: Sequence[str]) -> Mapping[str, Any]:
        """:class:`~buildkit_controller.core.models.KubeAccess`: the TokenReview's ``status``."""
        review = await self.create({"apiVersion": "authentication.k8s.io/v1", "kind": "TokenReview",
                                    "spec": {"token": token, "audiences": list(audiences)}})
        return dict(review.get("status") or {})

    async def _create_or_get(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        try:
            return await self.create(body), True
        except ApiException as exc:
            if exc.status != 409:  # 409: someone created it meanwhile; go on as if it existed
                raise
        meta = body["metadata"]
        current = await self.get(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            raise RuntimeError(f"{body['kind']} {meta['name']} exists and does not exist")
        return current, False

    async def ensure(self, body: Mapping[str, Any]) -> tuple[dict[str, Any], bool]:
        """Create ``body`` or bring the existing object's managed fields in line; (object, changed)."""
        meta = body["metadata"]
        current = await self.get(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"))
        if current is None:
            current, created = await self._create_or_get(body)
            if created:
                return current, True
        patch = changed_fields(current, body)
        if not patch:
            return current, False
        return await self.patch(body["apiVersion"], body["kind"], meta["name"], meta.get("namespace"),
                                patch), True
