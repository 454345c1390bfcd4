"""`Heartbeat`: the one way a process says "I am alive" in the database.

A job process beats on its job's row (``Job.heartbeat_at``, and the prediction count
as it grows); an `autodl worker` beats on its `WorkerNode` row. The reaper and the
Workers page read those time stamps: a row whose beat stopped belongs to a process
that died. A beat that fails (the database busy or away) is skipped: the next one
may land, and only a run of them missing makes the row stale.
"""

from __future__ import annotations

import threading

from sqlalchemy import Update

from autodl.service.db import Database
from autodl.service.models import utcnow


class Heartbeat:
    """Time-stamps ``row`` (an UPDATE statement with its WHERE) every ``interval`` seconds.

    ``values`` are written with every beat besides ``heartbeat_at``; `beat` writes one
    now, with extra values (the job's prediction count). `start` runs the periodic
    beats in a daemon thread until `stop`.
    """

    def __init__(
        self,
        db: Database,
        row: Update,
        interval: float,
        *,
        name: str = "autodl-heartbeat",
        **values,
    ):
        self.db, self.row, self.interval, self.values = db, row, interval, values
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name=name, daemon=True)

    def start(self) -> Heartbeat:
        self._thread.start()
        return self

    def beat(self, **values) -> None:
        """Write one beat now (with ``values`` besides the fixed ones); never raises."""
        try:
            with self.db.session() as s:
                s.execute(self.row.values(heartbeat_at=utcnow(), **self.values, **values))
        except Exception:  # noqa: BLE001 - a missed beat is not fatal; the next one may land
            pass

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.beat()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
