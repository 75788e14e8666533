"""Where bkctl's bearer credential comes from: --token/BKCTL_TOKEN, else the credential plugins in order.

The API is real (over kubesim, the emulated Kubernetes API server); a stand-in server plays GitHub's
ID token endpoint and hands out the API's static token as the "ID token", so a successful call proves
the plugin's answer was used."""

from __future__ import annotations

from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from buildkit_controller.bkctl.errors import EXIT_CREDENTIALS
from buildkit_controller.core.testing import CredentialsContract
from buildkit_controller.plugins.github_actions import GitHubActionsCredential, token_url
from buildkit_controller.plugins.sa_token import DEFAULT_FILES, ServiceAccountTokenCredential

from .conftest import Api, FakeServer, Reply, bkctl
from .test_errors import one_line

REQUEST_TOKEN = "req-token-123"


def github(fake: FakeServer, id_token: str, audience: str = "buildkit-controller") -> dict[str, str]:
    """Make ``fake`` play the GitHub Actions ID token endpoint; the job's variables pointing at it."""
    def answer(request: BaseHTTPRequestHandler) -> Reply:
        query = parse_qs(urlsplit(request.path).query)
        if request.headers.get("Authorization") != f"bearer {REQUEST_TOKEN}":
            return Reply(401, b'{"message": "bad request token"}')
        if query.get("audience") != [audience] or query.get("api-version") != ["2.0"]:
            return Reply(400, b'{"message": "bad query"}')
        return Reply(200, f'{{"count": 1, "value": "{id_token}"}}'.encode(), {"Content-Type": "application/json"})
    fake.routes["/token"] = answer
    return {"ACTIONS_ID_TOKEN_REQUEST_URL": f"{fake.url}/token?api-version=2.0",
            "ACTIONS_ID_TOKEN_REQUEST_TOKEN": REQUEST_TOKEN}


def test_token_url_appends_the_audience() -> None:
    assert token_url("https://x/t", "a b") == "https://x/t?audience=a+b"
    assert token_url("https://x/t?api-version=2.0", "aud") == "https://x/t?api-version=2.0&audience=aud"


async def test_github_actions_id_token(api: Api, fake: FakeServer) -> None:
    result = await bkctl("pools", "--endpoint", api.url, env=github(fake, api.token))
    assert result.code == 0, result.err
    assert "builds" in result.out
    assert fake.seen == ["/token?api-version=2.0&audience=buildkit-controller"]


async def test_github_actions_audience_flag(api: Api, fake: FakeServer) -> None:
    env = github(fake, api.token, audience="my-api")
    result = await bkctl("pools", "--endpoint", api.url, "--audience", "my-api", env=env)
    assert result.code == 0, result.err


async def test_github_actions_failure_is_reported(fake: FakeServer) -> None:
    env = {**github(fake, "x"), "ACTIONS_ID_TOKEN_REQUEST_TOKEN": "wrong"}
    result = await bkctl("pools", "--endpoint", fake.url, env=env)
    one_line(result, EXIT_CREDENTIALS, "GitHub Actions ID token request to 127.0.0.1", "answered HTTP 401")
    assert "wrong" not in result.err


async def test_nothing_found_names_the_sources_tried(fake: FakeServer) -> None:
    if any(Path(path).exists() for path in DEFAULT_FILES):
        pytest.skip("this machine has a ServiceAccount token mounted")
    result = await bkctl("pools", "--endpoint", fake.url)
    one_line(result, EXIT_CREDENTIALS,
             "no credential found (tried --token/BKCTL_TOKEN, plugin github-actions, plugin serviceaccount)")
    none = await bkctl("pools", "--endpoint", fake.url, env={"BKC_PLUGINS_CREDENTIALS": ""})
    one_line(none, EXIT_CREDENTIALS, "(tried --token/BKCTL_TOKEN)")
    assert fake.seen == []  # nothing was sent anywhere without a credential


async def test_a_github_job_without_id_token_permission_is_told_so(fake: FakeServer) -> None:
    if any(Path(path).exists() for path in DEFAULT_FILES):
        pytest.skip("this machine has a ServiceAccount token mounted")
    env = {"GITHUB_ACTIONS": "true", "ACTIONS_ID_TOKEN_REQUEST_URL": f"{fake.url}/token"}  # no request token
    result = await bkctl("pools", "--endpoint", fake.url, env=env)
    one_line(result, EXIT_CREDENTIALS, "plugin github-actions", "without ACTIONS_ID_TOKEN_REQUEST_TOKEN",
             "permissions: id-token: write")
    assert fake.seen == []


async def test_serviceaccount_token_file(api: Api, tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(api.token + "\n")
    result = await bkctl("pools", "--endpoint", api.url, env={"BKCTL_SA_TOKEN_FILE": str(token_file)})
    assert result.code == 0, result.err
    missing = await bkctl("pools", "--endpoint", api.url, env={"BKCTL_SA_TOKEN_FILE": str(tmp_path / "nope")})
    one_line(missing, EXIT_CREDENTIALS, "cannot read ServiceAccount token file")


class TestGitHubActionsContract(CredentialsContract):
    plugin_name = "github-actions"

    @pytest.fixture
    def plugin(self) -> GitHubActionsCredential:
        return GitHubActionsCredential()


class TestServiceAccountTokenContract(CredentialsContract):
    plugin_name = "serviceaccount"

    @pytest.fixture
    def plugin(self) -> ServiceAccountTokenCredential:
        return ServiceAccountTokenCredential()


@pytest.mark.parametrize(("setting", "phrase"), [
    ("nosuch", "plugin 'nosuch' in group buildkit_controller.credentials is enabled but not installed"),
    ("serviceaccount,serviceaccount", "names a plugin twice"),
])
async def test_bad_credential_setting(fake: FakeServer, setting: str, phrase: str) -> None:
    result = await bkctl("pools", "--endpoint", fake.url, env={"BKC_PLUGINS_CREDENTIALS": setting})
    one_line(result, EXIT_CREDENTIALS, phrase)
