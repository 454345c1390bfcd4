"""How busy the machine was during a run: cheap samples taken by the ingestion loop.

Two runs of one dataset score differently when other work shares the cores (digits:
ALC 0.994 alone, 0.942-0.981 while other jobs ran: the first prediction moved from
0.2 s to ~2 s). `LoadMeter` records what a reader of the scores needs to compare runs:

- ``cores``: the cores the run may use (``os.sched_getaffinity``), ``threads`` the
  engine's thread count (AUTODL_THREADS, or the job's share of the cores);
- ``load_start`` / ``load_mean``: the machine's 1-minute load average when the clock
  started and averaged over the run (samples at most once a second; it counts every
  runnable process, the engine's own threads included);
- ``other_cpu``: the share of the machine's CPU time that *other* processes used during
  the run (``/proc/stat`` busy time minus the engine's own, from ``/proc/<pid>/stat``);
  ``cpu_available`` = 1 - ``other_cpu``, what was left for the engine. None where
  ``/proc`` is not readable (not Linux), or when the run was too short for a clock
  tick to pass (``/proc/stat`` counts in ticks of 10 ms: an engine that ends within
  milliseconds);
- ``other_jobs``: the most jobs of the same service seen running beside this one
  (asked of the caller's ``others`` at the start, then every `OTHERS_EVERY` seconds);
  None outside the service (``autodl run``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

#: Seconds between two questions to the caller's ``others`` (a database query in a job).
OTHERS_EVERY = 10.0


@dataclass
class MachineLoad:
    """The machine's load during one run (see the module doc for each field)."""

    cores: int
    threads: int
    load_start: float | None
    load_mean: float | None
    other_cpu: float | None
    other_jobs: int | None = None

    @property
    def cpu_available(self) -> float | None:
        return None if self.other_cpu is None else round(1.0 - self.other_cpu, 3)

    def to_json(self) -> dict:
        return {**asdict(self), "cpu_available": self.cpu_available}

    def text(self) -> str:
        """One line for pages and reports."""
        parts = [f"{self.cores} core{'s' if self.cores != 1 else ''}, {self.threads} thread(s)"]
        if self.cpu_available is not None:
            parts.append(f"{self.cpu_available:.0%} of the CPU free for the engine")
        if self.load_mean is not None:
            parts.append(f"load average {self.load_mean:.1f} (at the start {self.load_start:.1f})")
        if self.other_jobs is not None:
            n = self.other_jobs
            parts.append(f"{n} other job{'s' if n != 1 else ''} running beside it at most")
        return "; ".join(parts)


def _loadavg() -> float | None:
    try:
        return os.getloadavg()[0]
    except OSError:
        return None


def _machine_jiffies() -> tuple[int, int] | None:
    """(busy, total) CPU time of the whole machine, in clock ticks."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    total = sum(fields[:8])  # guest time is already counted in user
    return total - idle, total


def _process_jiffies(pid: int) -> int | None:
    """CPU time (user + system, its waited-for children included) of ``pid``, in ticks."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            rest = f.read().rsplit(")", 1)[1].split()
        return sum(int(v) for v in rest[11:15])  # utime stime cutime cstime
    except (OSError, ValueError, IndexError):
        return None


class LoadMeter:
    """Start when the clock starts, `sample` on the loop's ticks, `finish` before the
    engine's process is stopped."""

    def __init__(
        self,
        pid: int,
        threads: int,
        every: float = 1.0,
        others: Callable[[], int] | None = None,
    ):
        self.pid, self.every, self.others = pid, every, others
        self.other_jobs = self._ask_others()
        self._others_at = time.monotonic()
        self.cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else 1
        self.threads = threads if threads > 0 else self.cores
        self.load_start = _loadavg()
        self.loads = [] if self.load_start is None else [self.load_start]
        self.machine0, self.engine0 = _machine_jiffies(), _process_jiffies(pid)
        self._last = time.monotonic()

    def sample(self) -> None:
        now = time.monotonic()
        if now - self._last >= self.every:
            self._last = now
            load = _loadavg()
            if load is not None:
                self.loads.append(load)
        if self.others is not None and now - self._others_at >= OTHERS_EVERY:
            self._others_at = now
            seen = self._ask_others()
            if seen is not None:
                self.other_jobs = max(self.other_jobs or 0, seen)

    def _ask_others(self) -> int | None:
        """The caller's count of other running jobs; None when there is no caller or it
        fails (a database hiccup must not stop a run)."""
        if self.others is None:
            return None
        try:
            return int(self.others())
        except Exception:  # noqa: BLE001 - a figure for the report, never worth a failed run
            return None

    def finish(self) -> MachineLoad:
        machine1, engine1 = _machine_jiffies(), _process_jiffies(self.pid)
        other = None
        if None not in (self.machine0, machine1, self.engine0, engine1):
            busy = machine1[0] - self.machine0[0] - (engine1 - self.engine0)
            total = machine1[1] - self.machine0[1]
            if total > 0:
                other = round(min(1.0, max(0.0, busy / total)), 3)
        mean = round(sum(self.loads) / len(self.loads), 2) if self.loads else None
        start = None if self.load_start is None else round(self.load_start, 2)
        return MachineLoad(self.cores, self.threads, start, mean, other, self.other_jobs)
