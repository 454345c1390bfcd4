"""``python -m autodl.cli`` is the ``autodl`` command (as ``python -m autodl``)."""

from autodl.cli import main

if __name__ == "__main__":  # importing it (doctests, tools) runs nothing
    main()
