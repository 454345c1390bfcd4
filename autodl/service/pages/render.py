"""Rendering pages: one Jinja2 environment, the signed-in user and a CSRF token in every page."""

from __future__ import annotations

import secrets
from datetime import UTC, datetime
from pathlib import Path

from fastapi import Request
from fastapi.responses import HTMLResponse
from fastapi.templating import Jinja2Templates

from autodl._units import human_bytes

TEMPLATES = Jinja2Templates(directory=Path(__file__).resolve().parents[1] / "templates")
PRE_COOKIE = "autodl_pre"  # binds the sign-in/sign-up forms' CSRF token to this browser


def _duration(seconds) -> str:
    if seconds is None:
        return "–"
    seconds = float(seconds)
    if seconds < 60:
        return f"{seconds:.0f} s"
    if seconds < 3600:
        rest = round(seconds % 60)
        return f"{seconds // 60:.0f} min" + (f" {rest:02d} s" if rest else "")
    rest = round(seconds % 3600 // 60)
    return f"{seconds // 3600:.0f} h" + (f" {rest:02d} min" if rest else "")


def _when(dt) -> str:
    if dt is None:
        return "–"
    if isinstance(dt, str):
        dt = datetime.fromisoformat(dt.replace("Z", "+00:00"))
    return dt.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _score(value, digits: int = 4) -> str:
    return "–" if value is None else f"{value:.{digits}f}"


TEMPLATES.env.filters.update(duration=_duration, when=_when, score=_score, bytes=human_bytes)
TEMPLATES.env.globals["STATE_LABELS"] = {
    "queued": "Queued",
    "running": "Running",
    "scoring": "Scoring",
    "finished": "Finished",
    "failed": "Failed",
    "cancelled": "Cancelled",
}


def csrf_for(request: Request) -> tuple[str, str | None]:
    """(token, new pre-session nonce to set as a cookie or None)."""
    signer = request.app.state.service.signer
    sid = getattr(request.state, "sid", None)
    if sid:
        return signer.csrf_token(sid), None
    nonce = request.cookies.get(PRE_COOKIE)
    fresh = None
    if not nonce:
        nonce = fresh = secrets.token_urlsafe(16)
    return signer.anonymous_csrf(nonce), fresh


def render(request: Request, template: str, status: int = 200, **context) -> HTMLResponse:
    token, fresh = csrf_for(request)
    settings = request.app.state.service.settings
    context.setdefault("user", getattr(request.state, "user", None))
    context.update(request=request, csrf=token, settings=settings, path=request.url.path)
    response = TEMPLATES.TemplateResponse(request, template, context, status_code=status)
    if fresh:
        response.set_cookie(
            PRE_COOKIE, fresh, httponly=True, samesite="lax", secure=not settings.development
        )
    return response


def error_page(request: Request, status: int, message: str, hint: str | None) -> HTMLResponse:
    return render(
        request, "error.html", status=status, status_code=status, message=message, hint=hint
    )
