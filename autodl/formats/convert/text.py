"""Text: tokenise into words and punctuation, and store token ids, one step per token.

As the reference ``convention2012`` (written by the official text tool): each
record is a DENSE sequence (T, 1, 1, 1) of token ids, and the vocabulary is the
``channel_to_index_map`` of the metadata (token -> id, ids from 0 in order of
first appearance, no reserved id). Tokens keep their case.

Tokenisers (``--language``):

- words (the default, any language written with spaces): runs of letters and
  digits, with inner apostrophes kept (``that's``, ``l'eau``), numbers with
  their decimal point (``3.5``), every other visible character a token of its
  own. Chinese and Japanese characters are one token each even here, so mixed
  text works without ``--language``.
- characters (``--language zh``, ``ja``, ``th`` …): every visible character is
  a token, except runs of Latin letters and digits, which stay words.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from autodl.formats.convert._items import BadInput, Decoded

_CJK = "\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff\uff66-\uff9f\U00020000-\U0002fa1f"
_WORD = rf"[^\W{_CJK}]+(?:['’][^\W{_CJK}]+)*"
_WORDS = re.compile(rf"\d+(?:[.,]\d+)+|[{_CJK}]|{_WORD}|\S")
_CHARS = re.compile(r"\d+(?:[.,]\d+)+|[A-Za-z0-9]+(?:['’][A-Za-z]+)*|\S")


def tokenize(text: str, chars: bool = False) -> list[str]:
    """Words and punctuation (or characters, ``chars=True``) of ``text``.

    >>> tokenize("That's 3.5 times better, isn't it?")
    ["That's", '3.5', 'times', 'better', ',', "isn't", 'it', '?']
    >>> tokenize("我爱 Python 3!", chars=True)
    ['我', '爱', 'Python', '3', '!']
    """
    return (_CHARS if chars else _WORDS).findall(text)


def read_text(data: bytes) -> tuple[str, str | None]:
    """Bytes of a text file -> (text, note): UTF-8 (with or without BOM), UTF-16
    with a BOM, else Latin-1 with a note saying so."""
    if data.startswith((b"\xff\xfe", b"\xfe\xff")):
        return data.decode("utf-16"), None
    try:
        return data.decode("utf-8-sig"), None
    except UnicodeDecodeError:
        return data.decode("latin-1"), "not UTF-8; read as Latin-1"


def decode(path: Path, chars: bool) -> Decoded:
    """One .txt file -> its tokens (ids are given by the writer, which owns the vocabulary)."""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise BadInput(f"cannot be read ({e.strerror})") from None
    text, note = read_text(data)
    tokens = tokenize(text, chars)
    if not tokens:
        raise BadInput("holds no text")
    return Decoded(tokens, (len(tokens), 1, 1, 1), note)


class Vocabulary:
    """Token -> id, ids given in order of first appearance (as convention2012)."""

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}

    def encode(self, tokens: list[str]) -> np.ndarray:
        """Token ids as float32 steps (T, 1, 1, 1), adding new tokens."""
        ids = self.ids
        out = np.empty(len(tokens), np.float32)
        for i, t in enumerate(tokens):
            v = ids.get(t)
            if v is None:
                v = ids[t] = len(ids)
            out[i] = v
        return out.reshape(-1, 1, 1, 1)

    def __len__(self) -> int:
        return len(self.ids)
