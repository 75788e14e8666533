# Hookspec bodies are never run (pluggy only reads their signatures), so they stay empty.
# mypy: disable-error-code="empty-body"
"""The hooks a buildkit-controller plugin can implement: the reference manual.

A plugin is a class named by an entry point in one of five groups (``buildkit_controller.auth``,
``.credentials``, ``.cache``, ``.sizing``, ``.scaling``). Installed is not enabled: settings name the
enabled plugins per group; only those are imported, instantiated (no arguments) and registered with
one pluggy ``PluginManager`` under ``"<group>:<name>"``. Implement hooks as methods decorated with
``buildkit_controller.core.hookimpl``; any hook name not listed here fails start-up.

Call semantics are stated per hook. Two classes exist:

* **Synchronous** hooks return plain values and do no I/O (sizing, scaling, cache rendering).
* **May-await** hooks may return an awaitable instead of a value (auth, credentials). The kernel
  awaits results one at a time, in call order. Such hooks are never ``firstresult``: a coroutine
  object is never ``None``, so pluggy could not tell an abstention from an answer.

*Targeted* hooks are called on one named plugin only (the pool's scaling policy, the plugin whose
name is a cache backend's ``type``, each auth method in chain order); *broadcast* hooks are called on
every enabled plugin that implements them.

Plugins must never put a credential, token or private key in a return value's message, in an
exception message or in a log line.
"""

from __future__ import annotations

from collections.abc import Awaitable, Mapping, Sequence
from datetime import datetime
from typing import Any

import pluggy

from buildkit_controller.core.models.hooks import (
    AuthDecision,
    AuthRequest,
    CacheOptions,
    Credential,
    CredentialContext,
    Identity,
    PodContribution,
    Runtime,
    ScalingDecision,
    SizeProfile,
)
from buildkit_controller.core.models.pool import CacheBackend, Pool
from buildkit_controller.core.models.worker import Worker

__all__ = ["PROJECT", "hookimpl", "hookspec"]

PROJECT = "buildkit_controller"
hookspec = pluggy.HookspecMarker(PROJECT)
#: Decorate plugin methods with this to implement a hook.
hookimpl = pluggy.HookimplMarker(PROJECT)


# ==================================================================================================
# Lifecycle (every group)
# ==================================================================================================
@hookspec(historic=True)
def bkc_configure(runtime: Runtime) -> None:
    """Receive the process's runtime services: which process this is, its environment, the API
    audience, in server processes :class:`KubeAccess` for the Kubernetes calls plugins make, and
    in the API the identity CA bundle (``runtime.identity_ca()``) that identity certificates chain to.

    Called by: every host process (API, operator, gateway, bkctl) once at start-up, before any other
    hook (broadcast). Historic: a plugin registered later receives the same call. Synchronous; do
    no I/O here — keep what you need for later.
    """


# ==================================================================================================
# Auth (server side; group ``buildkit_controller.auth``; called by the allocation API)
# ==================================================================================================
@hookspec
def bkc_authenticate(request: AuthRequest) -> Identity | Awaitable[Identity | None] | None:
    """Turn a request's credential into an identity.

    :param request: the caller's bearer credential and/or verified client certificate.
    :returns: an :class:`Identity`, or ``None`` to abstain (the credential is not this method's kind).
        Set its ``expires_at`` when the credential itself expires (a JWT's ``exp``): identity
        certificates minted from it never outlive it.
    :raises AuthenticationError: to reject: the credential is this method's kind but invalid
        (forged, expired, wrong audience). A rejection ends the chain with 401.

    Called by: the API, on each enabled auth method **in the configured order** (targeted), until one
    returns an identity or raises. May-await. If every method abstains the request is unauthenticated.
    """


@hookspec
def bkc_authorize(
    identity: Identity, pool: Pool, action: str
) -> AuthDecision | Awaitable[AuthDecision | None] | None:
    """Vote on whether ``identity`` may perform ``action`` on ``pool``.

    :param identity: who is asking (from :func:`bkc_authenticate`).
    :param pool: the pool concerned.
    :param action: ``allocate``, ``release``, ``renew``, ``status``, ``list`` or ``certs``.
    :returns: an :class:`AuthDecision` or ``None`` to abstain.

    Called by: the API, on every enabled auth plugin (broadcast), after the pool's own RBAC rules.
    May-await; results are awaited in call order. Any deny wins over every allow.
    """


# ==================================================================================================
# Credentials (bkctl side; group ``buildkit_controller.credentials``)
# ==================================================================================================
@hookspec
def bkc_credential(context: CredentialContext) -> Credential | Awaitable[Credential | None] | None:
    """Find a bearer credential for the allocation API in the CI environment.

    :param context: the environment variables and the audience to request.
    :returns: a :class:`Credential`, or ``None`` when this source is not available here.
    :raises AuthenticationError: when the source is present but broken (bkctl reports it and stops).

    Called by: bkctl, on each enabled credential plugin **in the configured order** (targeted), after
    ``--token``/``BKCTL_TOKEN``; the first credential wins. May-await.
    """


# ==================================================================================================
# Cache backends (group ``buildkit_controller.cache``; the entry-point name is the backend ``type``)
# ==================================================================================================
@hookspec
def bkc_cache_validate(backend: CacheBackend, pool: Pool) -> None:
    """Check a backend's options; raise :class:`SpecError` naming the bad field.

    Called by: the reconciler, on the plugin named by ``backend.type`` (targeted). Synchronous.
    """


@hookspec
def bkc_cache_buildkitd_config(backend: CacheBackend, pool: Pool) -> Mapping[str, Any] | None:
    """Contribute a ``buildkitd.toml`` fragment as a nested mapping (merged into the generated file).

    Called by: the reconciler when rendering ``<pool>-config``, on the plugin named by
    ``backend.type`` (targeted). Synchronous. Not called when the pool sets ``buildkitConfig``.
    """


@hookspec
def bkc_cache_worker_pod(backend: CacheBackend, pool: Pool) -> PodContribution | None:
    """Contribute env, volumes, mounts or claims to each worker pod (e.g. credentials, a PVC).

    Called by: the reconciler when rendering a worker pod, on the plugin named by ``backend.type``
    (targeted). Synchronous.
    """


@hookspec
def bkc_cache_client_options(backend: CacheBackend, pool: Pool) -> CacheOptions | None:
    """Contribute ``--cache-from``/``--cache-to`` hints returned to the client with an allocation.

    Called by: the API when answering an allocation, on the plugin named by ``backend.type``
    (targeted). Synchronous.
    """


# ==================================================================================================
# Sizing (group ``buildkit_controller.sizing``)
# ==================================================================================================
@hookspec
def bkc_sizing_profiles() -> Sequence[SizeProfile]:
    """List the named size profiles this plugin offers.

    Called by: the kernel's size resolution, on every enabled sizing plugin (broadcast); all results
    are merged; the same profile name from two plugins stops start-up. Synchronous.
    """


# ==================================================================================================
# Scaling (group ``buildkit_controller.scaling``; the pool's ``scaling.policy`` names the plugin)
# ==================================================================================================
@hookspec
def bkc_scaling_decide(
    pool: Pool, workers: Sequence[Worker], now: datetime, demand: int
) -> ScalingDecision:
    """Decide which workers to create and which to remove, with reasons.

    :param pool: the pool and its spec.
    :param workers: every worker of the pool, with phases, timestamps and allocations.
    :param now: the current time (UTC); policies must not read the clock themselves.
    :param demand: allocation requests waiting for a worker in this pool.
    :returns: a :class:`ScalingDecision`. Must never exceed ``scaling.max`` workers in all and must
        never remove an allocated worker whose allocation is live.

    Called by: the reconciler, on the pool's policy plugin (targeted), on worker changes and on a
    timer. Synchronous and pure.
    """
