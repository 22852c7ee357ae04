"""``python -m zeptogpt``: the same as the ``zeptogpt`` command."""

from zeptogpt.cli import entry

entry()
