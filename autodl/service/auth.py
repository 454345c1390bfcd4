"""Accounts: password hashing, API tokens, signed session cookies and CSRF tokens.

- Passwords: argon2id (argon2-cffi's defaults), rehashed when the parameters change.
- API tokens: 32 random bytes shown once; only their SHA-256 is stored. A fast hash
  is right here (unlike passwords): the secret has 256 bits, nothing to brute-force.
- Sessions: a cookie holding {user id, session version, random session id}, signed
  with the secret key (itsdangerous), HttpOnly and SameSite=Lax, Secure in production.
  Bumping the user's ``session_version`` signs out every browser at once.
- CSRF: every unsafe request authenticated by the cookie must carry a token (form
  field ``csrf_token`` or header ``X-CSRF-Token``) equal to an HMAC of the session id.
  Bearer-token requests carry no cookie, so they need none.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from autodl.service.models import ApiToken, User, utcnow

COOKIE_NAME = "autodl_session"
SESSION_MAX_AGE = 14 * 24 * 3600
TOKEN_PREFIX = "adl_"
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{1,63}$")
MIN_PASSWORD = 8

_hasher = PasswordHasher()


class AuthError(Exception):
    """A refused credential or an invalid account field; ``message`` is for the user."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def verify_password(stored: str, password: str) -> bool:
    try:
        return _hasher.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def check_new_account(name: str, password: str) -> None:
    if not NAME_RE.match(name):
        raise AuthError(
            "A user name has 2 to 64 characters: letters, digits, '.', '_' or '-', "
            "starting with a letter or digit."
        )
    if len(password) < MIN_PASSWORD:
        raise AuthError(f"The password must have at least {MIN_PASSWORD} characters.")


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
        _hasher.hash(password)  # same cost as a real check: no user-name oracle by timing
        return None
    if not verify_password(user.password_hash, password):
        return None
    if _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = hash_password(password)
    return user


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


def user_for_token(db: Session, token: str) -> User | None:
    """The token's user (in a writing session: records when the token was last used)."""
    row = token_row(db, token)
    if row is None:
        return None
    if needs_touch(row):
        row.last_used_at = utcnow()
    return row.user


# ------------------------------------------------------ sessions and CSRF


@dataclass(frozen=True)
class SessionData:
    user_id: int
    version: int
    sid: str


class SessionSigner:
    """Signs and reads session cookies; derives CSRF tokens from the session id."""

    def __init__(self, secret_key: str):
        self._key = secret_key.encode()
        self._serializer = URLSafeTimedSerializer(secret_key, salt="autodl-session")

    def dumps(self, user: User) -> str:
        data = {"u": user.id, "v": user.session_version, "s": secrets.token_urlsafe(16)}
        return self._serializer.dumps(data)

    def loads(self, cookie: str | None) -> SessionData | None:
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=SESSION_MAX_AGE)
            return SessionData(int(data["u"]), int(data["v"]), str(data["s"]))
        except (BadSignature, KeyError, TypeError, ValueError):
            return None

    def csrf_token(self, sid: str) -> str:
        return hmac.new(self._key, b"csrf:" + sid.encode(), hashlib.sha256).hexdigest()

    def csrf_ok(self, sid: str, token: str | None) -> bool:
        return bool(token) and hmac.compare_digest(self.csrf_token(sid), token)

    def anonymous_csrf(self, nonce: str) -> str:
        """CSRF token for the sign-in and sign-up forms (tied to a pre-session cookie)."""
        return self.csrf_token("anon:" + nonce)
