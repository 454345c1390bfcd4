"""Build prediction folders in the official layout for tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np

START = 1750000000.125


def write_matrix(path: Path, array: np.ndarray) -> Path:
    """One row per line, values as the official ingestion prints them ('{0:g}')."""
    path.write_text("".join(" ".join(f"{v:g}" for v in row) + "\n" for row in np.atleast_2d(array)))
    return path


def write_run(
    root: Path,
    solution: np.ndarray,
    predictions: list[np.ndarray],
    times: list[float],
    time_budget: float | None = 300,
    task: str = "demo",
) -> tuple[Path, Path]:
    """Write <root>/solution/<task>.solution and <root>/predictions/; return both paths."""
    (root / "solution").mkdir(parents=True, exist_ok=True)
    folder = root / "predictions"
    folder.mkdir(parents=True, exist_ok=True)
    solution_path = write_matrix(root / "solution" / f"{task}.solution", solution)
    lines = ["ingestion_pid: 999999999", f"task_name: {task}"]
    if time_budget is not None:
        lines.append(f"time_budget: {time_budget}")
    lines.append(f"start_time: {START}")
    for k, (prediction, t) in enumerate(zip(predictions, times, strict=True)):
        write_matrix(folder / f"{task}.predict_{k}", prediction)
        lines.append(f"{k}: {START + t}")
    (folder / "start.txt").write_text("\n".join(lines) + "\n")
    (folder / "end.txt").write_text(
        f"ingestion_duration: {max(times, default=0) + 1}\ningestion_success: 1\nend_time: {START + 1}\n"
    )
    return solution_path, folder


def one_hot(labels: np.ndarray, n_classes: int) -> np.ndarray:
    out = np.zeros((labels.size, n_classes))
    out[np.arange(labels.size), labels] = 1
    return out
