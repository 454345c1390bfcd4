// A job's page: where the run fails. Confusion matrix (or per-label 2x2 and errors that
// come together), a sortable per-class table, ROC and PR curves with a class picker.
// Everything comes from /api/v1/jobs/<id>/diagnostics (the job's stored files).
"use strict";
(function () {
  const job = JSON.parse(document.getElementById("job-data").textContent);
  const $ = s => document.getElementById(s);
  const TERMINAL = ["finished", "failed", "cancelled"];
  const SVG = "http://www.w3.org/2000/svg";
  const fmt = (v, d) => (v == null ? "–" : v.toFixed(d == null ? 3 : d));
  let data = null;
  let mode = "count";

  function el(tag, attrs, text) {
    const e = document.createElement(tag);
    Object.entries(attrs || {}).forEach(([k, v]) => { if (v != null) e.setAttribute(k, v); });
    if (text != null) e.textContent = text;
    return e;
  }
  function names(n) { return Array.from({ length: n }, (_, i) => (data.label_names && data.label_names[i]) || "class " + i); }

  // ------------------------------------------------------------ matrix
  function shade(share, diagonal) {
    if (share <= 0) return "";
    return (diagonal ? "h" : "e") + Math.min(9, 1 + Math.floor(share * 9));
  }

  function heatmap(labels, matrix, corner, caption) {
    // The note goes under the scroll box, not in it: on a phone a wide matrix scrolls
    // sideways and a <caption> as wide as the table was cut off with it.
    const outer = el("div");
    const wrap = el("div", { class: "table-wrap matrix-wrap" });
    const t = el("table", { class: "matrix", "aria-label": caption });
    const hr = el("tr");
    hr.appendChild(el("th", { class: "corner", scope: "col" }, corner));
    labels.forEach(n => { const th = el("th", { class: "col", scope: "col", title: n }); th.appendChild(el("span", {}, n)); hr.appendChild(th); });
    const tot = el("th", { class: "col total", scope: "col" }); tot.appendChild(el("span", {}, "total")); hr.appendChild(tot);
    const thead = el("thead"); thead.appendChild(hr); t.appendChild(thead);
    const body = el("tbody");
    matrix.forEach((row, i) => {
      const total = row.reduce((a, b) => a + b, 0);
      const tr = el("tr");
      tr.appendChild(el("th", { class: "row", scope: "row", title: labels[i] }, labels[i]));
      row.forEach((count, j) => {
        const share = total ? count / total : 0;
        const text = mode === "row" ? Math.round(100 * share) + "%" : count.toLocaleString();
        const td = el("td", { class: (count ? shade(share, i === j) : "zero") || null,
          title: `${labels[i]} → ${labels[j]}: ${count.toLocaleString()} (${(100 * share).toFixed(1)}% of the row)` }, text);
        tr.appendChild(td);
      });
      tr.appendChild(el("td", { class: "total" }, total.toLocaleString()));
      body.appendChild(tr);
    });
    t.appendChild(body);
    wrap.appendChild(t);
    outer.appendChild(wrap);
    outer.appendChild(el("p", { class: "matrix-note" }, caption));
    return outer;
  }

  function pairsTable(rows, heads, title, numFrom) {
    const first = numFrom == null ? 2 : numFrom;
    const box = el("div");
    box.appendChild(el("h3", {}, title));
    const wrap = el("div", { class: "table-wrap pairs-wrap" });
    const t = el("table", { class: "small-table" });
    const hr = el("tr");
    heads.forEach((h, i) => hr.appendChild(el("th", { class: i >= first ? "num" : null }, h)));
    const thead = el("thead"); thead.appendChild(hr); t.appendChild(thead);
    const body = el("tbody");
    rows.forEach(r => {
      const tr = el("tr");
      r.forEach((v, i) => tr.appendChild(el("td", { class: i >= first ? "num" : "name" }, v)));
      body.appendChild(tr);
    });
    t.appendChild(body); wrap.appendChild(t); box.appendChild(wrap);
    return box;
  }

  function renderConfusion() {
    const box = $("diag-matrix"), pairs = $("diag-pairs");
    box.textContent = ""; pairs.textContent = "";
    const which = `For prediction ${data.diagnosed_prediction}, the last made within the time budget.`;
    if (data.task === "multi-class") {
      const m = data.confusion_matrix, labels = names(m.length);
      const big = m.length > data.matrix_max_classes;
      $("diag-mode").hidden = big;
      if (!big) box.appendChild(heatmap(labels, m, "true ↓ predicted →", mode === "row"
        ? "Row-normalised: each row is a true class and sums to 100%; the diagonal is its recall."
        : "Counts: rows are the true class, columns the predicted class (the highest score)."));
      const top = (data.top_confusions || []).slice(0, big ? 25 : 10);
      if (top.length) pairs.appendChild(pairsTable(top.map(p => [labels[p.true], labels[p.predicted], p.count.toLocaleString(), (100 * p.share).toFixed(1) + "%"]),
        ["True class", "Predicted as", "Examples", "Of the class"], "Most confused"));
      $("diag-confusion-note").textContent = (big ? `${m.length} classes: too many for a readable matrix, so the most confused pairs are listed (the whole matrix is in scores.json). ` : "") + which;
      return;
    }
    $("diag-confusion-title").textContent = "Confusion per label";
    const two = data.label_confusion || [], labels = names(two.length);
    const threshold = data.per_class.length ? data.per_class[0].threshold : 0.5;
    box.appendChild(pairsTable(two.map((c, k) => [labels[k], c.tp.toLocaleString(), c.fp.toLocaleString(), c.fn.toLocaleString(), c.tn.toLocaleString()]),
      ["Label", "TP", "FP", "FN", "TN"], `Each label at score ≥ ${threshold}`, 1));
    const co = data.error_cooccurrence || [];
    const big = co.length > data.matrix_max_classes;
    $("diag-mode").hidden = big;
    if (co.length && !big) {
      pairs.appendChild(el("h3", {}, "Errors that come together"));
      pairs.appendChild(heatmap(labels, co, "label", mode === "row"
        ? "Share of the row label's errors on which the column label is wrong too."
        : "Examples on which both labels are wrong (missed or falsely predicted); the diagonal counts each label's errors."));
    } else if (co.length) {
      const list = [];
      co.forEach((row, i) => row.forEach((c, j) => { if (j > i && c) list.push([c, i, j]); }));
      list.sort((a, b) => b[0] - a[0]);
      pairs.appendChild(pairsTable(list.slice(0, 25).map(([c, i, j]) => [labels[i], labels[j], c.toLocaleString(), (100 * c / Math.max(1, co[i][i])).toFixed(1) + "%"]),
        ["Label", "With label", "Examples", "Of the first's errors"], "Labels most often wrong together"));
    }
    $("diag-confusion-note").textContent = "TP: predicted and true; FP: predicted, not true; FN: true, missed; TN: neither. " +
      "The emitted scores are probabilities calibrated on the engine's hold-out. " + which;
  }

  // ------------------------------------------------------------ per-class table
  let sortKey = "index", sortDir = 1;
  function renderClasses() {
    const rows = data.per_class.map((r, i) => Object.assign({ index: i }, r));
    rows.sort((a, b) => {
      const x = a[sortKey], y = b[sortKey];
      if (x == null && y == null) return a.index - b.index;
      if (x == null) return 1;  // undefined values last, either way
      if (y == null) return -1;
      const c = typeof x === "string" ? x.localeCompare(y) : x - y;
      return c * sortDir || a.index - b.index;
    });
    const body = document.querySelector("#class-table tbody");
    body.textContent = "";
    rows.forEach(r => {
      const tr = el("tr", { class: r.auc == null ? "left-out" : null });
      tr.appendChild(el("td", { class: "num" }, String(r.index)));
      tr.appendChild(el("td", { class: "name", title: r.label }, r.label));
      tr.appendChild(el("td", { class: "num" }, r.support.toLocaleString()));
      ["precision", "recall", "f1", "auc", "average_precision"].forEach(k => tr.appendChild(el("td", { class: "num" }, fmt(r[k]))));
      body.appendChild(tr);
    });
    document.querySelectorAll("#class-table th").forEach(th => {
      if (th.dataset.key === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
      else th.removeAttribute("aria-sort");
    });
    const ml = data.task === "multi-label";
    $("class-note").textContent = (ml
      ? `A label counts as predicted when its score is at least ${data.per_class[0].threshold}. `
      : "The predicted class is the one with the highest score. ") +
      "AUC: area under the ROC curve (as the official scorer ranks); AP: average precision. A dash: undefined (nothing predicted, or no example); a class constant in the solution is left out of the NAUC. Click a heading to sort.";
  }

  // ------------------------------------------------------------ curves
  const W = 320, H = 280, P = 40;
  function chart(kind, lines, title) {
    const svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", `0 0 ${W} ${H + 6}`);
    svg.setAttribute("class", "roc-pr");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", title);
    const x0 = P, y0 = H - P, x1 = W - 10, y1 = 10;
    const X = v => x0 + v * (x1 - x0), Y = v => y0 - v * (y0 - y1);
    const add = (tag, attrs, text) => {
      const e = document.createElementNS(SVG, tag);
      Object.entries(attrs).forEach(([k, v]) => e.setAttribute(k, v));
      if (text != null) e.textContent = text;
      svg.appendChild(e);
      return e;
    };
    add("title", {}, title);
    [0, 0.25, 0.5, 0.75, 1].forEach(t => {
      add("line", { class: "grid", x1: X(t), y1: y0, x2: X(t), y2: y1 });
      add("line", { class: "grid", x1: x0, y1: Y(t), x2: x1, y2: Y(t) });
      add("text", { x: X(t), y: y0 + 14, "text-anchor": "middle" }, String(t));
      add("text", { x: x0 - 5, y: Y(t) + 4, "text-anchor": "end" }, String(t));
    });
    if (kind === "roc") add("line", { class: "chance", x1: X(0), y1: Y(0), x2: X(1), y2: Y(1) });
    lines.forEach(([xs, ys, cls]) => {
      add("polyline", { class: cls, points: xs.map((x, i) => X(x).toFixed(1) + "," + Y(ys[i]).toFixed(1)).join(" ") });
    });
    const [xl, yl] = kind === "roc" ? ["false positive rate", "true positive rate"] : ["recall", "precision"];
    add("text", { class: "axis", x: (x0 + x1) / 2, y: H + 2, "text-anchor": "middle" }, xl);
    add("text", { class: "axis", transform: `translate(11 ${(y0 + y1) / 2}) rotate(-90)`, "text-anchor": "middle" }, yl);
    return svg;
  }

  function drawCurves() {
    const c = data.curves, pick = $("curve-class").value;
    const macro = c.macro;
    let roc, pr, head;
    if (pick === "macro") {
      const thin = c.classes.slice(0, 50);
      roc = thin.map(k => [k.roc.fpr, k.roc.tpr, "thin"]).concat([[macro.roc.fpr, macro.roc.tpr, "main"]]);
      pr = thin.map(k => [k.pr.recall, k.pr.precision, "thin"]).concat([[macro.pr.recall, macro.pr.precision, "main"]]);
      head = [["Macro average", true], [` of ${c.classes.length} classes: AUC ${fmt(macro.roc.auc)}, AP ${fmt(macro.pr.average_precision)}` + (c.classes.length > 1 ? ` (thin lines: ${thin.length < c.classes.length ? "the first " + thin.length + " " : "each "}class)` : "")]];
    } else {
      const k = c.classes.find(x => String(x.index) === pick);
      roc = [[macro.roc.fpr, macro.roc.tpr, "ref"], [k.roc.fpr, k.roc.tpr, "main"]];
      pr = [[macro.pr.recall, macro.pr.precision, "ref"], [k.pr.recall, k.pr.precision, "main"]];
      head = [[k.label, true], [`: AUC ${fmt(k.auc)}, AP ${fmt(k.average_precision)} (dashed: the macro average)`]];
    }
    const h = $("curve-head");
    h.textContent = "";
    head.forEach(([t, b]) => h.appendChild(b ? el("b", {}, t) : document.createTextNode(t)));
    const name = pick === "macro" ? "macro average" : head[0][0];
    $("roc-chart").replaceChildren(chart("roc", roc, "ROC curve: " + name));
    $("pr-chart").replaceChildren(chart("pr", pr, "Precision-recall curve: " + name));
  }

  function renderCurves() {
    const c = data.curves;
    if (!c || !c.macro || !c.classes.length) return false;
    const sel = $("curve-class");
    sel.textContent = "";
    sel.appendChild(el("option", { value: "macro" }, "Macro average"));
    c.classes.forEach(k => sel.appendChild(el("option", { value: String(k.index) }, `${k.label} (AUC ${fmt(k.auc)})`)));
    sel.onchange = drawCurves;
    drawCurves();
    const left = (c.left_out || []).length;
    $("curve-note").textContent = `Curves keep at most ${c.max_points} points per class.` +
      (left ? ` ${left} class${left > 1 ? "es have" : " has"} no curve: constant in the solution.` : "");
    return true;
  }

  // ------------------------------------------------------------ loading
  function render(d) {
    data = d;
    renderConfusion();
    renderClasses();
    $("diag-confusion").hidden = false;
    $("diag-classes").hidden = false;
    // The per-class table holds the AUCs: the live "AUC per class" card goes.
    const auc = $("auc-table");
    if (auc) auc.closest("section").hidden = true;
    $("diag-curves").hidden = !renderCurves();
  }

  document.querySelectorAll("#diag-mode button").forEach(b => b.addEventListener("click", () => {
    mode = b.dataset.mode;
    document.querySelectorAll("#diag-mode button").forEach(x => x.setAttribute("aria-pressed", String(x === b)));
    if (data) renderConfusion();
  }));
  document.querySelectorAll("#class-table th button").forEach(b => b.addEventListener("click", () => {
    const key = b.parentElement.dataset.key;
    if (key === sortKey) sortDir = -sortDir;
    else { sortKey = key; sortDir = key === "label" || key === "index" ? 1 : -1; }
    if (data) renderClasses();
  }));

  function load() {
    fetch(`/api/v1/jobs/${job.id}/diagnostics`, { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then(r => (r.ok ? r.json() : null))
      .then(d => {
        if (d) { render(d); return; }
        // Not written yet: look again while the job runs, and once after it ends.
        const pill = $("state-pill");
        const ended = pill && TERMINAL.some(s => pill.classList.contains(s));
        if (!ended || !load.after) { if (ended) load.after = true; setTimeout(load, document.hidden ? 8000 : 4000); }
      })
      .catch(() => setTimeout(load, 8000));
  }
  load();
})();
