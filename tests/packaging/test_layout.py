"""The folders map onto the ``buildkit_controller`` namespace, and the wheel really contains them.

setuptools silently drops a sub-package that is not listed in ``[tool.setuptools] packages``; these
tests fail when that happens, when the namespace gains an ``__init__.py``, or when an entry point
stops loading.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

from buildkit_controller.core.settings import GROUPS

ROOT = Path(__file__).resolve().parents[2]
CONFIG = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]


def expected_packages() -> dict[str, Path]:
    """Every folder with an ``__init__.py`` below a mapped folder, as its import name."""
    found = {}
    for package, folder in CONFIG["package-dir"].items():
        for init in (ROOT / folder).rglob("__init__.py"):
            relative = init.parent.relative_to(ROOT / folder)
            found[".".join([package, *relative.parts])] = init.parent
    return found


def test_every_sub_package_is_listed() -> None:
    missing = set(expected_packages()) - set(CONFIG["packages"])
    assert not missing, f"add to [tool.setuptools] packages: {sorted(missing)}"


def test_namespace_package_is_intact() -> None:
    spec = importlib.util.find_spec("buildkit_controller")
    assert spec is not None and spec.origin is None, "buildkit_controller must stay a PEP 420 namespace"
    for dist in importlib.metadata.distributions():
        files = [str(f) for f in dist.files or []]
        assert "buildkit_controller/__init__.py" not in files, dist.metadata["Name"]


def test_every_entry_point_in_our_groups_loads() -> None:
    for group in GROUPS.values():
        for ep in importlib.metadata.entry_points(group=group):
            assert callable(ep.load()), f"{group}:{ep.name}"


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    # Build from a clean copy: an in-tree build/ folder would hide a dropped package.
    source, out = tmp_path_factory.mktemp("source"), tmp_path_factory.mktemp("wheel")
    for name in ["pyproject.toml", "README.md", "LICENSE"]:
        shutil.copy(ROOT / name, source / name)
    for folder in CONFIG["package-dir"].values():
        shutil.copytree(ROOT / folder, source / folder, ignore=shutil.ignore_patterns("__pycache__"))
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q",
                    "-w", str(out), str(source)], check=True, capture_output=True, timeout=180)
    (built,) = out.glob("buildkit_controller-*.whl")
    return zipfile.ZipFile(built)


def test_wheel_holds_every_module_at_its_namespaced_path(wheel: zipfile.ZipFile) -> None:
    names = set(wheel.namelist())
    for package, folder in expected_packages().items():
        for module in folder.glob("*.py"):
            path = "/".join([*package.split("."), module.name])
            assert path in names, f"{module.relative_to(ROOT)} is missing from the wheel as {path}"
    assert "buildkit_controller/__init__.py" not in names
    assert not any(n.split("/")[0] in {"core", "plugins", "controller"} for n in names)


def test_wheel_keeps_server_frameworks_optional(wheel: zipfile.ZipFile) -> None:
    (metadata,) = [n for n in wheel.namelist() if n.endswith(".dist-info/METADATA")]
    requires = [line for line in wheel.read(metadata).decode().splitlines()
                if line.startswith("Requires-Dist:")]
    base = [r for r in requires if "extra ==" not in r]
    for framework in ["kopf", "quart", "hypercorn", "aiohttp"]:
        assert not any(framework in r.lower() for r in base), f"{framework} must sit behind an extra"
        assert any(framework in r.lower() and 'extra == "server"' in r for r in requires)
