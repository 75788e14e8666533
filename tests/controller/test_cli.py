"""The ``buildkit-controller`` console script, run as a real process from outside the repository."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

EXE = shutil.which("buildkit-controller", path=str(Path(sys.executable).parent))


def run(*args: str, env: dict[str, str] | None = None, cwd: str = "/") -> subprocess.CompletedProcess[str]:
    assert EXE, "the buildkit-controller console script is not installed"
    environ = {k: v for k, v in os.environ.items() if not k.startswith("BKC_")} | (env or {})
    return subprocess.run([EXE, *args], capture_output=True, text=True, env=environ, cwd=cwd,
                          timeout=60, check=False)


def test_plugins_lists_builtins_with_groups_and_distribution() -> None:
    result = run("plugins")
    assert result.returncode == 0, result.stderr
    rows = [line.split() for line in result.stdout.splitlines()]
    assert rows[0][:5] == ["GROUP", "NAME", "ENABLED", "DISTRIBUTION", "VERSION"]
    table = {(r[0], r[1]): r[2:4] for r in rows[1:]}
    for key in [("sizing", "tshirt"), ("scaling", "minidle"), ("scaling", "schedule")]:
        assert table[key] == ["yes", "buildkit-controller"]


def test_plugins_json_marks_disabled_plugins() -> None:
    result = run("--plugins", "scaling=minidle", "plugins", "--output", "json")
    assert result.returncode == 0, result.stderr
    enabled = {(p["group"], p["name"]): p["enabled"] for p in json.loads(result.stdout)}
    assert enabled[("scaling", "minidle")] is True
    assert enabled[("scaling", "schedule")] is False


@pytest.mark.parametrize(("args", "env"), [
    (["--plugins", "scaling=minidle,nosuch", "plugins"], {}),
    (["plugins"], {"BKC_PLUGINS_SCALING": "nosuch"}),
])
def test_enabling_a_missing_plugin_is_one_line_and_non_zero(args: list[str], env: dict[str, str]) -> None:
    result = run(*args, env=env)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.strip().splitlines() == [
        "buildkit-controller: error: plugin 'nosuch' in group buildkit_controller.scaling "
        "is enabled but not installed"]


def test_bad_flag_is_a_usage_error_without_traceback() -> None:
    result = run("--plugins", "nogroup", "plugins")
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert "GROUP=NAME" in result.stderr


def test_help_documents_the_environment_variables() -> None:
    result = run("--help")
    assert result.returncode == 0
    assert "BKC_PLUGINS_<GROUP>" in result.stdout and "plugins" in result.stdout


def test_bare_folder_names_are_not_importable() -> None:
    """Outside the checkout, only the namespaced names exist (no top-level `core`, `plugins`)."""
    for module in ["core", "plugins", "controller"]:
        probe = subprocess.run([sys.executable, "-c", f"import {module}"], capture_output=True, text=True,
                               cwd="/", check=False)
        assert probe.returncode != 0 and "ModuleNotFoundError" in probe.stderr
    ok = subprocess.run([sys.executable, "-c", "import buildkit_controller.core"], cwd="/", check=False)
    assert ok.returncode == 0


def test_plugins_command_needs_no_server_packages() -> None:
    """`pip install buildkit-controller` (no [server] extra) must be enough for `plugins`."""
    blocked = ["kopf", "quart", "hypercorn", "aiohttp", "kubernetes_asyncio", "tomli_w"]
    code = (f"import sys; sys.modules.update(dict.fromkeys({blocked!r}));"
            "from buildkit_controller.controller.cli import main; main(['plugins'])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd="/",
                            timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "tshirt" in result.stdout


def test_tokens_create_prints_the_token_once_and_a_hash_only_entry(tmp_path: Path) -> None:
    result = run("tokens", "create", "--subject", "ci-bot", "--pool", "ci/*")
    assert result.returncode == 0, result.stderr
    token = result.stdout.strip()
    assert token.startswith("bkct_") and token not in result.stderr
    entry = json.loads(result.stderr.split("--from-literal=ci-bot='")[1].split("'")[0])
    assert entry["subject"] == "ci-bot" and entry["pools"] == ["ci/*"]
    assert entry["tokenHash"].startswith("sha256:")
