"""Fair share with Celery on real PostgreSQL + Redis: a worker that receives the job of a
user at the running limit while another user waits sends it back with a countdown."""

from __future__ import annotations

import json

import redis

from autodl.service import jobs as J
from autodl.service.db import Database
from autodl.service.dispatch.celery import DEFERRED, QUEUE, execute, make_celery
from autodl.service.models import Job, User
from autodl.service.storage import Storage


def test_a_job_over_the_limit_goes_back_to_the_broker(scale_settings, redis_url):
    db = Database(scale_settings.sqlalchemy_url)
    db.upgrade()
    storage = Storage(scale_settings.data_dir)
    celery = make_celery(scale_settings)
    try:
        with db.session() as s:
            ann, bob = User(name="ann", password_hash="x"), User(name="bob", password_hash="x")
            s.add_all([ann, bob])
            s.flush()

            def job(user):
                return J.create_job(
                    s, user, name="t", time_budget=3, report={"name": "t"}, stored_bytes=0
                )

            a1, a2, _ = job(ann), job(ann), job(bob)
            J.set_state(s, a1, "running")
            a2_id = a2.id
        assert execute(a2_id, scale_settings, storage, celery=celery) == DEFERRED
        with db.session() as s:
            assert s.get(Job, a2_id).state == "queued"  # not claimed, no process started
            assert s.get(Job, a2_id).dispatched_at is not None
        [raw] = redis.Redis.from_url(redis_url).lrange(QUEUE, 0, -1)
        message = json.loads(raw)
        assert message["headers"]["eta"] is not None  # sent again, not before the countdown
        assert json.loads(message["headers"]["argsrepr"]) == [a2_id]
    finally:
        db.dispose()
