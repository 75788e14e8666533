"""Every hook is documented in docs/plugins.md with its parameters, and exercised by a test."""

from __future__ import annotations

import inspect
import re
from pathlib import Path

import pytest

from buildkit_controller.core import hookspecs

ROOT = Path(__file__).resolve().parents[1]
HOOKS = sorted(name for name, _ in inspect.getmembers(hookspecs, inspect.isfunction)
               if name.startswith("bkc_"))
DOC = (ROOT / "docs" / "plugins.md").read_text()


def test_there_are_hooks() -> None:
    assert len(HOOKS) >= 9


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_documented_with_its_parameters(hook: str) -> None:
    match = re.search(rf"^### `{hook}\((.*?)\)`", DOC, re.MULTILINE)
    assert match, f"docs/plugins.md needs a '### `{hook}(...)`' section"
    documented = [p.strip() for p in match.group(1).split(",") if p.strip()]
    assert documented == list(inspect.signature(getattr(hookspecs, hook)).parameters)


@pytest.mark.parametrize("hook", HOOKS)
def test_hook_is_exercised_by_a_test(hook: str) -> None:
    sources = [p.read_text() for p in (ROOT / "tests").rglob("test_*.py") if p.name != "test_docs.py"]
    sources.append((ROOT / "core" / "testing.py").read_text())
    assert any(f'"{hook}"' in s or f"hook.{hook}" in s or f"def {hook}(" in s for s in sources), (
        f"no test calls {hook}")
