// The job page's model panel (_predict.html). Prediction jobs: while one is queued or running, ask the API every two
// seconds and reload the page once any of them changed state (its CSV link then shows).
(function () {
  // A run still going: its model is offered once it ends, so reload then.
  const later = document.getElementById("predict-later");
  if (later) {
    const check = async () => {
      try {
        const r = await fetch(`/api/v1/jobs/${later.dataset.job}`, { credentials: "same-origin" });
        if (r.ok && ["finished", "failed", "cancelled"].includes((await r.json()).state)) {
          window.location.reload();
          return;
        }
      } catch (e) { /* try again */ }
      setTimeout(check, 3000);
    };
    setTimeout(check, 3000);
    return;
  }
  const table = document.getElementById("prediction-jobs");
  if (!table || !table.dataset.pending) return;
  const seen = {};
  table.querySelectorAll("tr[data-id]").forEach((tr) => { seen[tr.dataset.id] = tr.dataset.state; });
  async function poll() {
    try {
      const r = await fetch(`/api/v1/jobs/${table.dataset.job}/predictions`, { credentials: "same-origin" });
      if (r.ok) {
        const body = await r.json();
        if (body.predictions.some((p) => seen[p.id] !== undefined && seen[p.id] !== p.state)) {
          window.location.reload();
          return;
        }
      }
    } catch (e) { /* offline for a moment: try again */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
