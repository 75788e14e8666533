"""The image map: which local command a container image runs as (kubesim's process runtime)."""

from __future__ import annotations

import pytest

from kubesim import ImageMap
from kubesim.kubelet.images import BUILDKITD, parse_image_flag


def test_tagged_entries_win_and_registries_normalise():
    images = ImageMap({"example.com/app": ["app"], "example.com/app:2": "app --v2", "nginx": ["web"]})
    assert images.lookup("example.com/app:1.0") == ["app"]
    assert images.lookup("example.com/app:2") == ["app", "--v2"]
    assert images.lookup("example.com/app@sha256:" + "0" * 64) == ["app"]
    assert images.lookup("docker.io/library/nginx:1.27") == ["web"]
    assert images.lookup("registry:5000/example.com/app") is None


def test_buildkit_images_map_to_the_stand_in_unless_disabled():
    assert ImageMap().lookup("moby/buildkit:v0.31.1-rootless") == BUILDKITD
    assert ImageMap(buildkitd=False).lookup("moby/buildkit") is None


def test_cli_flag_syntax():
    assert parse_image_flag("example.com/shell=") == ("example.com/shell", [])
    assert parse_image_flag("a/b:1=python3 -m 'x y'") == ("a/b:1", ["python3", "-m", "x y"])
    with pytest.raises(ValueError, match="IMAGE=COMMAND"):
        parse_image_flag("no-command")
    with pytest.raises(ValueError, match="unmapped"):
        ImageMap(unmapped="crash")
