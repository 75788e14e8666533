"""``kubesim serve`` as a process: start-up time, kubeconfig, HTTPS trust, clean SIGTERM."""

from __future__ import annotations

import base64
import json
import signal
import ssl
import urllib.error
import urllib.request

import pytest
import yaml

from kubesim.testing import run_kubesim


def test_serve_starts_fast_writes_kubeconfig_and_stops_on_sigterm(tmp_path):
    """Acceptance 6."""
    with run_kubesim(tmp_path) as proc:
        assert proc.startup_seconds < 2.0
        config = yaml.safe_load(proc.kubeconfig.read_text())
        cluster = config["clusters"][0]["cluster"]
        assert cluster["server"] == proc.https_url
        ca = base64.b64decode(cluster["certificate-authority-data"]).decode()
        context = ssl.create_default_context(cadata=ca)
        with urllib.request.urlopen(f"{proc.https_url}/version", context=context, timeout=5) as response:  # noqa: S310
            assert json.loads(response.read())["major"] == "1"
        with pytest.raises(urllib.error.URLError):
            urllib.request.urlopen(  # noqa: S310 - loopback https URL
                f"{proc.https_url}/version",
                context=ssl.create_default_context(),
                timeout=5,
            )
        with urllib.request.urlopen(f"{proc.url}/healthz", timeout=5) as response:  # noqa: S310
            assert response.read() == b"ok"
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(5) == 0
        assert proc.process.stdout.read().strip() == "STOPPED"


def test_serve_stops_on_sigterm_with_open_watch(tmp_path):
    """An open watch stream does not hold up shutdown."""
    with run_kubesim(tmp_path, "--no-https") as proc:
        assert proc.https_url == ""
        stream = urllib.request.urlopen(  # noqa: S310 - loopback
            f"{proc.url}/api/v1/namespaces/default/configmaps?watch=true", timeout=5
        )
        proc.process.send_signal(signal.SIGTERM)
        assert proc.process.wait(5) == 0
        stream.close()
