"""The `Dispatcher` interface: what the server asks of whoever runs its jobs."""

from __future__ import annotations

from typing import Protocol


class Dispatcher(Protocol):
    """Runs queued jobs: `start` with the server, `stop` with it, `notify` on every change.

    ``notify(job_id)`` is called when a job is submitted, cancelled or deleted; the
    dispatcher reads what to do from the database (the job's state), never from the call.
    """

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def notify(self, job_id: int) -> None: ...
