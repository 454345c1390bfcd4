"""Errors a user may see. Each says what is wrong, where, and (as `hint`) what to do.

The CLI prints `message` and `hint` and exits with status 1; it never shows a traceback
for an `AutoDLError`.
"""

from __future__ import annotations


class AutoDLError(Exception):
    """Base class: a problem the user can act on."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message if not self.hint else f"{self.message}\nHint: {self.hint}"


class FormatError(AutoDLError):
    """A dataset file is missing, malformed or inconsistent.

    `file`, `record` and `field` say where, when known.
    """

    def __init__(
        self,
        message: str,
        hint: str | None = None,
        *,
        file: str | None = None,
        record: int | None = None,
        field: str | None = None,
    ):
        super().__init__(message, hint)
        self.file = file
        self.record = record
        self.field = field


class SettingError(AutoDLError):
    """An ``AUTODL_*`` variable whose value does not parse or breaks its rule.

    `variable`, `value` and `expected` (e.g. "an integer of at least 1") say which.
    """

    def __init__(self, message: str, hint: str | None = None, *, variable: str, value: str,
                 expected: str):  # fmt: skip
        super().__init__(message, hint)
        self.variable = variable
        self.value = value
        self.expected = expected


class ScoringError(AutoDLError):
    """Predictions or a solution that cannot be scored."""


class IngestionError(AutoDLError):
    """The engine could not be run on the dataset."""


class ModelError(AutoDLError):
    """A saved model is missing, damaged, or was written by incompatible versions."""
