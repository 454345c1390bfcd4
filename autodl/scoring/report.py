"""What people look at: the learning-curve figure and the self-contained HTML report.

>>> import numpy as np, tempfile, pathlib
>>> from autodl.scoring import score_arrays
>>> sol = np.array([[1, 0], [0, 1], [1, 0]])
>>> result = score_arrays(sol, [sol * 0.9], [5.0], time_budget=60, task="demo")
>>> out = pathlib.Path(tempfile.mkdtemp())
>>> learning_curve_png(result, out / "curve.png").name
'curve.png'
>>> html_report(result, out / "report.html").stat().st_size > 10_000
True
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from autodl.scoring._figures import comparison_figure, learning_curve_figure, png_bytes, save_png
from autodl.scoring._html import render_report
from autodl.scoring._result import ScoreResult

__all__ = ["compare_curves_png", "html_report", "learning_curve_png"]


def learning_curve_png(result: ScoreResult, path: str | Path, title: str | None = None) -> Path:
    """Write the learning curve of ``result`` as a PNG (1000 x 700 pixels); return the path."""
    return save_png(learning_curve_figure(result, title), path)


def compare_curves_png(
    results: Sequence[tuple[str, ScoreResult]], path: str | Path, title: str | None = None
) -> Path:
    """Write the learning curves of several runs, labelled, on one chart; return the path."""
    return save_png(comparison_figure(results, title), path)


def html_report(
    result: ScoreResult | None,
    path: str | Path,
    *,
    dataset: dict | None = None,
    engine_log: str | None = None,
    budget_used: float | None = None,
    error: str | None = None,
    predictions_table: Sequence[dict] | None = None,
    time_budget: float | None = None,
    title: str | None = None,
    notes: Sequence[str] = (),
    examples: dict | None = None,
    example_images: Mapping[str, bytes] | None = None,
) -> Path:
    """Write a self-contained HTML report (inline CSS, figure as a data URI, no network).

    ``result`` may be None when the run produced nothing to score (then ``error``
    usually says why). ``dataset`` is shown as a summary table; ``predictions_table``
    gives extra columns per prediction (dicts in prediction order; a key ``index``
    or ``elapsed`` already shown is skipped); ``budget_used`` is the seconds the
    run took, shown against ``time_budget`` (default: the result's budget); ``notes``
    are lines under the key figures (how the run ended, how busy the machine was).
    ``examples`` is the index of the examples the model gets most wrong (the pipeline's
    ``examples/index.json``) and ``example_images`` their PNGs by name, embedded.
    """
    figure = None
    if result is not None and result.n_predictions:
        figure = png_bytes(learning_curve_figure(result, title))
    page = render_report(
        result,
        figure_png=figure,
        dataset=dataset,
        engine_log=engine_log,
        budget_used=budget_used,
        error=error,
        predictions_table=predictions_table,
        time_budget=time_budget,
        title=title,
        notes=notes,
        examples=examples,
        example_images=example_images,
    )
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page, encoding="utf-8")
    return path
