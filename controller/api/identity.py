"""The API's identity CA (one Secret, shared by every replica) and the CAs its TLS layer trusts.

The Secret ``buildkit-controller-identity-ca`` in the API's namespace is created by whichever replica
needs it first (409: another replica won, read theirs) and rotated by the plan in
:mod:`buildkit_controller.core.identity`, guarded by its ``resourceVersion``.

The pools' worker CAs (what a gateway's client certificate chains to) are read from where the
operator publishes their certificates, the ``worker-ca.crt`` key of each pool's ``<pool>-config``
ConfigMap — never from the worker CA's Secret, whose private key the API has no business reading.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from datetime import datetime
from typing import Any

from kubernetes_asyncio.client.exceptions import ApiException

from buildkit_controller.controller.api.tls import ClientTrust
from buildkit_controller.controller.manifests.names import MANAGED_BY, POOL_LABEL, config_map_name, pool_labels
from buildkit_controller.controller.manifests.pool import WORKER_CA_KEY
from buildkit_controller.controller.manifests.secrets import secret_data, secret_text
from buildkit_controller.controller.reconciler.context import utcnow
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core import pki
from buildkit_controller.core.errors import ConfigError, PKIError
from buildkit_controller.core.identity import plan_identity_ca

__all__ = ["IDENTITY_CA_SECRET", "IdentityAuthority", "keep_trust_current", "pool_worker_ca", "trust_once"]

log = logging.getLogger(__name__)
IDENTITY_CA_SECRET = "buildkit-controller-identity-ca"  # noqa: S105 - a Secret's name
#: Labels every pool's ``<pool>-config`` ConfigMap carries (the pool label aside).
POOL_CONFIG_LABELS = {k: v for k, v in pool_labels("", "pool-config").items() if k != POOL_LABEL}


class IdentityAuthority:
    """Signs identity certificates; :meth:`bundle` is what the ``mtls`` method verifies against."""

    def __init__(self, kube: Kube, namespace: str, clock: Callable[[], datetime] = utcnow) -> None:
        self.kube, self.namespace, self.clock = kube, namespace, clock
        self._bundle = b""

    def bundle(self) -> bytes:
        """The identity CA bundle as last read (empty until :meth:`current` ran once)."""
        return self._bundle

    async def current(self) -> pki.CertificateAuthority:
        """The signing CA, creating or rotating the Secret when due."""
        for _ in range(3):
            body = await self.kube.get("v1", "Secret", IDENTITY_CA_SECRET, self.namespace)
            try:
                data, reason = plan_identity_ca(secret_text(body), self.clock())
            except PKIError as exc:  # never replaced silently: that would cut off every holder
                raise ConfigError(f"the identity CA Secret {self.namespace}/{IDENTITY_CA_SECRET} is "
                                  f"unreadable ({exc}); restore or delete it") from None
            if reason is None or await self._write(body, data, reason):
                self._bundle = data["bundle.crt"].encode()
                return pki.load_ca(data["ca.crt"], data["ca.key"])
        raise ApiException(status=409, reason="the identity CA Secret keeps changing")

    async def _write(self, body: Mapping[str, Any] | None, data: Mapping[str, str], reason: str) -> bool:
        """Create or update the Secret; ``False`` when another replica changed it first."""
        try:
            if body is None:
                await self.kube.create({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                                        "metadata": {"name": IDENTITY_CA_SECRET, "namespace": self.namespace,
                                                     "labels": {"app.kubernetes.io/component": "identity-ca",
                                                                **MANAGED_BY}},
                                        "data": secret_data(data)})
            else:
                patch = {"metadata": {"resourceVersion": body["metadata"]["resourceVersion"]},
                         "data": secret_data(data)}
                await self.kube.patch("v1", "Secret", IDENTITY_CA_SECRET, self.namespace, patch)
        except ApiException as exc:
            if exc.status == 409:
                return False
            if exc.status == 404:
                raise ConfigError(f"namespace {self.namespace} does not exist: run the API with --namespace "
                                  "set to its own namespace") from None
            raise
        log.info("identity CA %s/%s: %s", self.namespace, IDENTITY_CA_SECRET, reason)
        return True


def published_worker_ca(config_map: Mapping[str, Any] | None) -> str:
    """The worker CA bundle (PEM certificates) in a pool's ConfigMap; empty when not published."""
    return str(((config_map or {}).get("data") or {}).get(WORKER_CA_KEY) or "")


async def pool_worker_ca(kube: Kube, namespace: str, pool: str) -> str:
    """The worker CA bundle the operator published for ``namespace/pool``; empty when there is none."""
    return published_worker_ca(await kube.get("v1", "ConfigMap", config_map_name(pool), namespace))


def _usable_worker_ca(config_map: Mapping[str, Any], now: datetime) -> bytes | None:
    """The unexpired CAs of a ConfigMap's worker CA bundle; ``None`` (logged) when it has none."""
    text = published_worker_ca(config_map)
    if not text.strip():
        return None  # a pool the operator has not reconciled yet
    try:
        return pki.merge_trust_bundle(text, now=now)
    except PKIError as exc:
        meta = config_map.get("metadata") or {}
        log.warning("skipping the worker CA in ConfigMap %s/%s (%s): %s", meta.get("namespace"),
                    meta.get("name"), WORKER_CA_KEY, exc)
        return None


async def trust_once(trust: ClientTrust, authority: IdentityAuthority, kube: Kube) -> int:
    """Add the identity CA and every pool's published worker CA to the TLS layer; return how many were new."""
    await authority.current()
    maps = await kube.list("v1", "ConfigMap", None, POOL_CONFIG_LABELS)
    found = [_usable_worker_ca(m, authority.clock()) for m in maps]
    return trust.add([authority.bundle(), *(bundle for bundle in found if bundle)])


def _describe(exc: Exception) -> str:
    """What went wrong, without response bodies or headers (an ApiException's text carries both)."""
    if isinstance(exc, ApiException):
        return f"Kubernetes API answered {exc.status} {exc.reason}"
    return f"{type(exc).__name__}: {str(exc)[:200]}"


async def keep_trust_current(trust: ClientTrust, authority: IdentityAuthority, kube: Kube,
                             every: float = 30.0) -> None:
    """Run :func:`trust_once` every ``every`` seconds (new pools' gateways are trusted within that).

    A failed round is logged and the next one runs as planned: this task must outlive any error,
    or gateways of new pools would silently never be trusted.
    """
    while True:
        try:
            added = await trust_once(trust, authority, kube)
            if added:
                log.info("TLS layer now trusts %d more client CA(s)", added)
        except Exception as exc:  # any failure: log it, try again next round
            log.warning("could not refresh the client CAs (retrying in %gs): %s", every, _describe(exc))
        await asyncio.sleep(every)
