"""Accounts: password hashing, API tokens, signed session cookies and CSRF tokens.

- Passwords: argon2id (argon2-cffi's defaults), rehashed when the parameters change.
- API tokens: 32 random bytes shown once; only their SHA-256 is stored. A fast hash
  is right here (unlike passwords): the secret has 256 bits, nothing to brute-force.
- Sessions: a cookie holding {user id, the user's creation time, session version,
  random session id}, signed with the secret key (itsdangerous), HttpOnly and
  SameSite=Lax, Secure in production. Signing out and changing the password bump the
  user's ``session_version``: every cookie of that user stops working, on every
  device. The creation time ties a cookie to one account: SQLite may give a deleted
  account's id to the next new one.
- The secret key: AUTODL_SECRET_KEY, or (development, unset) a random key generated
  once into ``<data>/secret_key``, mode 0600 (`secret_key`). No key is in the code.
- CSRF: every unsafe request authenticated by the cookie must carry a token (form
  field ``csrf_token`` or header ``X-CSRF-Token``, never the URL) equal to an HMAC
  of the session id. Bearer-token requests carry no cookie, so they need none.
- Hashing: each argon2 hash takes 64 MiB and 0.1 to 1 s of CPU (4 lanes); at most
  ``HASH_CONCURRENCY`` run at once, a request waits ``HASH_WAIT_SECONDS`` for its
  turn and is then refused (`HashingBusy`, a 503), so a sign-in flood cannot take
  the server's memory.
"""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import secrets
import threading
from dataclasses import dataclass
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from autodl.errors import AutoDLError
from autodl.service.models import ApiToken, User, utcnow
from autodl.settings import MIN_SECRET_KEY, Settings

COOKIE_NAME = "autodl_session"
SESSION_MAX_AGE = 14 * 24 * 3600
TOKEN_PREFIX = "adl_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MIN_PASSWORD = 8

MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte of password is no password
SECRET_FILE = "secret_key"
HASH_CONCURRENCY = 2
HASH_WAIT_SECONDS = 3.0

_hasher = PasswordHasher()
_hashing = threading.BoundedSemaphore(HASH_CONCURRENCY)


class AuthError(Exception):
    """A refused credential or an invalid account field; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class HashingBusy(Exception):
    """Every password-hashing slot stayed busy for ``HASH_WAIT_SECONDS``: answer 503."""

    retry_after = 5


def _gated(fn, *args):
    """Run an argon2 call once a hashing slot is free (bounded memory: 64 MiB each)."""
    if not _hashing.acquire(timeout=HASH_WAIT_SECONDS):
        raise HashingBusy()
    try:
        return fn(*args)
    finally:
        _hashing.release()


def hash_password(password: str) -> str:
    return _gated(_hasher.hash, password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _gated(_hasher.verify, stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_password(password: str) -> None:
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"The password must have at least {MIN_PASSWORD} characters.")
    if len(password) > MAX_PASSWORD:
        raise AuthError(f"The password must have at most {MAX_PASSWORD} characters.")


def check_new_account(name: str, password: str) -> None:
    if not NAME_RE.match(name):
        raise AuthError(
            "A user name has 2 to 64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    check_password(password)


def create_user(db: Session, name: str, password: str, *, is_admin: bool = False) -> User:
    """Add a user (name and password checked); AuthError when the name is taken."""
    check_new_account(name, password)
    if db.scalar(select(User).where(User.name == name)) is not None:
        raise AuthError(f"The user name {name!r} is taken; choose another.")
    user = User(name=name, password_hash=hash_password(password), is_admin=is_admin)
    db.add(user)
    db.flush()
    return user


def authenticate(db: Session, name: str, password: str) -> User | None:
    user = db.scalar(select(User).where(User.name == name))
    if user is None:
        hash_password(password)  # same cost as a real check: no user-name oracle by timing
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


def change_password(user: User, current: str, new: str, again: str | None = None) -> None:
    """Set a new password (the current one checked) and sign out every session of ``user``.

    ``user`` must belong to a writing session. API tokens stay valid: revoke them apart.
    """
    if not verify_password(user.password_hash, current):
        raise AuthError("The current password is wrong.")
    if again is not None and again != new:
        raise AuthError("The two new passwords differ.")
    check_password(new)
    user.password_hash = hash_password(new)
    user.session_version += 1


# ---------------------------------------------------------------- API tokens


def _token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(db: Session, user: User, name: str) -> tuple[ApiToken, str]:
    """A new API token for ``user``: the row and the secret (shown once, never stored)."""
    name = name.strip()
    if not name or len(name) > 100:
        raise AuthError("Give the token a name of 1 to 100 characters (e.g. 'laptop').")
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(user_id=user.id, name=name, token_hash=_token_hash(secret), prefix=secret[:10])
    db.add(row)
    db.flush()
    return row, secret


def token_row(db: Session, token: str) -> ApiToken | None:
    """The token's row (its user loaded), or None for an unknown or revoked token."""
    row = db.scalar(select(ApiToken).where(ApiToken.token_hash == _token_hash(token)))
    if row is not None:
        row.user  # noqa: B018 - loaded now: the row outlives its (read-only) session
    return row


def needs_touch(row: ApiToken) -> bool:
    """Whether the "last used" time is due: written at most once a minute, since polling
    clients would otherwise turn every read into a write."""
    return row.last_used_at is None or (utcnow() - row.last_used_at).total_seconds() > 60


def touch_token(db: Session, token_id: int) -> None:
    db.execute(update(ApiToken).where(ApiToken.id == token_id).values(last_used_at=utcnow()))


# ------------------------------------------------------ sessions and CSRF


@dataclass(frozen=True)
class SessionData:
    user_id: int
    version: int
    sid: str
    stamp: int = 0


def user_stamp(user: User) -> int:
    """The account's creation time in microseconds: a cookie names one account, not an id."""
    return int(user.created_at.timestamp() * 1_000_000) if user.created_at else 0


class SessionSigner:
    """Signs and reads session cookies; derives CSRF tokens from the session id."""

    def __init__(self, secret_key: str):
        self._key = secret_key.encode()
        self._serializer = URLSafeTimedSerializer(secret_key, salt="autodl-session")

    def dumps(self, user: User) -> str:
        data = {
            "u": user.id,
            "c": user_stamp(user),
            "v": user.session_version,
            "s": secrets.token_urlsafe(16),
        }
        return self._serializer.dumps(data)

    def loads(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
            return SessionData(int(data["u"]), int(data["v"]), str(data["s"]), int(data["c"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    @staticmethod
    def matches(data: SessionData, user: User | None) -> bool:
        """Whether the cookie's session is still one of ``user``'s (not signed out since)."""
        return (
            user is not None
            and user.session_version == data.version
            and user_stamp(user) == data.stamp
        )

    def csrf_token(self, sid: str) -> str:
        return hmac.new(self._key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(sid), token)

    def anonymous_csrf(self, nonce: str) -> str:
        """CSRF token for the sign-in and sign-up forms (tied to a pre-session cookie)."""
        return self.csrf_token("anon:" + nonce)


# ------------------------------------------------------------- the secret key


def secret_key(settings: Settings) -> str:
    """AUTODL_SECRET_KEY, or the data directory's generated key (made on first use).

    The key file is written whole under a temporary name and linked into place, which
    fails if it exists: of several server processes starting on one data directory,
    one creates it and the others read that same key. Mode 0600: only the service's
    user may read it.
    """
    settings.check_secret()
    if settings.secret_key:
        return settings.secret_key
    path = Path(settings.data_dir) / SECRET_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    if not path.exists():
        tmp = path.with_name(f".{SECRET_FILE}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.fchmod(fd, 0o600)
            os.write(fd, (secrets.token_urlsafe(48) + "\n").encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        try:
            os.link(tmp, path)  # atomic, and refuses to replace another process's key
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
    if path.stat().st_mode & 0o077:
        os.chmod(path, 0o600)  # copied in with looser rights: no one else may read it
    key = path.read_text().strip()
    if len(key) < MIN_SECRET_KEY:
        raise AutoDLError(
            f"{path} holds a key shorter than {MIN_SECRET_KEY} characters",
            "Delete the file (a new key is made on the next start; everyone signs in "
            "again), or set AUTODL_SECRET_KEY.",
        )
    return key
