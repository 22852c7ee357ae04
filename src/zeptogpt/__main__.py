"""``python -m zeptogpt``: the same as the ``zeptogpt`` command."""

import sys

from zeptogpt.cli import main

sys.exit(main())
