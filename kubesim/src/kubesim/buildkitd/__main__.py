"""``python -m kubesim.buildkitd``: the stand-in buildkitd (see :mod:`kubesim.buildkitd`)."""

import sys

from .server import main

sys.exit(main())
