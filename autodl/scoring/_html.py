"""The HTML report: sections rendered with html.escape into templates/report.html.

Everything is inline (CSS in the template, the figure as a base64 data URI) so
the page works offline, from a mail attachment or a storage bucket alike.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from html import escape
from importlib import resources
from string import Template

from autodl.scoring._diagnostics_html import diagnostics_sections
from autodl.scoring._figures import seconds_label
from autodl.scoring._result import ScoreResult
from autodl.scoring.curve import transform_time

_MAX_LOG = 200_000  # characters of the engine log kept (its end)
_DASH = "&mdash;"


def _template() -> Template:
    text = resources.files("autodl.scoring").joinpath("templates/report.html").read_text("utf-8")
    return Template(text)


def _num(value, digits: int = 4) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _DASH
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    if isinstance(value, float):
        return f"{value:.{digits}f}"
    return escape(str(value))


def _seconds(t: float | None) -> str:
    if t is None:
        return _DASH
    return f"{t:,.1f} s" if t < 120 else f"{t:,.0f} s ({seconds_label(round(t / 60) * 60)})"


def _kpi(label: str, value: str, hint: str, primary: bool = False) -> str:
    cls = "kpi primary" if primary else "kpi"
    return (
        f'<div class="{cls}"><div class="label">{label}</div>'
        f'<div class="value">{value}</div><div class="hint">{hint}</div></div>'
    )


def _kpis(result: ScoreResult | None, budget_used: float | None, budget: float | None) -> str:
    if result is None:
        cards = [_kpi("ALC", _DASH, "no prediction to score", True)]
    else:
        n, late = result.n_predictions, len(result.late)
        acc = result.final_accuracy
        cards = [
            _kpi("ALC", _num(result.alc), "area under the learning curve", True),
            _kpi(
                "Final NAUC",
                _num(result.final_nauc),
                "2 &times; AUC &minus; 1, last counted prediction",
            ),
            _kpi(
                "Accuracy",
                _num(acc),
                "soft accuracy, last counted prediction"
                if result.accuracy is not None
                else "only for single-label (multi-class) data",
            ),
            _kpi(
                "Predictions",
                f"{n - late}",
                f"counted{f' &middot; {late} after the budget' if late else ''}",
            ),
        ]
    if budget_used is not None:
        share = f" of {budget:,.0f} s ({budget_used / budget:.0%})" if budget else ""
        cards.append(
            _kpi(
                "Time used",
                f"{budget_used:,.1f} s",
                f"time budget{share}" if share else "wall-clock",
            )
        )
    return f'<section class="kpis">{"".join(cards)}</section>'


def _figure(result: ScoreResult, png: bytes) -> str:
    data = base64.b64encode(png).decode("ascii")
    alt = f"Learning curve: ALC {result.alc:.4f}, final NAUC {_num(result.final_nauc)}"
    return (
        '<section class="card"><h2>Learning curve</h2><figure>'
        f'<img alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        "<figcaption>Each prediction's NAUC holds until the next one; the last is held to the "
        "end of the time budget (dashed). Time is on a log scale: early predictions weigh "
        "more.</figcaption></figure></section>"
    )


def _dataset(dataset: dict) -> str:
    rows = []
    for key, value in dataset.items():
        if isinstance(value, list | tuple):
            shown = ", ".join(str(v) for v in value[:20])
            text = escape(shown + (f", … ({len(value)} in all)" if len(value) > 20 else ""))
        elif isinstance(value, dict):
            text = escape(", ".join(f"{k}: {v}" for k, v in value.items()))
        else:
            text = _num(value)
        rows.append(f"<dt>{escape(str(key).replace('_', ' '))}</dt><dd>{text}</dd>")
    return f'<section class="card"><h2>Dataset</h2><dl>{"".join(rows)}</dl></section>'


def _budget(used: float, budget: float | None, late: int = 0) -> str:
    """The time-budget card. Red only when predictions came after the budget: an engine
    uses its whole budget by design, and stopping it and writing the results takes a
    moment past the end, so 100 % (or a little over) is the normal case, not an alarm."""
    if not budget:
        return f'<section class="card"><h2>Time</h2><p>The run took {_seconds(used)}.</p></section>'
    share = used / budget
    cls = "bar big over" if late else "bar big"
    text = f"{used:,.1f} s used of the {budget:,.0f} s budget ({share:.0%})."
    if late:
        note = f"{late} prediction{'s' if late > 1 else ''} came after the budget and do not count."
    elif share > 1:
        note = (
            f"The last {used - budget:,.1f} s went to stopping the engine and writing the "
            "results; every prediction was within the budget."
        )
    else:
        note = "Every prediction was within the budget."
    return (
        '<section class="card"><h2>Time budget</h2>'
        f'<div class="{cls}"><span style="width:{min(share, 1) * 100:.1f}%"></span></div>'
        f"<p>{text}</p>"
        f'<p class="note">{note} Predictions made after the budget do not count in the ALC.</p>'
        "</section>"
    )


def _extra_columns(table: Sequence[dict] | None) -> list[str]:
    keys: list[str] = []
    for row in table or []:
        keys += [k for k in row if k not in keys and k not in ("index", "elapsed", "timestamp")]
    return keys


def _predictions(result: ScoreResult, table: Sequence[dict] | None) -> str:
    extra = _extra_columns(table)
    head = ["#", "time", "x", "NAUC"] + (["accuracy"] if result.accuracy is not None else [])
    cells = "".join(f'<th class="{"num" if h != "#" else ""}">{h}</th>' for h in head)
    cells += "".join(f"<th>{escape(k.replace('_', ' '))}</th>" for k in extra) + "<th>status</th>"
    late = set(result.late)
    rows = []
    for i, t in enumerate(result.timestamps):
        x = transform_time(t, result.time_budget, result.t0)
        row = [f"<td>{i}</td>", f'<td class="num">{t:,.2f} s</td>', f'<td class="num">{x:.4f}</td>']
        row.append(f'<td class="num">{_num(result.nauc[i])}</td>')
        if result.accuracy is not None:
            row.append(f'<td class="num">{_num(result.accuracy[i])}</td>')
        info = table[i] if table and i < len(table) else {}
        row += [f"<td>{_num(info.get(k))}</td>" for k in extra]
        status = (
            '<span class="badge warn">late &middot; not counted</span>'
            if i in late
            else '<span class="badge good">counted</span>'
        )
        row.append(f"<td>{status}</td>")
        rows.append(f'<tr class="{"late" if i in late else ""}">{"".join(row)}</tr>')
    return (
        f'<section class="card"><h2>Predictions</h2><div class="scroll"><table><thead><tr>{cells}'
        f"</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        '<p class="note">x is the transformed time log(1 + t/t<sub>0</sub>) / log(1 + T/t<sub>0</sub>).</p></section>'
    )


def _per_class(result: ScoreResult) -> str:
    reasons = dict(zip(result.ignored_classes, result.ignored_reasons, strict=False))
    rows = []
    for c, auc in enumerate(result.auc_per_class):
        name = escape(result.class_name(c)) if result.label_names else _DASH
        if auc is None:
            why = escape(reasons.get(c, "constant in the solution"))
            rows.append(
                f'<tr class="left-out"><td>{c}</td><td>{name}</td><td class="num">{_DASH}</td>'
                f'<td class="num">{_DASH}</td><td><span class="badge muted">left out</span> {why}</td></tr>'
            )
            continue
        bar = f'<div class="bar"><span style="width:{max(auc, 0) * 100:.1f}%"></span></div>'
        rows.append(
            f'<tr><td>{c}</td><td>{name}</td><td class="num">{auc:.4f}</td>'
            f'<td class="num">{2 * auc - 1:.4f}</td><td>{bar}</td></tr>'
        )
    note = ""
    if result.ignored_classes:
        n = len(result.ignored_classes)
        note = (
            f'<p class="note">{n} class{"es" if n > 1 else ""} left out of the NAUC: a class whose '
            "solution column is constant has no AUC (as in the official scorer).</p>"
        )
    return (
        '<section class="card"><h2>AUC per class</h2><div class="scroll"><table><thead><tr>'
        '<th>#</th><th>class</th><th class="num">AUC</th><th class="num">2&times;AUC&minus;1</th>'
        f"<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>{note}"
        '<p class="note">For the last prediction made within the time budget.</p></section>'
    )


def _mistakes(index: dict, images: Mapping[str, bytes]) -> str:
    """The examples the model gets most wrong (``examples/index.json``), PNGs embedded."""
    cards = []
    for e in index["examples"]:
        png = images.get(e.get("image") or "")
        if png is not None:
            data = base64.b64encode(png).decode("ascii")
            alt = f"{e['kind']} example, row {e['row']}"
            shown = f'<img class="{escape(e["kind"])}" alt="{escape(alt)}" src="data:image/png;base64,{data}">'
        else:
            shown = f'<p class="words">{escape(e.get("text") or "")}</p>'
        true = escape(", ".join(e["true"]) or "none")
        said = escape(", ".join(e["predicted"]) or "none")
        prob = (
            f"p = {e['probability']:.3f}"
            if index.get("task") == "multi-class"
            else f"p({escape(e['label'])}) = {e['probability']:.3f}"
        )
        cards.append(
            f'<figure class="mistake">{shown}<figcaption><span class="true">true: <b>{true}</b></span>'
            f'<span class="said">predicted: <b>{said}</b></span>'
            f'<span class="prob">{prob} &middot; row {e["row"]}</span></figcaption></figure>'
        )
    n, rows = index.get("mistakes", 0), index.get("rows", 0)
    small = " small" if index["examples"][0].get("kind") == "image" else ""  # thumbnails
    how = (
        "the predicted class had the highest probability"
        if index.get("task") == "multi-class"
        else f"a label is predicted from p &ge; {index.get('threshold') or 0.5:g}"
    )
    return (
        '<section class="card"><h2>Examples the model gets most wrong</h2>'
        f'<div class="mistakes{small}">{"".join(cards)}</div>'
        f'<p class="note">{n:,} of {rows:,} test rows wrong ({how}); the most confident '
        f"mistakes first, at most {index.get('per_class', 3)} per class. For the last "
        "prediction made within the time budget.</p></section>"
    )


def _log(text: str) -> str:
    note = ""
    if len(text) > _MAX_LOG:
        note = f'<p class="note">The first {len(text) - _MAX_LOG:,} characters are left out.</p>'
        text = text[-_MAX_LOG:]
    body = escape(text) if text.strip() else "(empty)"
    return f'<section class="card"><h2>Engine log</h2>{note}<pre class="log">{body}</pre></section>'


def render_report(
    result: ScoreResult | None,
    *,
    figure_png: bytes | None,
    dataset: dict | None,
    engine_log: str | None,
    budget_used: float | None,
    error: str | None,
    predictions_table: Sequence[dict] | None,
    time_budget: float | None,
    title: str | None,
    notes: Sequence[str] = (),
    examples: dict | None = None,
    example_images: Mapping[str, bytes] | None = None,
) -> str:
    """The whole page as a string."""
    budget = time_budget if time_budget is not None else (result.time_budget if result else None)
    task = (result.task if result else None) or (dataset or {}).get("name")
    body = []
    if error:
        body.append(
            f'<div class="alert bad"><strong>The run failed</strong><pre>{escape(error)}</pre></div>'
        )
    if result is not None and result.late:
        n = len(result.late)
        body.append(
            f'<div class="alert warn"><strong>{n} prediction{"s" if n > 1 else ""} after the time budget</strong>'
            "Made after the budget ran out, so not counted in the ALC (they are listed below).</div>"
        )
    body.append(_kpis(result, budget_used, budget))
    body.extend(f'<p class="note run-note">{escape(n)}</p>' for n in notes)
    if result is not None and figure_png:
        body.append(_figure(result, figure_png))
    side = []
    if dataset:
        side.append(_dataset(dataset))
    if budget_used is not None:
        side.append(_budget(budget_used, budget, len(result.late) if result else 0))
    if side:
        body.append(f'<div class="grid2">{"".join(side)}</div>')
    if result is not None and result.n_predictions:
        body.append(_predictions(result, predictions_table))
    if result is not None and result.per_class:
        body.extend(diagnostics_sections(result))  # the per-class table holds the AUCs
    elif result is not None and result.auc_per_class:
        body.append(_per_class(result))
    if examples and examples.get("examples"):
        body.append(_mistakes(examples, example_images or {}))
    if engine_log is not None:
        body.append(_log(engine_log))
    heading = title or (f"Run report: {task}" if task else "Run report")
    subtitle = [f"task <b>{escape(str(task))}</b>"] if task else []
    if budget:
        subtitle.append(f"time budget {_seconds(budget)}")
    if result is not None:
        subtitle.append(f"t<sub>0</sub> = {result.t0:g} s")
    footer = (
        "NAUC, accuracy and ALC are computed as the official AutoDL scoring program "
        "(score.py v20191219) computes them; unlike it, predictions made after the time "
        "budget do not count."
    )
    return _template().substitute(
        page_title=escape(heading),
        heading=escape(heading),
        subtitle=" &middot; ".join(subtitle) or "no scores",
        body="\n".join(body),
        footer=footer,
    )
