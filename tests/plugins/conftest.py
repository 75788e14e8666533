"""kubesim (the emulated API server) for plugin tests that talk to Kubernetes."""

from kubesim.testing import kubesim  # noqa: F401 - a pytest fixture
