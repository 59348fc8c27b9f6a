"""``python -m server``: the ``ttp-atlas`` command line."""

import sys

from server.cli import main

sys.exit(main())
