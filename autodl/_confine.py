"""Operating-system limits for the processes that touch user data (Linux; elsewhere a no-op).

Two kinds of process run on data nobody vetted: the one that validates an upload
(`autodl._checkproc`) and the engine of a job (`autodl.ingestion`). Each gets, set by
the child on itself before it reads a byte of the data:

* a memory limit: a cgroup v2 ``memory.max`` when the parent could make one (a
  writable, delegated cgroup with the memory controller), and ``RLIMIT_AS`` (address
  space) — except where CUDA is in use, since CUDA reserves far more address space than
  it ever touches and fails under any useful ``RLIMIT_AS``; a GPU job is then bounded by
  the cgroup when there is one, and otherwise only by ``oom_score_adj``;
* ``RLIMIT_CPU`` (validation), ``RLIMIT_FSIZE`` (largest file it may write),
  ``RLIMIT_CORE`` 0 (no core files of user data);
* ``oom_score_adj`` 1000: when memory runs out the kernel kills this process first,
  never the web server (0);
* an environment without secrets (`scrubbed_environ`): set by the parent at exec time,
  so not even ``/proc/self/environ`` holds them.

Nothing here imports `autodl.service`: the CLI's ``autodl run`` uses it too.
"""

from __future__ import annotations

import os
import re
import resource
import signal
from dataclasses import dataclass
from pathlib import Path

#: The settings that must never reach a process running on user data.
SECRET_SETTINGS = ("AUTODL_SECRET_KEY", "AUTODL_DATABASE_URL", "AUTODL_BROKER_URL")
#: Other variables that look like credentials (cloud keys, database passwords, tokens).
_SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|TOKEN|CREDENTIAL|PRIVATE|(^|_)KEY($|_)|(_URL|_URI|_DSN)$"
    r"|^(AWS|PG|CELERY|REDIS|DATABASE|GOOGLE_APPLICATION)",
    re.IGNORECASE,
)
#: Variables kept although they match the pattern above (paths, not credentials).
_KEEP = frozenset({"PYTHONPATH", "PATH", "HOME", "CUDA_VISIBLE_DEVICES"})
#: Share of the machine's memory the jobs of one machine may use together (the rest is
#: the server, the job processes, the page cache).
AUTO_MEMORY_SHARE = 0.8
OOM_SCORE_ADJ = 1000
_CGROUP_ROOT = Path("/sys/fs/cgroup")
#: Device nodes of the NVIDIA driver: present when CUDA could be used.
CUDA_DEVICE_NODES = ("/dev/nvidiactl", "/dev/nvidia0")


@dataclass(frozen=True)
class Limits:
    """What one confined process may use; 0 means no limit of that kind."""

    memory_bytes: int = 0
    cpu_seconds: float = 0.0
    file_bytes: int = 0
    oom_score_adj: int | None = OOM_SCORE_ADJ
    #: Drop secrets from the environment (see `scrubbed_environ`).
    scrub_env: bool = True
    #: None: RLIMIT_AS unless CUDA devices are visible (`cuda_visible`); False: never.
    address_space: bool | None = None

    def to_json(self) -> dict:
        return {
            "memory_bytes": int(self.memory_bytes),
            "cpu_seconds": float(self.cpu_seconds),
            "file_bytes": int(self.file_bytes),
            "oom_score_adj": self.oom_score_adj,
            "scrub_env": self.scrub_env,
            "address_space": self.address_space,
        }

    @classmethod
    def from_json(cls, data: dict) -> Limits:
        return cls(**data)


def total_memory() -> int:
    """The machine's memory in bytes (or the enclosing cgroup's limit when lower)."""
    total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    own = _own_cgroup_v2()
    try:
        raw = (own / "memory.max").read_text().strip() if own else "max"
        if raw != "max":
            total = min(total, int(raw))
    except (OSError, ValueError):
        pass
    return total


def job_memory_bytes(setting: int, workers: int) -> int:
    """AUTODL_JOB_MEMORY_BYTES, or when 0: 80 % of the machine's memory per worker slot."""
    if setting > 0:
        return setting
    return int(total_memory() * AUTO_MEMORY_SHARE / max(1, workers))


def job_limits(settings) -> Limits:
    """The limits of a job's engine from `autodl.settings.Settings` (CLI and service alike)."""
    return Limits(
        memory_bytes=job_memory_bytes(settings.job_memory_bytes, settings.workers),
        file_bytes=settings.job_file_bytes,
    )


def scrubbed_environ(environ: dict[str, str] | None = None) -> dict[str, str]:
    """``environ`` (default: ours) without secrets: AUTODL_SECRET_KEY, AUTODL_DATABASE_URL,
    AUTODL_BROKER_URL, and any variable named like a credential (``*TOKEN*``, ``*_KEY``,
    ``*PASSWORD*``, ``*_URL``, ``AWS_*``, ``PG*``…). The other AUTODL_* settings stay: the
    readers' caps are settings the child needs."""
    env = dict(os.environ if environ is None else environ)
    out = {}
    for name, value in env.items():
        if name in SECRET_SETTINGS:
            continue
        if name not in _KEEP and not name.startswith("AUTODL_") and _SECRET_NAME.search(name):
            continue
        out[name] = value
    # Few allocator arenas and BLAS threads: address space that is reserved, not used,
    # still counts against RLIMIT_AS.
    out.setdefault("MALLOC_ARENA_MAX", "2")
    return out


def cuda_visible(environ: dict[str, str] | None = None) -> bool:
    """Whether a child could use CUDA: an NVIDIA device node, not hidden by CUDA_VISIBLE_DEVICES."""
    env = os.environ if environ is None else environ
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and visible.strip() in ("", "-1"):
        return False
    return any(Path(node).exists() for node in CUDA_DEVICE_NODES)


# ------------------------------------------------------------------ cgroup v2


def _own_cgroup_v2() -> Path | None:
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        if line.startswith("0::"):
            for root in (_CGROUP_ROOT, _CGROUP_ROOT / "unified"):
                if (root / "cgroup.controllers").exists():
                    return root / line[3:].lstrip("/")
    return None


class MemoryCgroup:
    """A cgroup v2 of our own with ``memory.max`` (swap off), when the system lets us make one.

    `create` returns None where cgroups are v1, not delegated to us, or lack the memory
    controller: the caller falls back to RLIMIT_AS, quietly.
    """

    def __init__(self, path: Path):
        self.path = path

    @classmethod
    def create(cls, name: str, memory_bytes: int) -> MemoryCgroup | None:
        parent = _own_cgroup_v2()
        if parent is None or memory_bytes <= 0:
            return None
        try:
            if "memory" not in (parent / "cgroup.controllers").read_text().split():
                return None
            if "memory" not in (parent / "cgroup.subtree_control").read_text().split():
                return None  # enabling it ourselves would move every process of ours
            path = parent / f"{name}-{os.getpid()}"
            path.mkdir(exist_ok=True)
            (path / "memory.max").write_text(str(int(memory_bytes)))
            try:
                (path / "memory.swap.max").write_text("0")
            except OSError:
                pass  # no swap accounting: memory.max alone
            return cls(path)
        except OSError:
            return None

    def join(self, pid: int | None = None) -> bool:
        try:
            (self.path / "cgroup.procs").write_text(str(pid or os.getpid()))
            return True
        except OSError:
            return False

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this cgroup for breaking memory.max."""
        try:
            for line in (self.path / "memory.events").read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill" and int(value) > 0:
                    return True
        except (OSError, ValueError):
            pass
        return False

    def remove(self) -> None:
        try:
            (self.path / "cgroup.kill").write_text("1")
        except OSError:
            pass
        try:
            self.path.rmdir()
        except OSError:
            pass


# --------------------------------------------------------------- in the child


def apply(limits: Limits, cgroup: str | None = None) -> None:
    """Confine the calling process (call it first thing in the child, before any data)."""
    if cgroup:
        MemoryCgroup(Path(cgroup)).join()
    _setrlimit(resource.RLIMIT_CORE, 0)
    use_as = limits.address_space if limits.address_space is not None else not cuda_visible()
    if limits.memory_bytes > 0 and use_as:
        _setrlimit(resource.RLIMIT_AS, int(limits.memory_bytes))
    if limits.cpu_seconds > 0:
        soft = max(1, int(limits.cpu_seconds + 0.999))
        # SIGXCPU at the soft limit (kills: Python leaves it at its default), SIGKILL 2 s later.
        _setrlimit(resource.RLIMIT_CPU, soft, soft + 2)
    if limits.file_bytes > 0:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past it raises OSError(EFBIG)
        _setrlimit(resource.RLIMIT_FSIZE, int(limits.file_bytes))
    if limits.oom_score_adj is not None:
        set_oom_score_adj(limits.oom_score_adj)


def set_oom_score_adj(value: int, pid: int | str = "self") -> None:
    """Raise the kernel's wish to kill this process when memory runs out (lowering needs root)."""
    try:
        Path(f"/proc/{pid}/oom_score_adj").write_text(str(int(value)))
    except OSError:
        pass


def _setrlimit(kind: int, soft: int, hard: int | None = None) -> None:
    _, old_hard = resource.getrlimit(kind)
    hard = soft if hard is None else hard
    if old_hard != resource.RLIM_INFINITY:
        soft, hard = min(soft, old_hard), min(hard, old_hard)
    try:
        resource.setrlimit(kind, (soft, hard))
    except (ValueError, OSError):
        pass
