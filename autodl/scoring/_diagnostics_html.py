"""The report's diagnostics: confusion matrix, per-class table, ROC and PR curves.

Plain HTML, inline SVG and CSS only: the report is served sandboxed with no script,
so the class picker of the curves is CSS (one radio button per class, ``:checked``).
"""

from __future__ import annotations

import math
from html import escape

from autodl.scoring._result import ScoreResult
from autodl.scoring.diagnostics import MATRIX_MAX_CLASSES

_DASH = "&mdash;"
PICKER_MAX = 50  # classes in the report's curve picker (the lowest AUC first beyond that)
_TOP = 15  # pairs listed under a matrix


def _f(value, digits: int = 3) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return _DASH
    return f"{value:.{digits}f}"


def _cell_style(share: float, diagonal: bool) -> str:
    if share <= 0:
        return ""
    rgb = "37,99,235" if diagonal else "220,38,38"
    ink = "color:#fff;" if share > 0.55 else ""
    return f' style="background:rgba({rgb},{0.08 + 0.85 * share:.2f});{ink}"'


def heatmap(
    labels: list[str], matrix: list[list[int]], *, percent: bool, caption: str, row_axis: str
) -> str:
    """A matrix as a table: label names on both axes, cells shaded by their row share
    (blue on the diagonal, red off it); ``percent`` shows the row share instead of counts."""
    head = "".join(
        f'<th class="col" title="{escape(n)}"><span>{escape(n)}</span></th>' for n in labels
    )
    rows = []
    for i, row in enumerate(matrix):
        total = sum(row)
        cells = []
        for j, count in enumerate(row):
            share = count / total if total else 0.0
            text = f"{share:.0%}" if percent else f"{count:,}"
            if count == 0:
                text = '<span class="zero">0</span>'
            tip = f"{labels[i]} → {labels[j]}: {count:,} ({share:.1%} of the row)"
            cells.append(f'<td title="{escape(tip)}"{_cell_style(share, i == j)}>{text}</td>')
        rows.append(
            f'<tr><th class="row" title="{escape(labels[i])}">{escape(labels[i])}</th>'
            f'{"".join(cells)}<td class="total">{total:,}</td></tr>'
        )
    return (
        f'<div class="scroll matrix-wrap"><table class="matrix"><caption>{caption}</caption>'
        f'<thead><tr><th class="corner">{row_axis}</th>{head}<th class="col total"><span>'
        f"total</span></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _pairs_table(rows: list[tuple[str, str, int, str]], heads: tuple[str, str, str, str]) -> str:
    body = "".join(
        f'<tr><td>{escape(a)}</td><td>{escape(b)}</td><td class="num">{n:,}</td>'
        f'<td class="num">{share}</td></tr>'
        for a, b, n, share in rows
    )
    h = "".join(f'<th class="{"num" if i > 1 else ""}">{x}</th>' for i, x in enumerate(heads))
    return (
        f'<div class="scroll"><table><thead><tr>{h}</tr></thead><tbody>{body}</tbody></table></div>'
    )


def _names(result: ScoreResult, n: int) -> list[str]:
    return [result.class_name(i) for i in range(n)]


def confusion_section(result: ScoreResult) -> str:
    """Multi-class: the matrix (counts, and row-normalised) up to `MATRIX_MAX_CLASSES`
    classes, the most confused pairs always."""
    matrix = result.confusion_matrix or []
    n = len(matrix)
    names = _names(result, n)
    pairs = [
        (names[p["true"]], names[p["predicted"]], p["count"], f"{p['share']:.1%}")
        for p in (result.top_confusions or [])
    ]
    parts = ['<section class="card" id="confusion"><h2>Confusion matrix</h2>']
    if n <= MATRIX_MAX_CLASSES:
        parts.append(
            heatmap(
                names,
                matrix,
                percent=False,
                caption="Counts: rows are the true class, columns the predicted class (the "
                "highest score).",
                row_axis="true ↓ / predicted →",
            )
        )
        parts.append(
            "<details><summary>Row-normalised (share of each true class)</summary>"
            + heatmap(
                names,
                matrix,
                percent=True,
                caption="Each row sums to 100 %: the diagonal is the class's recall.",
                row_axis="true ↓ / predicted →",
            )
            + "</details>"
        )
        pairs = pairs[:_TOP]
    else:
        parts.append(
            f'<p class="note">{n} classes: too many for a readable matrix, so the most '
            "confused pairs are listed (the whole matrix is in scores.json).</p>"
        )
    if pairs:
        parts.append("<h3>Most confused</h3>")
        parts.append(
            _pairs_table(pairs, ("true class", "predicted as", "examples", "of the class"))
        )
    else:
        parts.append('<p class="note">No example is confused with another class.</p>')
    parts.append(_for_last(result) + "</section>")
    return "".join(parts)


def multilabel_section(result: ScoreResult) -> str:
    """Multi-label: each label's 2x2 at its threshold, and which labels are wrong together."""
    two = result.label_confusion or []
    names = _names(result, len(two))
    thresholds = {row.get("threshold") for row in result.per_class}
    threshold = thresholds.pop() if len(thresholds) == 1 else None
    rows = "".join(
        f"<tr><td>{escape(names[k])}</td>"
        + "".join(f'<td class="num">{c[key]:,}</td>' for key in ("tp", "fp", "fn", "tn"))
        + "</tr>"
        for k, c in enumerate(two)
    )
    parts = [
        '<section class="card" id="confusion"><h2>Confusion per label</h2>',
        '<div class="scroll"><table><thead><tr><th>label</th>'
        '<th class="num" title="true positives">TP</th><th class="num" title="false positives">FP</th>'
        '<th class="num" title="false negatives (missed)">FN</th>'
        f'<th class="num" title="true negatives">TN</th></tr></thead><tbody>{rows}</tbody></table></div>',
        '<p class="note">TP: predicted and true; FP: predicted, not true; FN: true, missed; '
        "TN: neither.</p>",
        f'<p class="note">A label is predicted when its score is at least {_f(threshold, 2)} '
        "(the emitted scores are probabilities calibrated on the engine's hold-out).</p>",
    ]
    co = result.error_cooccurrence or []
    if co and len(co) <= MATRIX_MAX_CLASSES:
        parts.append("<h3>Errors that come together</h3>")
        parts.append(
            heatmap(
                names,
                co,
                percent=False,
                caption="Examples on which both labels are wrong (missed or falsely predicted); "
                "the diagonal counts each label's errors.",
                row_axis="label",
            )
        )
    elif co:
        pairs = sorted(
            ((co[i][j], i, j) for i in range(len(co)) for j in range(i + 1, len(co)) if co[i][j]),
            reverse=True,
        )[:_TOP]
        parts.append("<h3>Labels most often wrong together</h3>")
        parts.append(
            _pairs_table(
                [(names[i], names[j], c, f"{c / max(co[i][i], 1):.1%}") for c, i, j in pairs],
                ("label", "with label", "examples", "of the first's errors"),
            )
        )
    parts.append(_for_last(result) + "</section>")
    return "".join(parts)


def _for_last(result: ScoreResult) -> str:
    k = result.diagnosed_prediction
    which = f"prediction {k}, " if k is not None else ""
    return f'<p class="note">For {which}the last one made within the time budget.</p>'


def per_class_section(result: ScoreResult) -> str:
    """The per-class table: support, precision, recall, F1, AUC, AP (and the threshold)."""
    multilabel = result.confusion_matrix is None
    reasons = dict(zip(result.ignored_classes, result.ignored_reasons, strict=False))
    heads = ["#", "class", "support", "precision", "recall", "F1", "AUC", "AP"]
    cells = "".join(f'<th class="{"" if h in ("#", "class") else "num"}">{h}</th>' for h in heads)
    rows = []
    for k, row in enumerate(result.per_class):
        auc = row["auc"]
        bar = (
            f'<div class="bar"><span style="width:{max(auc, 0) * 100:.1f}%"></span></div>'
            if auc is not None
            else f'<span class="badge muted" title="{escape(reasons.get(k, ""))}">left out</span>'
        )
        rows.append(
            f"<tr{' class=left-out' if auc is None else ''}><td>{k}</td><td>{escape(row['label'])}</td>"
            f'<td class="num">{row["support"]:,}</td>'
            + "".join(
                f'<td class="num">{_f(row[key])}</td>'
                for key in ("precision", "recall", "f1", "auc", "average_precision")
            )
            + f"<td>{bar}</td></tr>"
        )
    how = (
        f"a label counts as predicted when its score is at least {_f(result.per_class[0]['threshold'], 2)}"
        if multilabel and result.per_class
        else "the predicted class is the one with the highest score"
    )
    return (
        '<section class="card" id="per-class"><h2>Per class</h2><div class="scroll"><table>'
        f"<thead><tr>{cells}<th></th></tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
        f'<p class="note">Precision, recall and F1: {how}. AUC is the area under the ROC curve '
        "(as the official scorer ranks; 2 &times; AUC &minus; 1 is the class's NAUC), AP the "
        "average precision. A dash: undefined (nothing predicted, or no example). A class "
        "whose solution column is constant is left out of the NAUC.</p>"
        f"{_for_last(result)}</section>"
    )


# ------------------------------------------------------------------ curves

_W, _H, _PAD = 300, 260, 36


def _polyline(xs, ys, cls: str) -> str:
    pts = " ".join(
        f"{_PAD + x * (_W - _PAD - 8):.1f},{_H - _PAD - y * (_H - _PAD - 8):.1f}"
        for x, y in zip(xs, ys, strict=True)
    )
    return f'<polyline class="{cls}" points="{pts}"/>'


def _axes_svg(kind: str, lines: list[str], title: str) -> str:
    x0, y0, x1, y1 = _PAD, _H - _PAD, _W - 8, 8
    grid = "".join(
        f'<line class="grid" x1="{x0 + t * (x1 - x0):.1f}" y1="{y0}" x2="{x0 + t * (x1 - x0):.1f}" y2="{y1}"/>'
        f'<line class="grid" x1="{x0}" y1="{y0 - t * (y0 - y1):.1f}" x2="{x1}" y2="{y0 - t * (y0 - y1):.1f}"/>'
        f'<text x="{x0 + t * (x1 - x0):.1f}" y="{y0 + 14}" text-anchor="middle">{t:g}</text>'
        f'<text x="{x0 - 5}" y="{y0 - t * (y0 - y1) + 4:.1f}" text-anchor="end">{t:g}</text>'
        for t in (0, 0.25, 0.5, 0.75, 1)
    )
    xl, yl = (
        ("false positive rate", "true positive rate") if kind == "roc" else ("recall", "precision")
    )
    chance = (
        f'<line class="chance" x1="{x0}" y1="{y0}" x2="{x1}" y2="{y1}"/>' if kind == "roc" else ""
    )
    return (
        f'<svg class="curve" viewBox="0 0 {_W} {_H + 4}" role="img" aria-label="{escape(title)}">'
        f"<title>{escape(title)}</title>{grid}{chance}{''.join(lines)}"
        f'<text class="axis" x="{(x0 + x1) / 2}" y="{_H + 2}" text-anchor="middle">{xl}</text>'
        f'<text class="axis" transform="translate(10 {(y0 + y1) / 2}) rotate(-90)" '
        f'text-anchor="middle">{yl}</text></svg>'
    )


def _panel(curves: dict, k: int | None, macro_only: bool) -> str:
    macro = curves["macro"]
    classes = curves["classes"]
    if k is None:
        roc = [_polyline(c["roc"]["fpr"], c["roc"]["tpr"], "thin") for c in classes[:PICKER_MAX]]
        pr = [
            _polyline(c["pr"]["recall"], c["pr"]["precision"], "thin") for c in classes[:PICKER_MAX]
        ]
        roc.append(_polyline(macro["roc"]["fpr"], macro["roc"]["tpr"], "main"))
        pr.append(_polyline(macro["pr"]["recall"], macro["pr"]["precision"], "main"))
        head = (
            f"<b>Macro average</b> of {len(classes)} classes: AUC {_f(macro['roc']['auc'])}, "
            f"AP {_f(macro['pr']['average_precision'])}"
            + ("" if macro_only else " (thin lines: each class)")
        )
        name = "macro average"
    else:
        c = next(c for c in classes if c["index"] == k)
        roc = [
            _polyline(macro["roc"]["fpr"], macro["roc"]["tpr"], "ref"),
            _polyline(c["roc"]["fpr"], c["roc"]["tpr"], "main"),
        ]
        pr = [
            _polyline(macro["pr"]["recall"], macro["pr"]["precision"], "ref"),
            _polyline(c["pr"]["recall"], c["pr"]["precision"], "main"),
        ]
        head = (
            f"<b>{escape(c['label'])}</b>: AUC {_f(c['auc'])}, AP {_f(c['average_precision'])} "
            "(dashed: the macro average)"
        )
        name = c["label"]
    return (
        f'<p class="curve-head">{head}</p><div class="curve-pair">'
        f"{_axes_svg('roc', roc, f'ROC curve: {name}')}{_axes_svg('pr', pr, f'Precision-recall curve: {name}')}</div>"
    )


def curves_section(result: ScoreResult) -> str:
    """ROC and PR curves: the macro average, and each class through a CSS-only picker."""
    curves = result.curves
    if not curves or not curves.get("classes") or not curves.get("macro"):
        return ""
    classes = curves["classes"]
    picked = classes
    note = ""
    if len(classes) > PICKER_MAX:
        picked = sorted(classes, key=lambda c: (c["auc"] is None, c["auc"] or 0))[:PICKER_MAX]
        picked.sort(key=lambda c: c["index"])
        note = (
            f'<p class="note">{len(classes)} classes: the picker offers the {PICKER_MAX} with '
            "the lowest AUC; every class's curves are in curves.json and on the job page.</p>"
        )
    keys = ["m"] + [str(c["index"]) for c in picked]
    radios = "".join(
        f'<input type="radio" name="curve-pick" id="cp-{key}" class="pick"{" checked" if key == "m" else ""}>'
        for key in keys
    )
    chips = '<label for="cp-m">Macro average</label>' + "".join(
        f'<label for="cp-{c["index"]}">{escape(c["label"])}</label>' for c in picked
    )
    panels = f'<div class="cpanel p-m">{_panel(curves, None, len(classes) == 1)}</div>' + "".join(
        f'<div class="cpanel p-{c["index"]}">{_panel(curves, c["index"], False)}</div>'
        for c in picked
    )
    show = ",".join(f"#cp-{k}:checked~.cpanels .p-{k}" for k in keys)
    mark = ",".join(f'#cp-{k}:checked~.chips label[for="cp-{k}"]' for k in keys)
    style = f"<style>{show}{{display:block}}{mark}{{background:var(--accent);color:#fff;border-color:var(--accent)}}</style>"
    left = len(curves.get("left_out") or [])
    left_note = (
        f" {left} class{'es have' if left > 1 else ' has'} no curve: constant in the solution."
        if left
        else ""
    )
    return (
        f'<section class="card" id="curves"><h2>ROC and precision&ndash;recall curves</h2>{style}'
        f'<div class="curves">{radios}<div class="chips" role="group" aria-label="Class">{chips}</div>'
        f'<div class="cpanels">{panels}</div></div>{note}'
        '<p class="note">Pick a class to see its curves against the macro average. Curves keep '
        f"at most {curves['max_points']} points per class.{left_note}</p>{_for_last(result)}</section>"
    )


def diagnostics_sections(result: ScoreResult) -> list[str]:
    """The report's sections for the result's diagnostics (none for an old result)."""
    if not result.per_class:
        return []
    out = [
        confusion_section(result)
        if result.confusion_matrix is not None
        else multilabel_section(result)
    ]
    out.append(per_class_section(result))
    curves = curves_section(result)
    if curves:
        out.append(curves)
    return out
