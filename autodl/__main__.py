"""``python -m autodl`` is the ``autodl`` command."""

from autodl.cli import main

if __name__ == "__main__":  # importing it (doctests, tools) runs nothing
    main()
