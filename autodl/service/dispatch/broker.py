"""What the broker holds: the jobs with a message queued or held unacknowledged (Redis only).

The lost-message check (`CeleryDispatcher.recover_lost`) compares it with the queued
jobs of the database. kombu's Redis layout: one list per priority step (``autodl``,
``autodl\\x06\\x163``, …) and the hash of messages delivered but not yet acknowledged.
"""

from __future__ import annotations

import base64
import json

from autodl.settings import Settings

#: The Celery task's name and queue (the messages this module recognises).
TASK = "autodl.run_job"
QUEUE = "autodl"
REDIS_PRIORITY_SEP = "\x06\x16"
REDIS_PRIORITY_STEPS = (0, 3, 6, 9)
REDIS_UNACKED = "unacked"


def _job_of(message: dict) -> int | None:
    """The job id a kombu message of ours carries; None for any other message."""
    headers = message.get("headers") or {}
    if headers.get("task") != TASK:
        return None
    try:
        body = message["body"]
        if (message.get("properties") or {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        return int(json.loads(body)[0][0])
    except (KeyError, IndexError, TypeError, ValueError):
        try:
            return int(json.loads(headers.get("argsrepr") or "")[0])
        except (IndexError, TypeError, ValueError):
            return None


def broker_job_ids(settings: Settings) -> set[int] | None:
    """Jobs with a message in the broker (queued or held unacknowledged by a worker).

    None when the broker cannot be inspected (not Redis). One MULTI reads the queue's
    lists and the unacked hash at one instant.
    """
    url = settings.broker_url
    if not url.startswith(("redis://", "rediss://", "unix://")):
        return None
    import redis

    client = redis.Redis.from_url(url, socket_timeout=30, socket_connect_timeout=10)
    try:
        pipe = client.pipeline(transaction=True)
        for step in REDIS_PRIORITY_STEPS:
            pipe.lrange(QUEUE if step == 0 else f"{QUEUE}{REDIS_PRIORITY_SEP}{step}", 0, -1)
        pipe.hvals(REDIS_UNACKED)
        *queued, unacked = pipe.execute()
    finally:
        client.close()
    ids: set[int] = set()
    for raw in (m for lst in queued for m in lst):
        try:
            job = _job_of(json.loads(raw))
        except ValueError:
            continue
        if job is not None:
            ids.add(job)
    for raw in unacked:
        try:
            job = _job_of(json.loads(raw)[0])  # [message, exchange, routing key]
        except (ValueError, IndexError, TypeError):
            continue
        if job is not None:
            ids.add(job)
    return ids
