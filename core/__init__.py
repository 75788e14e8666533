"""The framework-free kernel of buildkit-controller: what plugin authors import.

``hookimpl`` marks hook implementations (see :mod:`buildkit_controller.core.hookspecs` for the
manual); :mod:`~buildkit_controller.core.models` holds the values hooks receive and return;
:mod:`~buildkit_controller.core.errors` the exceptions they raise.
"""

from buildkit_controller.core import errors, models
from buildkit_controller.core.hookspecs import hookimpl

__all__ = ["errors", "hookimpl", "models"]
