"""What one client may send: request body sizes, multipart only where an upload is expected,
and how often it may try a password.

`RequestLimits` (an ASGI middleware) bounds every request body as it streams in,
whether or not it declares a Content-Length (chunked bodies are counted too):
``MAX_FORM_BYTES`` for forms and JSON, the upload limit on the upload routes. A
multipart body is refused (415) on every route but the upload routes, before a byte
of it is read: Starlette would otherwise spool its file parts to /tmp (sign-in
forms included). The limits surface as ordinary HTTP errors raised from the body
stream, so pages answer with the error page and the API with JSON.

`RateLimiter` counts attempts per key (a client address, an account name) in a
sliding window. It lives in the server process's memory: each process counts on
its own, so N server processes on one database allow up to N times the attempts,
and a restart forgets the counts. That bounds guessing well enough for the service's
one-process default; in front of several processes, limit at the proxy too.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

#: Largest body of a request that is not an upload (forms, JSON): they hold a few fields.
MAX_FORM_BYTES = 1024 * 1024


class RequestLimits:
    """Bounds request bodies; refuses multipart outside ``upload_paths`` (POST only there)."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        upload_paths: Iterable[str],
        upload_limit: int,
        upload_pattern: re.Pattern | None = None,
    ):
        self.app = app
        self.upload_paths = frozenset(upload_paths)
        self.upload_pattern = upload_pattern  # upload routes with an id in them
        self.upload_limit = upload_limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        is_upload = scope["method"] == "POST" and (
            path in self.upload_paths
            or (self.upload_pattern is not None and self.upload_pattern.fullmatch(path) is not None)
        )
        limit = self.upload_limit if is_upload else MAX_FORM_BYTES
        headers = dict(scope["headers"])
        ctype = headers.get(b"content-type", b"").lower()
        declared = headers.get(b"content-length", b"")
        refusal: HTTPException | None = None
        if not is_upload and ctype.startswith(b"multipart/"):
            refusal = HTTPException(
                415,
                "This address does not accept file uploads (multipart forms); "
                "send the form's fields URL-encoded, or JSON to the API.",
            )
        elif declared.isdigit() and int(declared) > limit:
            refusal = _too_large(limit)
        received = 0

        async def bounded_receive() -> Message:
            # Raised from the body stream, so the app's error handlers answer: a route
            # that never reads its body is not refused.
            nonlocal received
            if refusal is not None:
                raise refusal
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _too_large(limit)
            return message

        await self.app(scope, bounded_receive, send)


def _too_large(limit: int) -> HTTPException:
    from autodl._units import human_bytes

    return HTTPException(413, f"The request body is larger than the {human_bytes(limit)} allowed.")


def client_address(scope_or_request) -> str:
    """The client's address as the server sees it (uvicorn applies X-Forwarded-For only
    from trusted proxies: ``--forwarded-allow-ips``, 127.0.0.1 by default)."""
    client = getattr(scope_or_request, "client", None)
    return client.host if client and client.host else "unknown"


class RateLimited(Exception):
    """Too many attempts; ``retry_after`` is in whole seconds."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.message, self.retry_after = message, retry_after


class RateLimiter:
    """At most ``attempts`` hits per key in any ``window`` seconds; thread-safe.

    >>> limiter = RateLimiter(2, 60.0)
    >>> limiter.hit("addr:1.2.3.4"); limiter.hit("addr:1.2.3.4")
    >>> limiter.retry_after("addr:1.2.3.4") > 0
    True
    """

    #: Keys kept at most: a flood of made-up account names must not grow memory without
    #: bound (about 200 bytes a key: 100,000 keys are some 20 MB at worst).
    MAX_KEYS = 100_000

    def __init__(
        self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.attempts, self.window, self.clock = max(1, attempts), window, clock
        self._hits: OrderedDict[str, deque[float]] = OrderedDict()
        self._lock = threading.Lock()

    def retry_after(self, *keys: str) -> float:
        """Seconds until every key may try again (0: it may now)."""
        now = self.clock()
        wait = 0.0
        with self._lock:
            for key in keys:
                hits = self._hits.get(key)
                if hits is not None and len(hits) >= self.attempts:
                    wait = max(wait, hits[0] + self.window - now)
        return max(wait, 0.0)

    def check(self, *keys: str, what: str = "attempts") -> None:
        """RateLimited when any key has used its attempts."""
        wait = self.retry_after(*keys)
        if wait > 0:
            seconds = int(wait) + 1
            raise RateLimited(
                f"Too many {what} from here: try again in {seconds} s "
                f"(at most {self.attempts} in {self.window:g} s).",
                seconds,
            )

    def hit(self, *keys: str) -> None:
        now = self.clock()
        with self._lock:
            for key in keys:
                hits = self._hits.pop(key, None) or deque(maxlen=self.attempts)
                hits.append(now)
                self._hits[key] = hits  # most recently hit last: the oldest go first
            while len(self._hits) > self.MAX_KEYS:
                self._hits.popitem(last=False)

    def forgive(self, key: str) -> None:
        """Take back one hit: attempts are counted before the password is checked (so a
        burst cannot outrun its count), and a successful one is then forgiven."""
        with self._lock:
            hits = self._hits.get(key)
            if hits:
                hits.pop()

    def reset(self, key: str) -> None:
        with self._lock:
            self._hits.pop(key, None)
