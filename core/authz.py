"""Who may do what to which pool: the pool's RBAC rules, the credential's own limits, plugin votes.

Rules match an identity's ``subject`` against ``users`` patterns and the pool against ``pools``
patterns (shell-style globs: ``*``, ``?``, ``[...]``; a pool pattern without ``/`` matches the pool
name in any namespace, with ``/`` it matches ``namespace/name``). The decision:

1. the identity's method must be listed in the pool's ``auth.methods`` — unless that lists nothing
   or only ``mtls``, which restricts nothing (the seed's ``methods: [mtls]`` only said that clients
   connect to the gateway with certificates, so its pools keep accepting bearer tokens). A pool
   listing API methods without ``mtls`` refuses identity certificates (method ``mtls``), so a
   certificate minted with a token cannot reach a pool that token-only callers are kept to;
2. the credential's own pool limit (e.g. a static token's ``pools``), when it has one, must match;
3. any matching ``deny`` rule or any plugin deny → deny (deny always wins);
4. any matching ``allow`` rule → allow; with RBAC rules but no match → deny;
5. no rules: allow when the pool's ``auth.policy`` is ``allow-authenticated``, else deny.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from fnmatch import fnmatchcase

from buildkit_controller.core.models.hooks import AuthDecision, Identity
from buildkit_controller.core.models.pool import Pool, RBACRule

__all__ = ["authorize", "method_enabled", "pool_matches"]


def pool_matches(pattern: str, pool: Pool) -> bool:
    """Whether ``pattern`` (``name-glob`` or ``namespace-glob/name-glob``) names ``pool``."""
    if "/" in pattern:
        return fnmatchcase(f"{pool.namespace}/{pool.name}", pattern)
    return fnmatchcase(pool.name, pattern)


def _matching(rules: Iterable[RBACRule], identity: Identity, pool: Pool) -> list[RBACRule]:
    return [rule for rule in rules
            if any(fnmatchcase(identity.subject, user) for user in rule.users)
            and any(pool_matches(pattern, pool) for pattern in rule.pools)]


def _deny(reason: str, source: str) -> AuthDecision:
    return AuthDecision(allowed=False, reason=reason, source=source)


def method_enabled(method: str, pool: Pool) -> bool:
    """Whether ``pool`` accepts credentials of auth method ``method`` (rule 1 above)."""
    methods = {m.type for m in pool.spec.auth.methods}
    return methods <= {"mtls"} or method in methods


def _precheck(identity: Identity, pool: Pool, where: str) -> AuthDecision | None:
    if not method_enabled(identity.method, pool):
        return _deny(f"{where} does not accept {identity.method} credentials", "auth.methods")
    if identity.pools is not None and not any(pool_matches(p, pool) for p in identity.pools):
        return _deny(f"this credential is limited to other pools than {where}", identity.method)
    return None


def _by_rules(identity: Identity, pool: Pool, action: str, where: str,
              votes: Sequence[AuthDecision]) -> AuthDecision:
    rbac = pool.spec.auth.rbac
    rules = _matching(rbac.rules, identity, pool) if rbac.enabled else []
    denials = [v for v in votes if not v.allowed] + [
        _deny(f"a deny rule of {where} matches {identity.subject}", "auth.rbac") for r in rules
        if r.effect == "deny"]
    if denials:
        return denials[0]
    if any(rule.effect == "allow" for rule in rules):
        return AuthDecision(allowed=True, reason=f"an allow rule of {where} matches", source="auth.rbac")
    if rbac.enabled and rbac.rules:
        return _deny(f"no rule of {where} lets {identity.subject} {action}", "auth.rbac")
    if pool.spec.auth.policy == "allow-authenticated":
        return AuthDecision(allowed=True, reason=f"{where} admits any authenticated caller", source="policy")
    return _deny(f"{where} has no rule for {identity.subject}", "policy")


def authorize(identity: Identity, pool: Pool, action: str,
              votes: Sequence[AuthDecision] = ()) -> AuthDecision:
    """Decide ``action`` on ``pool`` for ``identity``; ``votes`` come from ``bkc_authorize``."""
    where = f"pool {pool.namespace}/{pool.name}"
    return _precheck(identity, pool, where) or _by_rules(identity, pool, action, where, votes)
