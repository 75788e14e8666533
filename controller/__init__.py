"""Adapters on top of the kernel: the ``buildkit-controller`` command, and later the Kopf operator and
the Quart allocation API. Nothing here is a plugin API; plugins import ``buildkit_controller.core``."""
