"""Sizes in words, as every message of the project writes them."""

from __future__ import annotations


def human_bytes(n: float) -> str:
    """Binary units, one decimal: ``human_bytes(1536) == '1.5 KB'``; ``'512 bytes'`` below 1 KB.

    >>> human_bytes(2 * 1024**3)
    '2.0 GB'
    """
    for unit in ("bytes", "KB", "MB", "GB", "TB"):
        if abs(n) < 1024 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n} bytes"
