"""Fixtures for the operator's tests: kubesim (the emulated API server) with our CRDs installed."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from buildkit_controller.controller.crds import all_crds
from buildkit_controller.controller.reconciler.context import Context
from buildkit_controller.controller.reconciler.kube import Kube
from buildkit_controller.core._loader import load_plugins
from buildkit_controller.core.settings import PluginSettings
from kubesim import KubeSim
from kubesim.testing import kubesim  # noqa: F401 - re-exported pytest fixture


@pytest_asyncio.fixture
async def kube(kubesim: KubeSim) -> AsyncIterator[Kube]:  # noqa: F811 - the fixture above
    """A client of a fresh kubesim with the BuildKit CRDs created."""
    client = await Kube.connect(host=kubesim.url)
    for crd in all_crds():
        await client.create(crd)
    yield client
    await client.close()


@pytest_asyncio.fixture
async def context(kube: Kube) -> Context:
    return Context(kube=kube, host=load_plugins(PluginSettings()))
