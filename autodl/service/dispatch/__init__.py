"""Dispatch: who starts a queued job's process, and where.

`base.Dispatcher` is the interface the server holds. By default `embedded.Supervisor`
runs jobs in child processes of the server; with ``AUTODL_BROKER_URL`` set,
`celery.CeleryDispatcher` sends each job's id to a broker and every `autodl worker`
(`worker.run_worker`) runs them. Both start and watch the same job process
(`autodl.service.processes`), which runs `autodl.service.jobs.runner.run_job`.
The database is the source of truth: a message only says "run job N".
"""

from __future__ import annotations

from autodl.service.dispatch.base import Dispatcher

__all__ = ["Dispatcher"]
