"""What a decoder gives back: a record's data, or why the input could not be used."""

from __future__ import annotations

from typing import Any, NamedTuple


class BadInput(Exception):
    """An input file or row that cannot be converted; the message says why, for the user."""


class Decoded(NamedTuple):
    """One record's data: frames (list of encoded images) or values, its
    (T, H, W, C) shape, and a note for the user (None when all went as expected)."""

    x: Any
    shape: tuple[int, int, int, int]
    note: str | None = None


class Bad(NamedTuple):
    """A failed input, as it comes back from a worker process."""

    message: str
