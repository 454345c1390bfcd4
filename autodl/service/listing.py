"""Job listings one page at a time: keyset pagination with an opaque cursor.

A page is ``limit`` jobs in the order asked for (a sort key, then the newest id
first among equals). The cursor handed back as ``next`` holds the sort and the
last row's sort value and id, so the next page starts right after that row
however many jobs were submitted or deleted meanwhile, and each page costs one
indexed query whatever its depth (no OFFSET). The cursor is base64url JSON: not
secret, not signed. A forged one only moves the start of *your own* listing
(the visibility filter is applied as always), and one that does not decode is a
422.
"""

from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime

from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import Session, defer

from autodl.service.deps import ServiceError
from autodl.service.jobinfo import SUMMARY_CHARS
from autodl.service.jobs import queue_positions, running_count, visible_jobs
from autodl.service.models import Job, User
from autodl.service.present import job_json, running_fields
from autodl.service.storage import Storage

#: Jobs per page when the client does not say (API and pages).
DEFAULT_LIMIT = 50
#: The most jobs one page may hold.
MAX_LIMIT = 200

SORTS = {
    "created": Job.created_at,
    "name": func.lower(Job.name),
    "state": Job.state,
    "budget": Job.time_budget,
    "alc": Job.alc,
    "duration": Job.duration,
    "dataset": func.lower(Job.dataset_name),
}
#: Sort keys whose column may be null: nulls come last in both directions.
NULLABLE = {"alc", "duration"}


class BadCursor(ValueError):
    """A cursor that was not made by `encode_cursor` for this sort."""


def _plain(value):
    return value.isoformat() if isinstance(value, datetime) else value


def encode_cursor(sort: str, value, job_id: int) -> str:
    raw = json.dumps([sort, _plain(value), int(job_id)], separators=(",", ":"))
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str) -> tuple[object, int]:
    """(sort value, id) of the row a page starts after; `BadCursor` otherwise."""
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4))
        got_sort, value, job_id = json.loads(raw)
    except (ValueError, TypeError, binascii.Error):
        raise BadCursor("The cursor is not one this server gave out.") from None
    if got_sort != sort:
        raise BadCursor(f"The cursor belongs to the sort {got_sort!r}, not {sort!r}.")
    if not isinstance(job_id, int) or isinstance(job_id, bool):
        raise BadCursor("The cursor is not one this server gave out.")
    key = sort.lstrip("-")
    if value is None and key not in NULLABLE:
        raise BadCursor("The cursor is not one this server gave out.")
    if value is not None:
        try:
            if key == "created":
                value = datetime.fromisoformat(value)
            elif key in ("budget", "alc", "duration"):
                if isinstance(value, bool):
                    raise TypeError
                value = float(value)
            elif not isinstance(value, str):
                raise TypeError
        except (TypeError, ValueError):
            raise BadCursor("The cursor is not one this server gave out.") from None
    return value, job_id


def _after(key: str, descending: bool, value, job_id: int):
    """The rows that come after (value, id) in the order (column asc|desc nulls last, id desc)."""
    column = SORTS[key]
    if value is None:  # among the nulls at the end: only the id orders them
        return and_(column.is_(None), Job.id < job_id)
    beyond = column < value if descending else column > value
    parts = [beyond, and_(column == value, Job.id < job_id)]
    if key in NULLABLE:
        parts.append(column.is_(None))
    return or_(*parts)


def page_of_jobs(
    db: Session,
    user: User,
    sort: str = "-created",
    *,
    everyone: bool = False,
    limit: int = DEFAULT_LIMIT,
    cursor: str | None = None,
) -> tuple[list[tuple[Job, str]], str | None]:
    """One page of the jobs ``user`` sees, and the cursor of the next page (None: last page).

    Each row is (job, the first `SUMMARY_CHARS` characters of its ``dataset_info``):
    the check report's details are not read from the database at all (give the text
    to `present.job_json` as ``summary``). ``everyone`` (administrators only) lists
    every user's jobs, else one's own.
    """
    key, descending = sort.lstrip("-"), sort.startswith("-")
    column = SORTS[key]
    query = visible_jobs(user)
    if not (user.is_admin and everyone):
        query = query.where(Job.user_id == user.id)
    if cursor:
        value, job_id = decode_cursor(cursor, sort)
        query = query.where(_after(key, descending, value, job_id))
    order = column.desc() if descending else column.asc()
    if key in NULLABLE:
        order = order.nulls_last()
    limit = max(1, min(int(limit), MAX_LIMIT))
    # The sort value comes from the database itself (lower() of SQLite and of Python
    # differ outside ASCII), so the next page compares like with like.
    query = query.options(defer(Job.dataset_info)).add_columns(
        column.label("sort_value"),
        func.substr(Job.dataset_info, 1, SUMMARY_CHARS).label("summary"),
    )
    rows = db.execute(query.order_by(order, Job.id.desc()).limit(limit + 1)).all()
    jobs = [(job, summary) for job, _, summary in rows[:limit]]
    if len(rows) <= limit:
        return jobs, None
    last_job, last_value, _ = rows[limit - 1]
    return jobs, encode_cursor(sort, last_value, last_job.id)


def page_json(db: Session, storage: Storage, rows: list[tuple[Job, str]]) -> list[dict]:
    """A page's rows as the API lists them: `present.job_json` without the detail (no
    file, only the summary line), plus where queued jobs stand and how many run: at
    most two small queries for the whole page, whatever its length."""
    out = [job_json(db, storage, job, detail=False, summary=text) for job, text in rows]
    states = {job.state for job, _ in rows}
    positions = queue_positions(db, [j.id for j, _ in rows if j.state == "queued"])
    running = running_count(db) if states & {"queued", "running"} else 0
    for (job, _), data in zip(rows, out, strict=True):
        data["queue_position"] = positions.get(job.id)
        data.update(running_fields(job.state, running))
    return out


def count_jobs(db: Session, user: User, *, everyone: bool = False) -> int:
    """How many jobs the listing holds in all (for "N jobs" on the page)."""
    query = select(func.count(Job.id)).where(Job.deleted_at.is_(None), Job.kind == "run")
    if not (user.is_admin and everyone):
        query = query.where(Job.user_id == user.id)
    return int(db.scalar(query) or 0)


def page(db: Session, user: User, sort: str, everyone: bool, limit: int, cursor: str | None):
    """One page of jobs and the next page's cursor (pages and API); a bad cursor is a 422."""
    try:
        return page_of_jobs(db, user, sort, everyone=everyone, limit=limit, cursor=cursor)
    except BadCursor as e:
        raise ServiceError(
            422, f"cursor: {e}", "Start again without a cursor, then pass each page's 'next'."
        ) from None
