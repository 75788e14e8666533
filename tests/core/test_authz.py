"""Authorization: pool RBAC patterns, method gating, credential limits, deny wins, the default."""

from __future__ import annotations

from typing import Any

import pytest

from buildkit_controller.core.authz import authorize, pool_matches
from buildkit_controller.core.models import AuthDecision, Identity
from buildkit_controller.core.testing import make_pool

ALICE = Identity(subject="repo:acme/app:ref:refs/heads/main", method="oidc")


def decide(spec: dict[str, Any], identity: Identity = ALICE, votes: tuple[AuthDecision, ...] = (),
           name: str = "builds", namespace: str = "ci") -> AuthDecision:
    return authorize(identity, make_pool(spec, name=name, namespace=namespace), "allocate", votes)


def test_no_rules_admits_any_authenticated_caller_unless_the_policy_denies() -> None:
    assert decide({}).allowed
    refused = decide({"auth": {"policy": "deny"}})
    assert not refused.allowed and refused.source == "policy"


def test_rules_allow_matching_subjects_and_pools_only() -> None:
    spec = {"auth": {"rbac": {"rules": [{"users": ["repo:acme/*"], "pools": ["ci/build*"]}]}}}
    assert decide(spec).allowed
    assert not decide(spec, Identity(subject="repo:evil/app", method="oidc")).allowed
    assert not decide(spec, namespace="prod").allowed  # namespace-qualified pattern
    assert decide({"auth": {"rbac": {"rules": [{"users": ["*"], "pools": ["builds"]}]}}},
                  namespace="anything").allowed


def test_deny_always_wins() -> None:
    spec = {"auth": {"rbac": {"rules": [{"users": ["*"], "pools": ["*"]},
                                        {"users": ["repo:acme/app*"], "pools": ["*"], "effect": "deny"}]}}}
    assert not decide(spec).allowed
    plugin_deny = AuthDecision(allowed=False, reason="org not allowed", source="oidc")
    assert decide({}, votes=(plugin_deny,)) == plugin_deny
    assert decide({}, votes=(AuthDecision(allowed=True, reason="ok"),)).allowed


def test_disabled_rbac_ignores_rules_and_methods_gate_credentials() -> None:
    spec = {"auth": {"rbac": {"enabled": False, "rules": [{"users": ["nobody"], "pools": ["x"]}]}}}
    assert decide(spec).allowed
    gated = decide({"auth": {"methods": ["token", "mtls"]}})
    assert not gated.allowed and "does not accept oidc" in gated.reason
    assert decide({"auth": {"methods": ["mtls"]}}).allowed  # the seed README's pool


def test_a_credential_limited_to_other_pools_is_refused() -> None:
    limited = Identity(subject="ci", method="token", pools=("ci/other-*",))
    assert not decide({}, limited).allowed
    assert decide({}, Identity(subject="ci", method="token", pools=("builds",))).allowed


@pytest.mark.parametrize(("pattern", "matches"), [
    ("builds", True), ("b*", True), ("ci/builds", True), ("*/builds", True), ("prod/builds", False),
    ("build", False), ("ci/*", True)])
def test_pool_patterns(pattern: str, matches: bool) -> None:
    assert pool_matches(pattern, make_pool(name="builds", namespace="ci")) is matches


METHODS = ("token", "oidc", "serviceaccount", "mtls")


@pytest.mark.parametrize(("methods", "accepted"), [
    ([], METHODS),
    (["mtls"], METHODS),  # the seed example pool: restricts nothing
    (["token"], ("token",)),
    (["token", "mtls"], ("token", "mtls")),
    (["oidc", "serviceaccount"], ("oidc", "serviceaccount")),
])
def test_identity_certificates_only_reach_pools_that_list_mtls(methods: list[str], accepted: tuple[str]) -> None:
    for method in METHODS:
        decision = decide({"auth": {"methods": methods}}, Identity(subject="ci", method=method))
        assert decision.allowed is (method in accepted), (methods, method)
        if not decision.allowed:
            assert decision.source == "auth.methods" and f"does not accept {method}" in decision.reason
