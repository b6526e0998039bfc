"""``python -m knn``: the command line (see `knn.cli`)."""

import sys

from .cli import main

sys.exit(main())
