"""The built-in ``token`` and ``serviceaccount`` auth methods.

ServiceAccount tokens are minted and reviewed by kubesim (the emulated API server) through its real
TokenRequest and TokenReview endpoints.
"""

from __future__ import annotations

import base64
import json
import logging
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._aio import resolve
from buildkit_controller.core.errors import AuthenticationError
from buildkit_controller.core.models import AuthRequest, Runtime
from buildkit_controller.core.testing import AuthContract, host_with
from buildkit_controller.plugins.serviceaccount import ServiceAccountAuth, _expiry
from buildkit_controller.plugins.token import TokenAuth, new_static_token
from kubesim import KubeSim


class TestTokenContract(AuthContract):
    plugin_name = "token"

    @pytest.fixture
    def plugin(self) -> object:
        return TokenAuth()


class TestServiceAccountContract(AuthContract):
    plugin_name = "serviceaccount"

    @pytest.fixture
    def plugin(self) -> object:
        return ServiceAccountAuth()


@pytest.fixture
def token_dir(tmp_path: Path) -> Path:
    return tmp_path / "tokens"


def token_host(directory: Path) -> Any:
    host = host_with("auth", "token", TokenAuth())
    host.configure(Runtime(process="api", environ={"BKC_AUTH_TOKEN_DIR": str(directory)}))
    return host


def store(directory: Path, name: str, entry: dict[str, Any]) -> None:
    directory.mkdir(exist_ok=True)
    (directory / name).write_text(json.dumps(entry))


async def authenticate(host: Any, group: str, name: str, bearer: str,
                       audience: str = "buildkit-controller") -> Any:
    return await resolve(host.call(group, name, "bkc_authenticate",
                                   request=AuthRequest(bearer=bearer, audience=audience)))


async def test_static_token_maps_to_subject_and_pools_and_only_its_hash_is_stored(token_dir: Path) -> None:
    token, entry = new_static_token("ci-bot", ["ci/*"])
    store(token_dir, "ci-bot", entry)
    assert token not in (token_dir / "ci-bot").read_text()
    identity = await authenticate(token_host(token_dir), "auth", "token", token)
    assert (identity.subject, identity.method, identity.pools) == ("ci-bot", "token", ("ci/*",))
    assert identity.expires_at is None  # a static token lives until its file is deleted


async def test_static_tokens_reload_and_revocation_rejects(token_dir: Path) -> None:
    host = token_host(token_dir)
    token, entry = new_static_token("ci-bot", None)
    with pytest.raises(AuthenticationError) as info:
        await authenticate(host, "auth", "token", token)
    assert token not in str(info.value)
    store(token_dir, "ci-bot", entry)  # added later: picked up without a restart
    assert (await authenticate(host, "auth", "token", token)).subject == "ci-bot"
    (token_dir / "ci-bot").unlink()  # revoked
    with pytest.raises(AuthenticationError, match="unknown or revoked"):
        await authenticate(host, "auth", "token", token)
    assert await authenticate(host, "auth", "token", "eyJ.some.jwt") is None  # not ours: abstain


@pytest.fixture
async def sa_host(kubesim: KubeSim) -> Any:
    kube = await Kube.connect(host=kubesim.url)
    host = host_with("auth", "serviceaccount", ServiceAccountAuth())
    host.configure(Runtime(process="api", kube=kube))
    yield host, kube
    await kube.close()


async def mint(kube: Kube, audience: str, name: str = "builder") -> str:
    account = {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name, "namespace": "ci"}}
    await kube.create(account)
    path = f"/api/v1/namespaces/ci/serviceaccounts/{name}/token"
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest",
               "spec": {"audiences": [audience], "expirationSeconds": 600}}
    answer = await kube.request("POST", path, request)
    return str(answer["status"]["token"])


async def test_serviceaccount_token_for_our_audience_authenticates(sa_host: Any) -> None:
    host, kube = sa_host
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ci"}})
    token = await mint(kube, "buildkit-controller")
    identity = await authenticate(host, "auth", "serviceaccount", token)
    assert (identity.subject, identity.method) == ("system:serviceaccount:ci:builder", "serviceaccount")
    assert "system:serviceaccounts:ci" in identity.groups


async def test_other_audience_and_forged_tokens_are_rejected(sa_host: Any) -> None:
    host, kube = sa_host
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ci"}})
    other = await mint(kube, "vault")
    with pytest.raises(AuthenticationError):
        await authenticate(host, "auth", "serviceaccount", other)
    header, payload, signature = (await mint(kube, "buildkit-controller", "other")).split(".")
    forged = f"{header}.{payload}.{signature[::-1]}"
    with pytest.raises(AuthenticationError) as info:
        await authenticate(host, "auth", "serviceaccount", forged)
    assert forged not in str(info.value)


def payload(token: str) -> dict[str, Any]:
    part = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))  # type: ignore[no-any-return]


async def test_serviceaccount_identity_expires_with_its_token(sa_host: Any, caplog: pytest.LogCaptureFixture) -> None:
    host, kube = sa_host
    await kube.create({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "ci"}})
    token = await mint(kube, "buildkit-controller")
    with caplog.at_level(logging.DEBUG, logger="buildkit_controller"):  # ours (the client library's debug
        identity = await authenticate(host, "auth", "serviceaccount", token)  # log echoes request bodies)
    assert identity.expires_at == datetime.fromtimestamp(payload(token)["exp"], UTC)
    assert 590 <= (identity.expires_at - datetime.now(UTC)).total_seconds() <= 600
    assert token not in caplog.text and token.split(".")[1] not in caplog.text


@pytest.mark.parametrize(("claims", "expected"), [
    ({"exp": 1_900_000_000}, datetime.fromtimestamp(1_900_000_000, UTC)),
    ({}, None), ({"exp": "tomorrow"}, None), ({"exp": True}, None), ({"exp": 10**20}, None),
])
def test_exp_claims_that_are_not_times_give_no_expiry(claims: dict[str, Any], expected: datetime | None) -> None:
    assert _expiry(claims) == expected
