"""Secrets stay out of logs even at DEBUG: the Kubernetes client would log every response body
(kubesim is the emulated API server here)."""

from __future__ import annotations

import logging

import pytest

from buildkit_controller.controller.reconciler.kube import Kube


async def test_a_token_review_at_debug_level_logs_no_token(kube: Kube, caplog: pytest.LogCaptureFixture) -> None:
    token = "eyJhbGciOiJFUzI1NiJ9.not-a-real-token-but-secret-enough.c2lnbmF0dXJl"
    with caplog.at_level(logging.DEBUG):
        status = await kube.token_review(token, ["buildkit-controller"])
    assert status.get("authenticated") is not True
    assert token not in caplog.text
