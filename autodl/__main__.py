"""``python -m autodl`` is the ``autodl`` command."""

from autodl.cli import main

main()
