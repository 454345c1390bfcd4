"""`create_app(settings)`: the web service — pages, the JSON API and the embedded supervisor.

The database schema is brought up to date when the app is made (Alembic), so
``autodl serve`` works on an empty data directory. The supervisor starts and
stops with the app (the lifespan), never at import. Request bodies are bounded
by `limits.RequestLimits`; the secret key comes from `auth.secret_key`.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from autodl.service import auth
from autodl.service.db import Database
from autodl.service.deps import UPLOAD_PATHS, UPLOAD_PATTERN, NotSignedIn, Service, ServiceError
from autodl.service.dispatch import Dispatcher
from autodl.service.dispatch.embedded import Supervisor
from autodl.service.limits import RateLimited, RateLimiter, RequestLimits
from autodl.service.storage import TMP_MAX_AGE, Storage
from autodl.service.uploads import MULTIPART_SLACK
from autodl.settings import Settings

HERE = Path(__file__).parent
PAGE_CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'; form-action 'self'"


def create_app(
    settings: Settings | None = None, *, dispatcher: Dispatcher | None = None
) -> FastAPI:
    """The ASGI app. ``dispatcher`` replaces the embedded supervisor (tests, or Celery later)."""
    settings = settings or Settings.from_env()
    key = auth.secret_key(settings)  # refuses a short key, or none in production
    storage = Storage(settings.data_dir)
    # Uploads left behind by a server that died mid-upload; younger ones may be another
    # server's upload being checked (see storage.TMP_MAX_AGE).
    storage.sweep_tmp(max(TMP_MAX_AGE, 2 * settings.validate_wall_seconds))
    db = Database(settings.sqlalchemy_url)
    db.upgrade()
    service = Service(
        settings=settings,
        db=db,
        storage=storage,
        signer=auth.SessionSigner(key),
        dispatcher=dispatcher or make_dispatcher(settings, db, storage),
        limiter=RateLimiter(settings.login_attempts, settings.login_window_seconds),
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        service.dispatcher.start()
        try:
            yield
        finally:
            service.dispatcher.stop()
            db.dispose()

    app = FastAPI(
        title="AutoDL Self-Service",
        version="1",
        description="Upload a classification dataset in the AutoDL format, get a model's learning curve, scores and predictions. Authenticate with `Authorization: Bearer <token>` (create tokens on your Account page).",
        openapi_url="/api/v1/openapi.json",
        docs_url=None,  # Swagger UI would load scripts from a CDN; the help pages document the API
        redoc_url=None,
        lifespan=lifespan,
    )
    app.state.service = service
    app.add_middleware(
        RequestLimits,
        upload_paths=UPLOAD_PATHS,
        upload_pattern=UPLOAD_PATTERN,
        upload_limit=settings.max_upload_bytes + MULTIPART_SLACK,
    )
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")

    from autodl.service import api, pages

    app.include_router(api.router)
    app.include_router(pages.router)
    _error_handlers(app)

    @app.middleware("http")
    async def security_headers(request: Request, call_next):
        response = await call_next(request)
        h = response.headers
        h.setdefault("X-Content-Type-Options", "nosniff")
        h.setdefault("Referrer-Policy", "same-origin")
        h.setdefault("X-Frame-Options", "DENY")
        h.setdefault("Content-Security-Policy", PAGE_CSP)
        if request.url.path.startswith("/api/") or request.url.path.startswith("/jobs"):
            h.setdefault("Cache-Control", "no-store")
        return response

    return app


def make_dispatcher(settings: Settings, db: Database, storage: Storage) -> Dispatcher:
    """Celery when AUTODL_BROKER_URL is set (jobs run on `autodl worker`s), else embedded."""
    if settings.broker_url:
        from autodl.service.dispatch.celery import CeleryDispatcher

        return CeleryDispatcher(settings, db)
    return Supervisor(settings, db, storage)


def _is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/")


def _error_handlers(app: FastAPI) -> None:
    from autodl.service.pages.render import error_page

    @app.exception_handler(ServiceError)
    async def service_error(request: Request, exc: ServiceError):
        if isinstance(exc, NotSignedIn) and not _is_api(request):
            return RedirectResponse(f"/login?next={request.url.path}", status_code=303)
        if _is_api(request):
            body = {"detail": exc.message, "hint": exc.hint, **exc.extra}
            headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else {}
            return JSONResponse(body, status_code=exc.status, headers=headers | exc.headers)
        response = error_page(request, exc.status, exc.message, exc.hint)
        response.headers.update(exc.headers)
        return response

    @app.exception_handler(RateLimited)
    async def rate_limited(request: Request, exc: RateLimited):
        return _answer(
            request,
            429,
            exc.message,
            "Wait, then try again.",
            {"Retry-After": str(exc.retry_after)},
        )

    @app.exception_handler(auth.HashingBusy)
    async def hashing_busy(request: Request, exc: auth.HashingBusy):
        return _answer(
            request,
            503,
            "The server is checking too many passwords at once.",
            f"Try again in {exc.retry_after} s.",
            {"Retry-After": str(exc.retry_after)},
        )

    def _answer(request: Request, status: int, message: str, hint: str | None, headers: dict):
        if _is_api(request):
            return JSONResponse(
                {"detail": message, "hint": hint}, status_code=status, headers=headers
            )
        response = error_page(request, status, message, hint)
        response.headers.update(headers)
        return response

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException):
        message = {
            404: "There is nothing at this address.",
            405: "This address does not accept that method.",
        }.get(exc.status_code, str(exc.detail))
        if _is_api(request):
            return JSONResponse({"detail": message, "hint": None}, status_code=exc.status_code)
        return error_page(request, exc.status_code, message, None)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError):
        parts = []
        for err in exc.errors():
            where = ".".join(str(x) for x in err.get("loc", ()) if x != "body")
            parts.append(f"{where}: {err.get('msg')}" if where else str(err.get("msg")))
        message = "The request is not valid: " + "; ".join(parts)
        if _is_api(request):
            return JSONResponse(
                {
                    "detail": message,
                    "hint": "See /api/v1/openapi.json for the expected fields.",
                    "errors": [
                        {"loc": list(e.get("loc", ())), "msg": e.get("msg")} for e in exc.errors()
                    ],
                },
                status_code=422,
            )
        return error_page(request, 422, message, None)
