// Learning-curve charts drawn as SVG, no library: NAUC (y) against time on the
// ALC's log axis, t~ = log(1 + t/t0) / log(1 + T/t0), as a step function.
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  function el(name, attrs, parent) {
    const node = document.createElementNS(NS, name);
    for (const k in attrs) node.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(node);
    return node;
  }
  function xt(t, T, t0) { return Math.log(1 + Math.max(0, t) / t0) / Math.log(1 + T / t0); }
  function fmtTime(s) {
    if (s < 60) return Math.round(s) + " s";
    if (s < 3600) return (Math.round(s / 6) / 10).toString().replace(/\.0$/, "") + " min";
    return (Math.round(s / 360) / 10).toString().replace(/\.0$/, "") + " h";
  }
  const TICKS = [1, 2, 5, 10, 20, 30, 60, 120, 300, 600, 1200, 1800, 3600, 7200, 14400, 28800, 86400];

  // series: [{label, points: [{t, nauc, learner, late}], budget, t0}]
  function draw(container, series, opts) {
    opts = opts || {};
    const withPoints = series.filter(s => s.points && s.points.length);
    container.textContent = "";
    if (!withPoints.length) {
      const p = document.createElement("p");
      p.className = "muted chart-empty";
      p.textContent = opts.empty || "The curve appears here with the first prediction.";
      container.appendChild(p);
      return;
    }
    const W = Math.max(300, container.clientWidth || 600);
    const narrow = W < 500;
    const H = opts.height || (narrow ? 240 : 320);
    const m = { l: narrow ? 40 : 52, r: 14, t: 12, b: 44 };
    const iw = W - m.l - m.r, ih = H - m.t - m.b;
    let lo = 0;
    withPoints.forEach(s => s.points.forEach(p => { if (p.nauc != null && p.nauc < lo) lo = p.nauc; }));
    const step = lo < -0.5 ? 0.5 : 0.2;
    lo = Math.floor(lo / step - 1e-9) * step;
    const X = v => m.l + v * iw;
    const Y = v => m.t + (1 - (v - lo) / (1 - lo)) * ih;
    const svg = el("svg", { viewBox: `0 0 ${W} ${H}`, width: W, height: H, role: "presentation" }, null);
    const grid = el("g", { class: "grid" }, svg);
    const axis = el("g", { class: "axis" }, svg);
    for (let v = lo; v <= 1.0001; v += step) {
      const y = Y(v);
      el("line", { x1: m.l, x2: W - m.r, y1: y, y2: y }, grid);
      el("text", { x: m.l - 8, y: y + 4, "text-anchor": "end" }, axis).textContent = (Math.abs(v) < 1e-9 ? 0 : v).toFixed(1);
    }
    const budgets = new Set(withPoints.map(s => s.budget));
    const one = budgets.size === 1;
    const T = withPoints[0].budget, t0 = withPoints[0].t0 || 60;
    const ticks = [];
    if (one) {
      TICKS.filter(t => t < T).forEach(t => ticks.push([xt(t, T, t0), fmtTime(t)]));
      ticks.push([1, fmtTime(T)]);
    } else {
      [0.01, 0.05, 0.1, 0.25, 0.5, 1].forEach(f => ticks.push([xt(f * 1000, 1000, 60), Math.round(f * 100) + "%"]));
    }
    let lastX = -100;
    ticks.forEach(([v, label]) => {
      const x = X(v);
      el("line", { x1: x, x2: x, y1: m.t, y2: m.t + ih }, grid);
      if (x - lastX < (narrow ? 34 : 42) && v !== 1) return;
      if (v === 1 && x - lastX < 34) { axis.lastChild && axis.removeChild(axis.lastChild); }
      el("text", { x: x, y: H - m.b + 18, "text-anchor": "middle" }, axis).textContent = label;
      lastX = x;
    });
    el("text", { x: m.l + iw / 2, y: H - 6, "text-anchor": "middle", class: "axis-title" }, svg).textContent =
      one ? "time (log scale)" : "share of each job's time budget (log scale)";
    el("text", { x: 12, y: m.t + ih / 2, "text-anchor": "middle", class: "axis-title", transform: `rotate(-90 12 ${m.t + ih / 2})` }, svg).textContent = "test NAUC";

    withPoints.forEach((s, i) => {
      const cls = "c" + ((s.index != null ? s.index : i) % 8);
      const T = s.budget, t0 = s.t0 || 60;
      const pts = s.points.filter(p => !p.late && p.nauc != null);
      if (!pts.length) return;
      let d = `M${X(0)},${Y(Math.max(lo, 0))}`;
      pts.forEach(p => { d += ` H${X(xt(p.t, T, t0))} V${Y(p.nauc)}`; });
      d += ` H${X(1)}`;
      if (withPoints.length === 1) {
        el("path", { d: d + ` V${Y(Math.max(lo, 0))} Z`, class: "area " + cls }, svg);
      }
      el("path", { d: d, class: "step " + cls }, svg);
      pts.forEach(p => {
        const c = el("circle", { cx: X(xt(p.t, T, t0)), cy: Y(p.nauc), r: narrow ? 3.5 : 4.5, class: "dot " + cls }, svg);
        el("title", {}, c).textContent = `${s.label ? s.label + ": " : ""}#${p.index} at ${p.t.toFixed(1)} s — NAUC ${p.nauc.toFixed(4)}` +
          (p.accuracy != null ? `, accuracy ${p.accuracy.toFixed(4)}` : "") + (p.learner ? ` (${p.learner})` : "");
      });
    });
    container.appendChild(svg);
    if (withPoints.length > 1 || opts.legend) {
      const legend = document.createElement("div");
      legend.className = "legend";
      series.forEach((s, i) => {
        const item = document.createElement("span");
        const sw = document.createElement("span");
        sw.className = "swatch s" + ((s.index != null ? s.index : i) % 8);
        item.appendChild(sw);
        item.appendChild(document.createTextNode(" " + s.label + (s.alc != null ? ` (ALC ${s.alc.toFixed(4)})` : "")));
        legend.appendChild(item);
      });
      container.appendChild(legend);
    }
  }
  window.AutoDLChart = { draw: draw, fmtTime: fmtTime };
})();
