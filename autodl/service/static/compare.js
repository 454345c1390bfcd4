// Compare: fetch each job's curve and draw them on one chart.
"use strict";
(function () {
  const node = document.getElementById("compare-ids");
  const chart = document.getElementById("compare-chart");
  if (!node || !chart) return;
  const ids = JSON.parse(node.textContent);
  Promise.all(ids.map(id => fetch(`/api/v1/jobs/${id}/curve`, { credentials: "same-origin" }).then(r => r.json())))
    .then(curves => {
      const series = curves.map((c, i) => ({ label: `${c.name} (#${c.id})`, points: c.points, budget: c.time_budget, t0: c.t0, alc: c.alc, index: i }));
      const redraw = () => AutoDLChart.draw(chart, series, { height: 380, legend: true, empty: "None of these jobs has a prediction yet." });
      redraw();
      let timer;
      window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(redraw, 150); });
    })
    .catch(() => { chart.textContent = "The curves could not be loaded. Reload the page to try again."; });
})();
