"""The engine's process: started by `autodl.ingestion` as a fresh interpreter (exec, not
fork) with a scrubbed environment; it confines itself, imports the engine and speaks
the protocol of `autodl.ingestion` over a socket pair.

Messages go through `_Channel`: JSON plus raw numeric array bytes, never pickle, and
bounded in size, so the caller (the service's job process holds the database URL)
never runs what a process working on untrusted data sends. Starting the child with
``python -c`` and our own entry point (never multiprocessing's spawn, which re-imports
the caller's ``__main__``) lets the Python API run from any script, notebook or stdin
without an ``if __name__ == "__main__"`` guard.

The engine's process opens the dataset itself, once (`_child`): it is a separate
process, and the parent's `Dataset` (open files, a zip) does not cross the pipe; the
warm-up gets its metadata and the timed run its splits from that one opening. The
thread count comes in the start-up config and reaches the engine as its ``threads``
argument (`autodl.engine.protocol`); before any native library loads, `_size_pools`
sizes their pools from it, which is why numpy is imported lazily here.
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import traceback
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING

from autodl._confine import Limits, MemoryCgroup, scrubbed_environ

if TYPE_CHECKING:  # pragma: no cover
    import numpy as np

# The typed outcome of a run that did not succeed (`IngestionResult.failure`).
ERROR = "error"  # the engine raised an exception
MEMORY = "memory"  # it broke its memory limit (MemoryError, cgroup OOM kill, SIGKILL by the kernel)
FILE_SIZE = "file_size"  # it wrote a file past RLIMIT_FSIZE
CRASH = "crash"  # its process died otherwise (a signal, an exit)
INVALID = "invalid"  # it sent a prediction of the wrong shape, NaN, or a malformed message
TIMEOUT = "timeout"  # it made no prediction before the deadline and was stopped
NO_PREDICTION = "no_prediction"  # it ended by itself without a prediction
LOAD = "load"  # the engine could not be imported (ours, never the data)


#: What sizes the native thread pools (OpenMP, OpenBLAS, MKL) when they load.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def _size_pools(threads: int) -> None:
    """Size the native libraries' thread pools from the run's thread count (0: every
    core), in the engine's process, before any of them loads: threads the engine's
    ``threads`` argument does not reach (OpenMP in a background thread, BLAS outside a
    step) stay within the count, and so does the address space their stacks reserve."""
    if threads > 0:
        for var in THREAD_VARIABLES:
            os.environ[var] = str(threads)
    # OpenMP threads that spin while they wait for work take the cores a busy machine
    # (other jobs, the web server) needs: 10 LightGBM rounds on 1,600 rows x 5 took
    # 2.5-4.9 s spinning and 0.22-0.30 s sleeping at a load average of 4 on 2 cores.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")


def _child_main(argv: list[str]) -> None:
    """Entry point of the engine process: ``python -c ... FD CONFIG_JSON``.

    It confines itself (`autodl._confine.apply`) before it imports the engine or reads
    any data; its environment was scrubbed by the parent at exec time.
    """
    from multiprocessing.connection import Connection

    from autodl import _confine

    fd, config = int(argv[0]), json.loads(argv[1])
    _size_pools(config["threads"])
    _set_parent_death_signal()
    _confine.apply(_confine.Limits.from_json(config["limits"]), config.get("cgroup"))
    conn = Connection(fd)
    try:
        _child(
            _Channel(conn),
            config["dataset"],
            config["engine"],
            config["seed"],
            config["threads"],
            config.get("model_dir"),
        )
    finally:
        conn.close()


def _set_parent_death_signal() -> None:
    """SIGKILL this process when its parent dies (Linux), as the daemon process it replaces."""
    try:
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(1, 9)  # PR_SET_PDEATHSIG, SIGKILL
    except (OSError, AttributeError):
        pass


def _failure_kind(e: BaseException) -> str:
    """The typed outcome of an exception in the engine (the parent never reads its text)."""
    if isinstance(e, MemoryError):
        return MEMORY
    if isinstance(e, OSError) and e.errno == errno.EFBIG:
        return FILE_SIZE
    return ERROR


def _child(
    conn, dataset_path: str, engine_spec: str, seed: int, threads: int, model_dir: str | None = None
) -> None:
    """The engine's side of the protocol; with ``model_dir``, the model of each prediction
    is written to ``model_dir/<k>/`` (`_ModelWriter`) after the prediction is sent."""
    # The engine's libraries may print (LightGBM's C++ warnings write to fd 1); the
    # caller's standard output is its own (`autodl run --json`), so send theirs to stderr.
    sys.stdout.flush()
    os.dup2(2, 1)
    try:
        from autodl.engine.protocol import load

        engine_run, warm_up = load(engine_spec)
        from autodl.engine.budget import Budget
        from autodl.formats.dataset import open_dataset
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        conn.send(("error", f"the engine could not be loaded: {e}", traceback.format_exc(), LOAD))
        return
    count = threads or None  # the engine contract's "every core"
    dataset = None  # opened once: before the clock for a warm-up, else on the clock
    warm_note = None
    if warm_up is not None:  # construction, untimed: it sees the metadata, no data
        try:
            dataset = open_dataset(dataset_path)
            warm_note = warm_up(dataset.spec, seed=seed, threads=count)
        except MemoryError:
            warm_note = "warm-up skipped (out of memory)"
        except Exception as e:  # noqa: BLE001 - the timed run reports a bad dataset
            warm_note = f"warm-up skipped ({type(e).__name__}: {e})"
    conn.send(("ready",))
    msg = conn.recv()
    if msg[0] != "go":
        return
    _, start_time, time_budget = msg

    def log(message: str) -> None:
        conn.send(("log", str(message)))

    if warm_note:
        log(warm_note)
    writer = None
    try:
        budget = Budget(max(0.0, time_budget - (time.time() - start_time)))
        if dataset is None:
            dataset = open_dataset(dataset_path)
        for p in engine_run(
            dataset.train,
            dataset.test,
            dataset.unlabelled,
            budget,
            seed=seed,
            log=log,
            threads=count,
        ):
            conn.send(
                (
                    "prediction",
                    _array(p.test),
                    _array(p.unlabelled),
                    p.learner,
                    p.valid_score,
                    p.note,
                )
            )
            if model_dir is not None:  # after the prediction is out, before training on
                writer = writer or _ModelWriter(Path(model_dir), dataset_path, dataset.spec)
                for line in writer.add(p):
                    log(line)
        conn.send(("done",))
    except BaseException as e:  # noqa: BLE001 - reported to the parent
        message = getattr(e, "message", None) or f"{type(e).__name__}: {e}"
        conn.send(("error", message, traceback.format_exc(), _failure_kind(e)))
    finally:
        if writer is not None:
            writer.close()


KEEP_MODELS = 4  # model folders the engine's process keeps (the newest ones)


class _ModelWriter:
    """Writes the model of the k-th prediction to ``root/<k>/`` in a background thread.

    The parts are frozen (pickled, `autodl.engine.export.freeze`) right after the
    prediction is sent, before the engine trains them on; writing the files (a
    temporary folder, then a rename) happens beside the engine. The parent keeps the
    folder of the last prediction it counted (`autodl.ingestion`)."""

    def __init__(self, root: Path, dataset_path: str, spec) -> None:
        import queue
        import threading

        self.root = root
        self.count = 0
        self.errors: list[str] = []
        from autodl.engine.export import spec_json

        self.spec = spec_json(spec)
        self.manifest = _manifest(Path(dataset_path), spec.name)
        self.queue: queue.Queue = queue.Queue()
        self.thread = threading.Thread(target=self._run, name="model-writer")
        self.thread.start()

    def add(self, p) -> list[str]:
        """Freeze the model of prediction ``p`` (the next index); the log lines to send."""
        k, self.count = self.count, self.count + 1
        recipe = getattr(p, "model", None)
        lines, self.errors = self.errors, []
        if recipe is None or recipe.calibration is None:
            if k == 0:
                lines.append("this engine gives no model with its predictions: none is saved")
            return lines
        t0 = time.monotonic()
        try:
            parts = recipe.snapshot()
        except Exception as e:  # noqa: BLE001 - a model that cannot be saved ends nothing
            lines.append(f"the model of prediction {k} cannot be saved: {type(e).__name__}: {e}")
            return lines
        info = {
            "learner": p.learner,
            "note": p.note,
            "prediction_index": k,
            "hold_out_score": p.valid_score,
            "spec": self.spec,
            "max_side": recipe.extra.get("max_side"),
            "manifest": self.manifest,
            "freeze_seconds": round(time.monotonic() - t0, 4),
        }
        self.queue.put((k, parts, list(recipe.names), recipe.calibration, info))
        return lines

    def _run(self) -> None:
        from autodl.engine import export

        while True:
            item = self.queue.get()
            if item is None:
                return
            k, parts, names, calibration, info = item
            try:
                export.write(self.root / str(k), parts, names, calibration, info)
            except Exception as e:  # noqa: BLE001 - reported in the run log
                self.errors.append(f"the model of prediction {k} was not saved: {e}")
            # the parent counts predictions in order and keeps the last one counted: the
            # newest few may be uncounted (unread at the deadline), older ones never matter
            shutil.rmtree(self.root / str(k - KEEP_MODELS), ignore_errors=True)

    def close(self) -> None:
        self.queue.put(None)
        self.thread.join()


MANIFEST_BYTES = 64 * 1024 * 1024  # a manifest larger than this is not read


def _manifest(dataset_path: Path, name: str) -> dict | None:
    """The `autodl format` manifest of the dataset (how raw data became it): beside it
    (the whole manifest), else the copy `autodl format` puts inside the dataset folder
    and so inside its zip (what a saved model needs: columns by name, options), so that
    a run on the zip alone, as uploaded to the service, still has it. None if absent or
    unreadable: the model then takes a table's columns in the training order."""
    stem = dataset_path.name[:-4] if dataset_path.name.endswith(".zip") else dataset_path.name
    for candidate in (f"{stem}.manifest.json", f"{name}.manifest.json"):
        path = dataset_path.parent / candidate
        try:
            if path.is_file() and path.stat().st_size < MANIFEST_BYTES:
                return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
    inside = f"{name}.manifest.json"
    try:
        if dataset_path.is_dir():
            for path in (dataset_path / inside, *dataset_path.glob(f"*/{inside}")):
                if path.is_file() and path.stat().st_size < MANIFEST_BYTES:
                    return json.loads(path.read_text(encoding="utf-8"))
        elif zipfile.is_zipfile(dataset_path):
            with zipfile.ZipFile(dataset_path) as z:
                for info in z.infolist():
                    if info.filename.split("/")[-1] == inside and info.file_size < MANIFEST_BYTES:
                        return json.loads(z.read(info).decode("utf-8"))
    except (OSError, ValueError, zipfile.BadZipFile):
        return None
    return None


def _array(value) -> np.ndarray | None:
    import numpy as np

    if value is None:
        return None
    array = np.asarray(value)
    return array if array.dtype.kind in "biuf" else array.astype(np.float64)


class _Channel:
    """Messages over a pipe without pickle: JSON for scalars and strings, raw bytes for
    arrays. The parent (which holds the job's database URL) never unpickles what the
    process running on user data sends, and bounds each message's size."""

    def __init__(self, conn):
        self.conn = conn

    def send(self, msg: tuple) -> None:
        import numpy as np

        header, blobs = [], []
        for item in msg:
            if isinstance(item, np.ndarray):
                a = np.ascontiguousarray(item)
                header.append({"nd": a.dtype.str, "shape": list(a.shape)})
                blobs.append(a.tobytes())
            elif isinstance(item, np.generic):
                header.append(item.item())
            elif item is None or isinstance(item, bool | int | float | str):
                header.append(item)
            else:
                header.append(str(item))
        head = json.dumps(header).encode()
        self.conn.send_bytes(len(head).to_bytes(4, "little") + head + b"".join(blobs))

    def recv(self, maxlength: int | None = None) -> tuple:
        return _unpack(self.conn.recv_bytes(maxlength))

    def poll(self, timeout: float = 0.0) -> bool:
        return self.conn.poll(timeout)

    def close(self) -> None:
        self.conn.close()


def _unpack(data: bytes) -> tuple:
    """Decode one message; ValueError for anything but scalars and numeric arrays."""
    import numpy as np

    size = int.from_bytes(data[:4], "little")
    header = json.loads(data[4 : 4 + size])
    if not isinstance(header, list):
        raise ValueError("a message must be a list")
    pos, out = 4 + size, []
    for item in header:
        if isinstance(item, dict):
            dtype = np.dtype(str(item["nd"]))
            shape = tuple(int(n) for n in item["shape"])
            if dtype.kind not in "biuf" or any(n < 0 for n in shape):
                raise ValueError(f"refused array of {dtype} {shape}")
            count = int(np.prod(shape, dtype=np.int64))
            end = pos + count * dtype.itemsize
            if end > len(data):
                raise ValueError("an array is longer than its message")
            out.append(np.frombuffer(data, dtype, count, pos).reshape(shape))
            pos = end
        elif item is None or isinstance(item, bool | int | float | str):
            out.append(item)
        else:
            raise ValueError(f"refused a {type(item).__name__} in a message")
    return tuple(out)


def _spawn(dataset_path, engine: str, seed: int, threads: int, limits: Limits, model_dir=None):
    """Start the engine process: a fresh interpreter (exec, not fork) with a scrubbed
    environment, the limits it applies to itself, and one end of a socket pair."""
    ours, theirs = socket.socketpair()
    cgroup = MemoryCgroup.create("autodl-engine", limits.memory_bytes)
    config = {
        "dataset": str(Path(dataset_path).resolve()),
        "engine": engine,
        "seed": seed,
        "threads": threads,
        "limits": limits.to_json(),
        "cgroup": str(cgroup.path) if cgroup else None,
        "model_dir": str(Path(model_dir).resolve()) if model_dir is not None else None,
    }
    env = scrubbed_environ() if limits.scrub_env else dict(os.environ)
    code = "import sys; from autodl._engine_process import _child_main; _child_main(sys.argv[1:])"
    try:
        proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno()), json.dumps(config)],
            stdin=subprocess.DEVNULL,
            pass_fds=(theirs.fileno(),),
            env=env,
            close_fds=True,
        )
    except BaseException:
        ours.close()
        if cgroup is not None:
            cgroup.remove()
        raise
    finally:
        theirs.close()
    from multiprocessing.connection import Connection

    return proc, _Channel(Connection(ours.detach())), cgroup
