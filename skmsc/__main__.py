"""``python -m skmsc``: the same command line as the ``skmsc`` console script."""

import sys

from .cli import main

sys.exit(main())
