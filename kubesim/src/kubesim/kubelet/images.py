"""The process runtime's image table: which local command stands in for which container image.

Keys are an image reference with or without a tag (``moby/buildkit``, ``moby/buildkit:v0.31.1``,
``registry:5000/team/app``); ``docker.io/`` and ``docker.io/library/`` prefixes and ``@sha256``
digests are ignored. A tagged key wins over an untagged one. The value is the image's ENTRYPOINT:
the container runs ``(command or entrypoint) + (args or [])`` as the real kubelet does. An empty
entrypoint means "the image has none": the pod's own ``command`` runs as is (e.g. ``/bin/sh -c``).
``moby/buildkit`` maps to kubesim's stand-in buildkitd unless overridden.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Mapping

__all__ = ["ImageMap", "parse_image_flag", "split_image"]

BUILDKITD = [sys.executable, "-m", "kubesim.buildkitd"]


def split_image(image: str) -> tuple[str, str]:
    """``(repository, tag)``, normalised; the tag is ``""`` when absent."""
    ref = image.split("@", 1)[0]
    for prefix in ("docker.io/library/", "docker.io/", "index.docker.io/"):
        if ref.startswith(prefix):
            ref = ref[len(prefix) :]
            break
    slash = ref.rfind("/")
    colon = ref.rfind(":")
    if colon > slash:
        return ref[:colon], ref[colon + 1 :]
    return ref, ""


class ImageMap:
    """``image → entrypoint`` (a list of argv words). ``unmapped``: what a container with an image
    not in the map does — ``"ready"`` (Running and Ready without a process, the default) or
    ``"pending"`` (stays Waiting with reason ``ContainerCreating``)."""

    def __init__(
        self,
        images: Mapping[str, list[str] | str] | None = None,
        *,
        unmapped: str = "ready",
        buildkitd: bool = True,
    ) -> None:
        if unmapped not in ("ready", "pending"):
            raise ValueError("unmapped must be 'ready' or 'pending'")
        self.unmapped = unmapped
        self._map: dict[tuple[str, str], list[str]] = {}
        if buildkitd:
            self.add("moby/buildkit", BUILDKITD)
        for image, command in (images or {}).items():
            self.add(image, command)

    def add(self, image: str, command: list[str] | str) -> None:
        argv = shlex.split(command) if isinstance(command, str) else list(command)
        self._map[split_image(image)] = argv

    def lookup(self, image: str) -> list[str] | None:
        repo, tag = split_image(image)
        found = self._map.get((repo, tag))
        if found is None:
            found = self._map.get((repo, ""))
        return None if found is None else list(found)


def parse_image_flag(text: str) -> tuple[str, list[str]]:
    """``IMAGE=COMMAND`` (the command is split like a shell would) from ``kubesim serve --image``."""
    image, sep, command = text.partition("=")
    if not sep or not image:
        raise ValueError(f"--image wants IMAGE=COMMAND, got {text!r}")
    return image, shlex.split(command)
