"""The signed-in user, API tokens, password and account deletion; administrators' quotas."""

from __future__ import annotations

from fastapi import APIRouter, Response
from sqlalchemy import select

from autodl.service import accounts, auth
from autodl.service.api.schemas import (
    AccountDeleteIn,
    ErrorOut,
    MeOut,
    PasswordIn,
    QuotaIn,
    TokenCreatedOut,
    TokenIn,
    TokenOut,
    UserAdminOut,
)
from autodl.service.deps import DB, Admin, RowId, ServiceDep, ServiceError, User
from autodl.service.models import ApiToken
from autodl.service.models import User as UserRow
from autodl.service.present import iso
from autodl.service.quotas import usage

router = APIRouter(responses={401: {"model": ErrorOut}})


def token_json(t: ApiToken) -> dict:
    return {
        "id": t.id,
        "name": t.name,
        "prefix": t.prefix,
        "created_at": iso(t.created_at),
        "last_used_at": iso(t.last_used_at),
    }


def user_json(db, user: UserRow, settings) -> dict:
    return {
        "id": user.id,
        "name": user.name,
        "is_admin": user.is_admin,
        "created_at": iso(user.created_at),
        "usage": usage(db, user, settings).to_json(),
    }


@router.get("/me", response_model=MeOut, tags=["account"], summary="Who you are and your quota")
def me(db: DB, service: ServiceDep, user: User):
    return user_json(db, user, service.settings)


@router.post(
    "/account/password",
    status_code=204,
    tags=["account"],
    summary="Change your password (signs out every browser session; API tokens stay)",
    responses={403: {"model": ErrorOut}, 422: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def change_password(body: PasswordIn, db: DB, service: ServiceDep, user: User):
    accounts.change_password(service, db, user, body.current_password, body.new_password)
    return Response(status_code=204)


@router.post(
    "/account/delete",
    status_code=204,
    tags=["account"],
    summary="Delete your account: every job (with its files), token and session",
    responses={403: {"model": ErrorOut}, 409: {"model": ErrorOut}, 429: {"model": ErrorOut}},
)
def delete_account(body: AccountDeleteIn, db: DB, service: ServiceDep, user: User):
    ids = accounts.delete_account(service, db, user, body.password)
    db.commit()  # gone before the dispatcher looks
    for job_id in ids:
        service.dispatcher.notify(job_id)
    return Response(status_code=204)


@router.get("/tokens", response_model=list[TokenOut], tags=["account"], summary="Your API tokens")
def list_tokens(db: DB, user: User):
    return [
        token_json(t)
        for t in db.scalars(
            select(ApiToken).where(ApiToken.user_id == user.id).order_by(ApiToken.id)
        )
    ]


@router.post(
    "/tokens",
    status_code=201,
    response_model=TokenCreatedOut,
    tags=["account"],
    summary="Create an API token (the secret is shown once)",
)
def create_token(body: TokenIn, db: DB, user: User):
    try:
        row, secret = auth.create_token(db, user, body.name)
    except auth.AuthError as e:
        raise ServiceError(422, e.message) from None
    return {**token_json(row), "token": secret}


@router.delete(
    "/tokens/{token_id}", status_code=204, tags=["account"], summary="Revoke an API token"
)
def revoke_token(token_id: RowId, db: DB, user: User):
    row = db.get(ApiToken, token_id)
    if row is None or row.user_id != user.id:
        raise ServiceError(404, f"No token {token_id} among your tokens.")
    db.delete(row)
    return Response(status_code=204)


@router.get(
    "/admin/users",
    response_model=list[UserAdminOut],
    tags=["admin"],
    summary="Every user with their usage (administrators)",
)
def list_users(db: DB, service: ServiceDep, admin: Admin):
    return [
        user_json(db, u, service.settings)
        for u in db.scalars(select(UserRow).order_by(UserRow.name))
    ]


@router.patch(
    "/admin/users/{user_id}",
    response_model=UserAdminOut,
    tags=["admin"],
    summary="Change a user's quotas (administrators)",
)
def set_quota(user_id: RowId, body: QuotaIn, db: DB, service: ServiceDep, admin: Admin):
    user = db.get(UserRow, user_id)
    if user is None:
        raise ServiceError(404, f"No user {user_id}.")
    fields = body.model_fields_set
    if "jobs_per_day" in fields:
        user.jobs_per_day = body.jobs_per_day
    if "storage_quota_bytes" in fields:
        user.storage_quota_bytes = body.storage_quota_bytes
    if "compute_seconds_per_day" in fields:
        user.compute_seconds_per_day = body.compute_seconds_per_day
    db.flush()
    return user_json(db, user, service.settings)


@router.get(
    "/health", tags=["service"], summary="Liveness: the server answers and its database too"
)
def health(db: DB):
    db.execute(select(1))
    return {"status": "ok"}
