"""``python -m valt_core`` runs the ``valt`` command."""

import sys

from .cli import main

sys.exit(main())
