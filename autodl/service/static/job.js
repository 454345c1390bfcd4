// A job's page: poll its state, scores and curve while it runs; new points appear live.
"use strict";
(function () {
  const job0 = JSON.parse(document.getElementById("job-data").textContent);
  const id = job0.id;
  const LABELS = { queued: "Queued", running: "Running", scoring: "Scoring", finished: "Finished", failed: "Failed", cancelled: "Cancelled" };
  const TERMINAL = ["finished", "failed", "cancelled"];
  const $ = s => document.getElementById(s);
  const fmt = (v, d) => (v == null ? "–" : v.toFixed(d == null ? 4 : d));
  let curve = null;
  let lastPoints = -1;
  // One count for the tile, the progress line and the curve: the job record can lag the
  // curve (it is updated by the supervisor, the curve is read from the run's files).
  let nPredictions = job0.n_predictions || 0;
  const LIVE = ["running", "scoring"];
  let startedAt = job0.started_at ? Date.parse(job0.started_at) : null;
  let state = job0.state;
  let logOpened = job0.state === "running";

  function get(url) { return fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } }); }

  function statusText(j) {
    if (j.state === "queued") {
      return [`Waiting in the queue: position `, [String(j.queue_position || 1)], j.jobs_running ? ` (${j.jobs_running} job${j.jobs_running === 1 ? "" : "s"} running).` : "."];
    }
    if (j.state === "running") {
      const others = j.other_jobs ? ` ${j.other_jobs} other job${j.other_jobs === 1 ? " is" : "s are"} running beside it.` : "";
      return ["Training: the engine is working within its " + AutoDLChart.fmtTime(j.time_budget) + " budget." + others];
    }
    if (j.state === "scoring") return ["Scoring the predictions and writing the report…"];
    if (j.state === "finished") return ["Finished" + (j.duration ? " in " + AutoDLChart.fmtTime(j.duration) : "") + "."];
    if (j.state === "failed") return ["This job failed."];
    return ["This job was cancelled."];
  }

  function renderJob(j) {
    state = j.state;
    const pill = $("state-pill");
    pill.className = "pill " + j.state;
    pill.textContent = LABELS[j.state];
    const st = $("status-text");
    st.textContent = "";
    statusText(j).forEach(part => {
      if (Array.isArray(part)) { const b = document.createElement("b"); b.textContent = part[0]; st.appendChild(b); }
      else st.appendChild(document.createTextNode(part));
    });
    $("failure").hidden = j.state !== "failed";
    $("failure-text").textContent = j.reason || "";
    $("job-note").hidden = !j.note;
    $("job-note").textContent = j.note || "";
    $("cancel-form").hidden = TERMINAL.includes(j.state);
    $("m-alc").textContent = fmt(j.alc);
    $("m-nauc").textContent = fmt(j.final_nauc);
    $("m-acc").textContent = fmt(j.final_accuracy);
    if (lastPoints < 0) nPredictions = j.n_predictions || 0;  // the curve's count, once there is one
    $("m-n").textContent = String(nPredictions);
    $("m-alc-note").hidden = !LIVE.includes(j.state);
    const downloads = j.downloads || {};
    let shown = 0;
    document.querySelectorAll("#downloads li").forEach(li => {
      li.hidden = !(li.dataset.name in downloads);
      if (!li.hidden) shown++;
    });
    $("no-downloads").hidden = shown > 0;
    if (j.started_at) startedAt = Date.parse(j.started_at);
    const tl = $("timeline");
    if (j.events && tl.children.length !== j.events.length) {
      tl.textContent = "";
      j.events.forEach(e => {
        const li = document.createElement("li");
        const p = document.createElement("span");
        p.className = "pill " + e.state;
        p.textContent = LABELS[e.state];
        const t = document.createElement("time");
        t.textContent = e.at ? e.at.replace("T", " ").slice(0, 16) + " UTC" : "";
        li.append(p, " ", t, e.message ? " — " + e.message : "");
        tl.appendChild(li);
      });
    }
    if (j.state === "running" && !logOpened) { logOpened = true; $("log-box").open = true; }
    runProgress(j);
  }

  function runProgress(j) {
    const box = $("run-progress");
    box.hidden = j.state !== "running" || !startedAt;
    if (box.hidden) return;
    const elapsed = Math.max(0, (Date.now() - startedAt) / 1000);
    const pct = Math.min(100, (100 * elapsed) / j.time_budget);
    $("run-bar").style.width = pct + "%";
    const used = elapsed >= j.time_budget ? `The ${AutoDLChart.fmtTime(j.time_budget)} budget is used up; stopping the engine`
      : `${AutoDLChart.fmtTime(elapsed)} of ${AutoDLChart.fmtTime(j.time_budget)} used`;
    $("run-text").textContent = `${used} · ${nPredictions} prediction${nPredictions === 1 ? "" : "s"} so far`;
  }

  function renderCurve(c) {
    curve = c;
    const latest = c.points.length ? c.points[c.points.length - 1] : null;
    if (latest) {
      nPredictions = c.points.length;
      $("m-n").textContent = String(nPredictions);
      if (state === "running") runProgress({ state: state, time_budget: job0.time_budget });
      $("m-alc").textContent = fmt(c.alc);
      $("m-nauc").textContent = fmt(c.final_nauc);
      $("m-acc").textContent = fmt(c.final_accuracy);
    }
    if (c.points.length !== lastPoints) {
      lastPoints = c.points.length;
      drawCurve();
      const body = document.querySelector("#pred-table tbody");
      body.textContent = "";
      c.points.forEach(p => {
        const tr = document.createElement("tr");
        [String(p.index), p.t.toFixed(1) + " s" + (p.late ? " (late)" : ""), fmt(p.nauc), fmt(p.accuracy), p.learner || "–"].forEach((v, i) => {
          const td = document.createElement("td");
          if (i < 4) td.className = "num";
          td.textContent = v;
          tr.appendChild(td);
        });
        body.appendChild(tr);
      });
      $("pred-empty").hidden = c.points.length > 0;
      const auc = document.querySelector("#auc-table tbody");
      auc.textContent = "";
      c.auc_per_class.forEach(a => {
        const tr = document.createElement("tr");
        const name = document.createElement("td");
        name.textContent = a.label;
        const val = document.createElement("td");
        val.className = "num";
        val.textContent = a.auc == null ? "left out" : a.auc.toFixed(4);
        const barTd = document.createElement("td");
        const bar = document.createElement("span");
        bar.className = "aucbar";
        const fill = document.createElement("i");
        fill.style.width = (a.auc == null ? 0 : Math.max(0, a.auc) * 100) + "%";
        bar.appendChild(fill);
        barTd.appendChild(bar);
        tr.append(name, val, barTd);
        auc.appendChild(tr);
      });
      $("auc-empty").hidden = c.auc_per_class.length > 0;
    }
  }

  function drawCurve() {
    if (!curve) return;
    AutoDLChart.draw($("curve"), [{ label: "", points: curve.points, budget: curve.time_budget, t0: curve.t0 }],
      { empty: state === "queued" ? "The curve appears here once the job runs and makes its first prediction." : "The curve appears here with the first prediction." });
  }

  function loadLog() {
    return get(`/api/v1/jobs/${id}/log`).then(r => (r.ok ? r.text() : "")).then(text => {
      const pre = $("log");
      const atEnd = pre.scrollTop + pre.clientHeight >= pre.scrollHeight - 20;
      pre.textContent = text || "Nothing logged yet.";
      if (atEnd) pre.scrollTop = pre.scrollHeight;
    });
  }

  let polls = 0;
  function poll() {
    polls++;
    return get(`/api/v1/jobs/${id}`).then(r => {
      if (r.status === 404) { window.location.assign("/jobs"); return null; }
      return r.json();
    }).then(j => {
      if (!j) return;
      renderJob(j);
      const work = [];
      if (j.state !== "queued") work.push(get(`/api/v1/jobs/${id}/curve`).then(r => r.json()).then(renderCurve));
      if (j.state !== "queued" && (!TERMINAL.includes(j.state) || polls === 1 || lastState !== j.state)) work.push(loadLog());
      // Parts drawn by the server (the examples, the model panel) come with a reload.
      if (j.state === "finished" && !TERMINAL.includes(job0.state)) $("ended-note").hidden = false;
      lastState = j.state;
      return Promise.all(work).then(() => j);
    }).then(j => {
      if (j && !TERMINAL.includes(j.state)) setTimeout(poll, document.hidden ? 5000 : 1500);
    }).catch(() => setTimeout(poll, 5000));
  }
  let lastState = null;
  renderJob(job0);
  poll();
  setInterval(() => { if (state === "running") runProgress({ state: state, time_budget: job0.time_budget }); }, 1000);
  let timer;
  window.addEventListener("resize", () => { clearTimeout(timer); timer = setTimeout(drawCurve, 150); });
  document.querySelectorAll("form[data-confirm]").forEach(form => {
    form.addEventListener("submit", e => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
  });
})();
