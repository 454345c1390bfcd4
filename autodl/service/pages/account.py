"""Sign up, sign in, sign out; the account page (API tokens, quota, password, deletion);
the admin page.

Sign-in is limited per client address and per account name, sign-up per address
and per name (`limits.RateLimiter`, AUTODL_LOGIN_ATTEMPTS in
AUTODL_LOGIN_WINDOW_SECONDS): past it, 429 with Retry-After. Sign-up says when a
name is taken (there is no e-mail to send a neutral answer to, and a person must
be able to pick another name); that answer counts against the address's limit, so
finding out which names exist costs as much as guessing passwords.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import select

from autodl.service import accounts, auth
from autodl.service.deps import DB, Admin, OptionalUser, RowId, ServiceDep, ServiceError, User
from autodl.service.limits import client_address
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
    _set_session(service, response, user)
    return response


def _set_session(service, response, user: UserRow) -> None:
    response.set_cookie(
        auth.COOKIE_NAME,
        service.signer.dumps(user),
        max_age=auth.SESSION_MAX_AGE,
        httponly=True,
        samesite="lax",
        secure=not service.settings.development,
    )


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
    address = "signup:" + client_address(request)
    name_key = "signup-" + accounts.name_key(name)
    service.limiter.check(address, name_key, what="sign-up attempts")
    # Every attempt counts for the address: each creates an account or answers
    # whether a name is taken; a refused one counts for the name too.
    service.limiter.hit(address)
    error = "The two passwords differ." if password2 and password2 != password else None
    if error is None:
        try:
            user = auth.create_user(db, name.strip(), password)
        except auth.AuthError as e:
            error = e.message
    if error:
        service.limiter.hit(name_key)
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
    keys = ("login:" + client_address(request), accounts.name_key(name))
    service.limiter.check(*keys, what="sign-in attempts")
    service.limiter.hit(*keys)  # before the hash: a burst of requests cannot outrun its count
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
    service.limiter.forgive(keys[0])  # only failures count for the address
    service.limiter.reset(keys[1])  # the account's owner: the name's count starts again
    return _signed_in(service, user, next)


@router.post("/logout")
def logout(db: DB, user: User):
    """Sign out: every session of the user ends (a copied cookie stops working too)."""
    db.merge(user).session_version += 1
    response = RedirectResponse("/", status_code=303)
    response.delete_cookie(auth.COOKIE_NAME)
    return response


DONE = {
    "revoked": "The token was revoked.",
    "password": "Your password was changed; every other device was signed out.",
}


#: A new token's secret travels from the POST to the page it redirects to in this cookie:
#: signed, HttpOnly, only sent to /account, read once and deleted by that page, and
#: worthless after NEW_TOKEN_SECONDS. Never in the address (it would stay in the history
#: and in server logs); a refresh of the page shows the token list without it.
NEW_TOKEN_COOKIE = "autodl_new_token"
NEW_TOKEN_SECONDS = 120


def _new_token_serializer(service) -> URLSafeTimedSerializer:
    # A key derived from the server's secret key (an HMAC of it; session ids are random
    # and anonymous ones start with "anon:", so no form ever carries this value).
    return URLSafeTimedSerializer(
        service.signer.csrf_token("new-token-cookie"), salt="autodl-new-token"
    )


def _new_token(request: Request, service, db, user: UserRow) -> tuple[str, str] | None:
    """(secret, name) of the token this browser just created, or None."""
    cookie = request.cookies.get(NEW_TOKEN_COOKIE)
    if not cookie:
        return None
    try:
        data = _new_token_serializer(service).loads(cookie, max_age=NEW_TOKEN_SECONDS)
        user_id, token_id, secret = int(data["u"]), int(data["t"]), str(data["s"])
    except (BadSignature, KeyError, TypeError, ValueError):
        return None
    row = db.get(ApiToken, token_id)
    if user_id != user.id or row is None or row.user_id != user.id:
        return None  # another account's, or revoked since
    return secret, row.name


@router.get("/account")
def account_page(
    request: Request, service: ServiceDep, db: DB, user: User, done: str | None = None
):
    tokens = db.scalars(
        select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
    ).all()
    new = _new_token(request, service, db, user)
    response = render(
        request,
        "account.html",
        tokens=tokens,
        usage=usage(db, user, service.settings),
        message=DONE.get(done or ""),
        new_token=new[0] if new else None,
        new_token_name=new[1] if new else None,
    )
    if NEW_TOKEN_COOKIE in request.cookies:
        response.delete_cookie(NEW_TOKEN_COOKIE, path="/account")  # shown only this once
    response.headers["Cache-Control"] = "no-store"  # nor kept by the browser's back button
    return response


@router.get("/account/password")
def password_page(request: Request, user: User):
    return render(request, "password.html")


@router.post("/account/password")
def password_change(
    request: Request,
    service: ServiceDep,
    db: DB,
    user: User,
    current_password: Text,
    new_password: Text,
    new_password2: Text,
):
    try:
        row = accounts.change_password(
            service, db, user, current_password, new_password, new_password2
        )
    except ServiceError as e:
        if e.status not in (403, 422):
            raise
        return render(request, "password.html", status=e.status, error=e.message)
    response = RedirectResponse("/account?done=password", status_code=303)
    _set_session(service, response, row)  # this browser stays signed in
    return response


@router.get("/account/delete")
def delete_page(request: Request, db: DB, user: User):
    return render(request, "delete_account.html", summary=accounts.account_summary(db, user))


@router.post("/account/delete")
def delete_account(request: Request, service: ServiceDep, db: DB, user: User, password: Text):
    try:
        ids = accounts.delete_account(service, db, user, password)
    except ServiceError as e:
        if e.status not in (403, 409):
            raise
        summary = accounts.account_summary(db, user)
        return render(
            request, "delete_account.html", status=e.status, error=e.message, summary=summary
        )
    db.commit()  # gone before the dispatcher looks, and before the answer
    for job_id in ids:
        service.dispatcher.notify(job_id)
    response = render(request, "delete_account.html", user=None, deleted=True)
    response.delete_cookie(auth.COOKIE_NAME)
    return response


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
    # POST-redirect-GET: a refresh of the page shows it again instead of creating another.
    response = RedirectResponse("/account", status_code=303)
    response.set_cookie(
        NEW_TOKEN_COOKIE,
        _new_token_serializer(service).dumps({"u": user.id, "t": row.id, "s": secret}),
        max_age=NEW_TOKEN_SECONDS,
        path="/account",
        httponly=True,
        samesite="strict",
        secure=not service.settings.development,
    )
    return response


@router.get("/account/tokens")
def tokens_page(user: User):
    """Where the form posts; a visit (a bookmark, an old tab) goes to the account page."""
    return RedirectResponse("/account", status_code=303)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(token_id: RowId, db: DB, user: User):
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


#: The largest quotas the admin form takes: beyond them a value is a typo, and they
#: keep within the database's integer columns.
MAX_JOBS_PER_DAY = 1_000_000
MAX_STORAGE_GB = 1_000_000  # about a petabyte


def _quota_number(field: str, raw: str, *, whole: bool, most: float) -> float | None:
    """A quota from the admin form: None when empty; ServiceError 422 naming the field."""
    raw = raw.strip()
    if not raw:
        return None
    kind = "a whole number" if whole else "a number"
    try:
        value = int(raw) if whole else float(raw)
    except ValueError:
        value = None
    if value is None or value != value or value in (float("inf"), float("-inf")):
        raise ServiceError(
            422,
            f"{field} is {raw[:40]!r}: not {kind}.",
            f"Type {kind} from 0 to {most:g}, or leave it empty for the server's default.",
        )
    if not 0 <= value <= most:
        raise ServiceError(
            422,
            f"{field} is {raw[:40]}: it must be from 0 to {most:g}.",
            "Leave it empty for the server's default.",
        )
    return value


@router.post("/admin/users/{user_id}/quota")
def admin_quota(
    user_id: RowId,
    db: DB,
    admin: Admin,
    jobs_per_day: Text = "",
    storage_gb: Text = "",
    compute_hours: Text = "",
):
    jobs = _quota_number("Jobs/day", jobs_per_day, whole=True, most=MAX_JOBS_PER_DAY)
    gb = _quota_number("GB", storage_gb, whole=False, most=MAX_STORAGE_GB)
    hours = _quota_number("Compute h/day", compute_hours, whole=False, most=24 * 365)
    user = db.get(UserRow, user_id)
    if user is None:
        raise ServiceError(404, f"No user {user_id}.")
    user.jobs_per_day = None if jobs is None else int(jobs)
    user.storage_quota_bytes = None if gb is None else round(gb * 1024**3)
    user.compute_seconds_per_day = None if hours is None else hours * 3600
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
