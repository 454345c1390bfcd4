"""The service object every route shares, and the FastAPI dependencies that hand it out.

`current_user` accepts a Bearer token (API clients) or the session cookie (the
browser); cookie-authenticated unsafe requests must carry the CSRF token, in the
``X-CSRF-Token`` header or the form's ``csrf_token`` field, never in the URL (URLs
end up in logs, histories and Referer headers). An upload form (multipart, on
`UPLOAD_PATHS` only) cannot be read before the route streams it: there the check
is handed to `autodl.service.uploads.receive`, which makes it before the first byte
of the file is stored.
Routes declare what they need with ``Annotated`` aliases: `DB`, `User`, `Admin`.

`DB` is a read-only session for safe methods (GET, HEAD, OPTIONS) and a writing one
for the others: on SQLite, pages and API reads then take no write lock and never
queue behind job processes, uploads and heartbeats (`Database.read_session`). A GET
route that tried to write would fail loudly (`ReadOnlyError`); it must not.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Annotated

from fastapi import Depends, Path, Request
from sqlalchemy.orm import Session

from autodl.service import auth
from autodl.service.db import Database
from autodl.service.dispatch import Dispatcher
from autodl.service.limits import RateLimiter
from autodl.service.models import User as UserRow
from autodl.service.storage import Storage
from autodl.settings import Settings

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
#: A row id in a URL: past 2**63-1 the database cannot take it (a 422, not a 500).
RowId = Annotated[int, Path(ge=1, le=2**63 - 1)]
#: The routes that take an upload (POST): the only ones that accept a multipart body.
UPLOAD_PATHS = frozenset({"/api/v1/jobs", "/jobs/new"})
#: Upload routes with a job id in them: new data for a run's model (`predictions`).
UPLOAD_PATTERN = re.compile(r"(/api/v1)?/jobs/[0-9]{1,19}/predictions")


def is_upload_path(path: str) -> bool:
    """Whether ``path`` is an upload route (`UPLOAD_PATHS`, `UPLOAD_PATTERN`)."""
    return path in UPLOAD_PATHS or UPLOAD_PATTERN.fullmatch(path) is not None


class ServiceError(Exception):
    """An error for the client: JSON under /api, an error page elsewhere.

    ``extra`` are further fields of the JSON answer; ``headers``, of the answer."""

    def __init__(
        self,
        status: int,
        message: str,
        hint: str | None = None,
        *,
        headers: dict[str, str] | None = None,
        **extra,
    ):
        super().__init__(message)
        self.status, self.message, self.hint, self.extra = status, message, hint, extra
        self.headers = headers or {}


class NotSignedIn(ServiceError):
    def __init__(self, message: str = "Sign in first."):
        super().__init__(
            401,
            message,
            "Send 'Authorization: Bearer <token>' (create a token on your Account page).",
        )


@dataclass
class Service:
    settings: Settings
    db: Database
    storage: Storage
    signer: auth.SessionSigner
    dispatcher: Dispatcher
    limiter: RateLimiter  # sign-in, sign-up and password attempts (in this process)
    curves: dict = field(default_factory=dict)  # job id -> live curve cache (api.curves)


def get_service(request: Request) -> Service:
    return request.app.state.service


ServiceDep = Annotated[Service, Depends(get_service)]


def get_db(request: Request, service: ServiceDep) -> Iterator[Session]:
    if request.method in SAFE_METHODS:
        with service.db.read_session() as s:
            yield s
    else:
        with service.db.session() as s:
            yield s


#: scope="function": the session commits when the route returns, before the response is
#: sent, so the request a redirect leads to (e.g. the page after sign-up) sees the write.
DB = Annotated[Session, Depends(get_db, scope="function")]


def _bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def optional_user(request: Request, service: ServiceDep) -> UserRow | None:
    """The signed-in user or None. Records how (``request.state.auth``) and the session id.

    It reads in a session of its own (no write lock); a token's "last used" time,
    written at most once a minute, is written in a short session of its own, so that
    a route's session never holds SQLite's write lock through a long upload.
    The user comes back detached; a route that changes it merges it into its session.
    """
    token = _bearer(request)
    touch = None
    with service.db.read_session() as db:
        if token is not None:
            row = auth.token_row(db, token)
            if row is None:
                raise NotSignedIn("The API token is not valid (revoked, or mistyped).")
            user = row.user
            touch = row.id if auth.needs_touch(row) else None
            request.state.auth = "token"
        else:
            data = service.signer.loads(request.cookies.get(auth.COOKIE_NAME))
            if data is None:
                return None
            user = db.get(UserRow, data.user_id)
            if not service.signer.matches(data, user):
                return None
            request.state.auth = "cookie"
            request.state.sid = data.sid
    if touch is not None:
        with service.db.session() as db:
            auth.touch_token(db, touch)
    request.state.user = user
    return user


OptionalUser = Annotated[UserRow | None, Depends(optional_user)]


async def csrf_token_of(request: Request) -> str | None:
    """The CSRF token a request carries: its header, or its URL-encoded form's field."""
    token = request.headers.get("x-csrf-token")
    if token:
        return token
    ctype = request.headers.get("content-type", "")
    if ctype.startswith("application/x-www-form-urlencoded"):
        form = await request.form()
        value = form.get("csrf_token")
        return value if isinstance(value, str) else None
    return None


def _is_upload_form(request: Request) -> bool:
    return (
        request.method == "POST"
        and is_upload_path(request.url.path)
        and request.headers.get("content-type", "").startswith("multipart/form-data")
        and not request.headers.get("x-csrf-token")
    )


def _bad_csrf() -> ServiceError:
    return ServiceError(
        403,
        "The form's security token is missing or out of date.",
        "Reload the page and try again.",
    )


async def current_user(request: Request, service: ServiceDep, user: OptionalUser) -> UserRow:
    if user is None:
        raise NotSignedIn()
    if request.method not in SAFE_METHODS and request.state.auth == "cookie":
        sid = request.state.sid
        if _is_upload_form(request):
            # uploads.receive calls this with the form's csrf_token field before it
            # stores any file data; it refuses the upload if it was never called.
            request.state.csrf_check = lambda token: service.signer.csrf_ok(sid, token)
        elif not service.signer.csrf_ok(sid, await csrf_token_of(request)):
            raise _bad_csrf()
    return user


User = Annotated[UserRow, Depends(current_user)]


def admin_user(user: User) -> UserRow:
    if not user.is_admin:
        raise ServiceError(403, "Only an administrator can do this.")
    return user


Admin = Annotated[UserRow, Depends(admin_user)]
