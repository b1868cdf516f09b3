"""``python -m closedloop.streams.cli``: the ``closedloop`` command without its script."""

import sys

from closedloop.streams.cli import main

sys.exit(main())
