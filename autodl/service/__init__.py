"""The web service: accounts, uploads, the job queue and its supervisor, pages and the API.

`create_app(settings)` makes the ASGI app; `autodl serve` runs it. See DESIGN.md §4.
"""

from __future__ import annotations

__all__ = ["create_app"]


def create_app(*args, **kwargs):
    from autodl.service.app import create_app as _create_app

    return _create_app(*args, **kwargs)
