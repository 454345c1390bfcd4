"""Learning-curve figures with Matplotlib's object API (no pyplot: no global state, no GUI).

The look follows the official scorer's figure (step curve on the transformed
time axis, filled area, ALC in the legend, real seconds on a top axis), made
easier to read: clear labels, a marked held segment, the final score labelled.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from pathlib import Path

from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from autodl.scoring._result import ScoreResult
from autodl.scoring.curve import transform_time

DPI = 125
SIZE = (8.0, 5.6)  # inches: 1000 x 700 pixels at DPI
INK, MUTED, GRID = "#1f2937", "#6b7280", "#e5e7eb"
ACCENT = "#2563eb"
PALETTE = ["#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#dc2626", "#4b5563"]
_STYLE = {
    "font.size": 10.5,
    "axes.edgecolor": "#9ca3af",
    "axes.labelcolor": INK,
    "xtick.color": MUTED,
    "ytick.color": MUTED,
    "text.color": INK,
}
# Ticks of the real-time axis (seconds), most wanted first; the tail only fills gaps.
_SECONDS = [60, 10, 1, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400, 30, 5, 120]


def curve_points(result: ScoreResult) -> tuple[list[float], list[float]]:
    """The step curve's corners: origin, each counted prediction, held to x = 1."""
    x, y = [0.0], [0.0]
    for i in result.counted:
        x.append(transform_time(result.timestamps[i], result.time_budget, result.t0))
        y.append(result.nauc[i])
    x.append(1.0)
    y.append(y[-1])
    return x, y


def seconds_label(t: float) -> str:
    """Short human label: 45 s, 5 min, 1.5 h.

    >>> seconds_label(1), seconds_label(300), seconds_label(5400)
    ('1 s', '5 min', '1.5 h')
    """
    if t < 60:
        return f"{t:g} s"
    if t < 3600:
        return f"{t / 60:g} min"
    return f"{t / 3600:g} h"


def _time_ticks(T: float, t0: float) -> list[float]:
    """Real-time ticks within T, T included, at least 0.06 apart on the transformed axis.

    >>> _time_ticks(600.0, 60.0)
    [10, 30, 60, 120, 300, 600.0]
    """
    ticks: list[float] = [T]
    for t in _SECONDS:
        x = transform_time(t, T, t0)
        if t < T and all(abs(x - transform_time(u, T, t0)) >= 0.06 for u in ticks):
            ticks.append(t)
    return sorted(ticks)


def _axes(fig: Figure, T: float | None, t0: float, title: str):
    ax = fig.add_subplot(111)
    ax.set_xlim(0, 1)
    ax.set_ylim(-0.01, 1)
    ax.set_xlabel(
        r"transformed time  $\tilde{t} = \log(1 + t/t_0)\,/\,\log(1 + T/t_0)$"
        + (
            f"   (T = {T:g} s, $t_0$ = {t0:g} s)"
            if T
            else f"   (T: each run's budget, $t_0$ = {t0:g} s)"
        )
    )
    ax.set_ylabel("NAUC = 2 × AUC − 1")
    ax.grid(True, color=GRID, linewidth=0.8)
    ax.set_axisbelow(True)
    ax.spines["right"].set_visible(False)
    if T:
        top = ax.twiny()
        top.set_xlim(0, 1)
        ticks = _time_ticks(T, t0)
        top.set_xticks([transform_time(t, T, t0) for t in ticks])
        top.set_xticklabels([seconds_label(t) for t in ticks])
        top.set_xlabel("time since start", color=MUTED)
        top.spines["right"].set_visible(False)
        top.tick_params(length=3)
    ax.set_title(title, loc="left", fontsize=13, fontweight="bold", pad=14 if not T else 10)
    return ax


def _draw(ax, result: ScoreResult, color: str, label: str, fill: float, details: bool) -> None:
    x, y = curve_points(result)
    if fill:
        ax.fill_between(x, y, step="post", color=color, alpha=fill, linewidth=0)
    ax.step(x[:-1], y[:-1], where="post", color=color, linewidth=2, label=label)
    if len(x) > 2:
        ax.plot(
            x[1:-1],
            y[1:-1],
            "o",
            color=color,
            markersize=5,
            markeredgecolor="white",
            zorder=3,
            clip_on=False,  # a perfect score sits on the top edge
            label="prediction" if details else None,
        )
        ax.plot(
            x[-2:],
            y[-2:],
            "--",
            color=color,
            linewidth=1.4,
            clip_on=False,
            label="last NAUC held to the end of the budget" if details else None,
        )
    if details and len(x) > 2:
        # Below the line near the top of the chart, above it elsewhere: never on the frame.
        above = y[-1] < 0.9
        ax.annotate(
            f"final NAUC {y[-1]:.4f}",
            xy=(1, y[-1]),
            xytext=(-4, 5 if above else -5),
            textcoords="offset points",
            ha="right",
            va="bottom" if above else "top",
            fontweight="bold",
            color=color,
            bbox={
                "boxstyle": "round,pad=0.25",
                "facecolor": "white",
                "edgecolor": "none",
                "alpha": 0.85,
            },
        )
    low = min(y)
    if low < ax.get_ylim()[0]:
        ax.set_ylim(low - 0.05, 1)


def _legend(fig: Figure, ax, ncols: int) -> None:
    # Outside the axes, under the x label: a legend inside would hide part of a curve.
    handles, labels = ax.get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="outside lower center", ncols=ncols, frameon=False)


def _save(fig: Figure, path: str | Path | io.BytesIO) -> None:
    FigureCanvasAgg(fig)
    # No "Software: Matplotlib ... https://..." text chunk: the report must hold no URL.
    fig.savefig(path, dpi=DPI, format="png", metadata={"Software": None})


def learning_curve_figure(result: ScoreResult, title: str | None = None) -> Figure:
    """The learning curve of one run as a Matplotlib `Figure`."""
    with _rc():
        fig = Figure(figsize=SIZE, layout="constrained")
        ax = _axes(
            fig, result.time_budget, result.t0, title or f"Learning curve: {result.task or 'run'}"
        )
        _draw(ax, result, ACCENT, f"learning curve, ALC = {result.alc:.4f}", 0.18, True)
        # The headline figure, in a box on the chart (the area it measures is behind it).
        box = {"boxstyle": "round,pad=0.4", "facecolor": "white", "edgecolor": GRID}
        ax.text(
            0.985,
            0.03,
            f"ALC {result.alc:.4f}",
            transform=ax.transAxes,
            ha="right",
            va="bottom",
            fontsize=16,
            fontweight="bold",
            color=INK,
            bbox=box,
        )
        notes = []
        if result.late:
            n = len(result.late)
            notes.append(f"{n} prediction{'s' if n > 1 else ''} after the budget (not counted)")
        if not result.counted:
            notes.append("no prediction within the budget")
        if notes:
            ax.text(
                0.985,
                0.14,
                "\n".join(notes),
                transform=ax.transAxes,
                ha="right",
                va="bottom",
                color="#b45309",
                bbox={**box, "edgecolor": "#fcd34d"},
            )
        _legend(fig, ax, ncols=3)
    return fig


def comparison_figure(
    results: Sequence[tuple[str, ScoreResult]], title: str | None = None
) -> Figure:
    """Several runs on one chart (each on its own budget's transformed axis)."""
    budgets = {r.time_budget for _, r in results}
    t0s = {r.t0 for _, r in results}
    same = len(budgets) == 1 and len(t0s) == 1
    with _rc():
        fig = Figure(figsize=SIZE, layout="constrained")
        ax = _axes(
            fig,
            budgets.pop() if same else None,
            t0s.pop() if same else 60.0,
            title or "Learning curves",
        )
        for i, (label, result) in enumerate(results):
            color = PALETTE[i % len(PALETTE)]
            _draw(ax, result, color, f"{label}: ALC = {result.alc:.4f}", 0.0, False)
        _legend(fig, ax, ncols=1 if len(results) < 3 else 2)
    return fig


def png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    _save(fig, buffer)
    return buffer.getvalue()


def save_png(fig: Figure, path: str | Path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _save(fig, path)
    return path


def _rc():
    # rc_context restores Matplotlib's settings afterwards: callers' state is untouched.
    import matplotlib

    return matplotlib.rc_context(_STYLE)


__all__ = ["comparison_figure", "curve_points", "learning_curve_figure", "png_bytes", "save_png"]
