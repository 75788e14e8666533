"""``python -m kubesim`` is the ``kubesim`` command."""

import sys

from .cli import main

sys.exit(main())
