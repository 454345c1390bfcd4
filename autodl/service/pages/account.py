"""Sign up, sign in, sign out; the account page (API tokens, quota); the admin page."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from sqlalchemy import select

from autodl.service import auth
from autodl.service.deps import DB, Admin, OptionalUser, ServiceDep, ServiceError, User
from autodl.service.models import ApiToken
from autodl.service.models import User as UserRow
from autodl.service.pages.render import PRE_COOKIE, render
from autodl.service.quotas import usage

router = APIRouter()
Text = Annotated[str, Form()]


def _check_anonymous_csrf(request: Request, service, token: str) -> None:
    nonce = request.cookies.get(PRE_COOKIE, "")
    if not nonce or not service.signer.csrf_ok("anon:" + nonce, token):
        raise ServiceError(
            403,
            "The form's security token is missing or out of date.",
            "Reload the page and try again (cookies must be enabled).",
        )


def _safe_next(target: str | None) -> str:
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/jobs"


def _signed_in(service, user: UserRow, target: str) -> RedirectResponse:
    response = RedirectResponse(_safe_next(target), status_code=303)
    response.set_cookie(
        auth.COOKIE_NAME,
        service.signer.dumps(user),
        max_age=auth.SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=not service.settings.development,
    )
    return response


@router.get("/signup")
def signup_page(request: Request, service: ServiceDep, user: OptionalUser):
    if user is not None:
        return RedirectResponse("/jobs", status_code=303)
    return render(request, "signup.html", closed=not service.settings.allow_signup)


@router.post("/signup")
def signup(
    request: Request,
    service: ServiceDep,
    db: DB,
    name: Text,
    password: Text,
    csrf_token: Text,
    password2: Annotated[str, Form()] = "",
):
    _check_anonymous_csrf(request, service, csrf_token)
    if not service.settings.allow_signup:
        raise ServiceError(
            403, "Sign-up is closed on this server.", "Ask the operator for an account."
        )
    error = "The two passwords differ." if password2 and password2 != password else None
    if error is None:
        try:
            user = auth.create_user(db, name.strip(), password)
        except auth.AuthError as e:
            error = e.message
    if error:
        return render(request, "signup.html", status=422, error=error, name=name)
    return _signed_in(service, user, "/jobs")


@router.get("/login")
def login_page(request: Request, user: OptionalUser, next: str = "/jobs"):
    if user is not None:
        return RedirectResponse(_safe_next(next), status_code=303)
    return render(request, "login.html", next=_safe_next(next))


@router.post("/login")
def login(
    request: Request,
    service: ServiceDep,
    db: DB,
    name: Text,
    password: Text,
    csrf_token: Text,
    next: Annotated[str, Form()] = "/jobs",
):
    _check_anonymous_csrf(request, service, csrf_token)
    user = auth.authenticate(db, name.strip(), password)
    if user is None:
        return render(
            request,
            "login.html",
            status=401,
            error="Wrong user name or password.",
            name=name,
            next=_safe_next(next),
        )
    return _signed_in(service, user, next)


@router.post("/logout")
def logout(user: User):
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(auth.COOKIE_NAME)
    return response


@router.get("/account")
def account_page(
    request: Request, service: ServiceDep, db: DB, user: User, new_token: str | None = None
):
    tokens = db.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()
    return render(request, "account.html", tokens=tokens, usage=usage(db, user, service.settings))


@router.post("/account/tokens")
def create_token(request: Request, service: ServiceDep, db: DB, user: User, name: Text):
    tokens = db.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()
    try:
        row, secret = auth.create_token(db, user, name)
    except auth.AuthError as e:
        return render(
            request,
            "account.html",
            status=422,
            tokens=tokens,
            usage=usage(db, user, service.settings),
            error=e.message,
        )
    tokens = [*tokens, row]
    return render(
        request,
        "account.html",
        tokens=tokens,
        usage=usage(db, user, service.settings),
        new_token=secret,
        new_token_name=row.name,
    )


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: int, db: DB, user: User):
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise ServiceError(404, "No such token among yours.")
    db.delete(row)
    return RedirectResponse("/account?done=revoked", status_code=303)


@router.post("/account/signout-everywhere")
def signout_everywhere(db: DB, user: User):
    db.merge(user).session_version += 1
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(auth.COOKIE_NAME)
    return response


@router.get("/admin")
def admin_page(request: Request, service: ServiceDep, db: DB, admin: Admin):
    users = db.scalars(select(UserRow).order_by(UserRow.name)).all()
    rows = [(u, usage(db, u, service.settings)) for u in users]
    return render(request, "admin.html", rows=rows)


@router.post("/admin/users/{user_id}/quota")
def admin_quota(user_id: int, db: DB, admin: Admin, jobs_per_day: Text = "", storage_gb: Text = ""):
    user = db.get(UserRow, user_id)
    if user is None:
        raise ServiceError(404, f"No user {user_id}.")
    try:
        user.jobs_per_day = int(jobs_per_day) if jobs_per_day.strip() else None
        user.storage_quota_bytes = int(float(storage_gb) * 1024**3) if storage_gb.strip() else None
    except ValueError:
        raise ServiceError(
            422, "Quotas are whole numbers of jobs and numbers of GB (empty: the default)."
        ) from None
    if (user.jobs_per_day or 0) < 0 or (user.storage_quota_bytes or 0) < 0:
        raise ServiceError(422, "Quotas cannot be negative.")
    return RedirectResponse("/admin?done=quota", status_code=303)


@router.get("/admin/workers")
def workers_page(request: Request, service: ServiceDep, db: DB, admin: Admin):
    """Operators: every `autodl worker` — host, GPU or CPU, current jobs, heartbeat, jobs done."""
    from autodl.service.jobs import ACTIVE
    from autodl.service.models import Job, WorkerNode, utcnow

    workers = db.scalars(select(WorkerNode).order_by(WorkerNode.name)).all()
    running: dict[str, list[int]] = {}
    for job_id, node in db.execute(
        select(Job.id, Job.node).where(Job.state.in_(ACTIVE), Job.node.is_not(None))
    ):
        running.setdefault(node, []).append(job_id)
    now = utcnow()
    timeout = service.settings.heartbeat_timeout
    rows = []
    for w in workers:
        age = (now - w.heartbeat_at).total_seconds()
        status = "stopped" if w.stopped_at else ("alive" if age <= timeout else "lost")
        rows.append((w, sorted(running.get(w.name, [])), round(age), status))
    return render(
        request,
        "workers.html",
        rows=rows,
        embedded=not service.settings.broker_url,
    )
