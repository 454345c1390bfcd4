// Upload with a progress bar (XHR upload events), then go to the new job's page.
"use strict";
(function () {
  const form = document.getElementById("upload-form");
  if (!form) return;
  const fileInput = document.getElementById("file");
  const button = document.getElementById("submit");
  const progress = document.getElementById("progress");
  const bar = document.getElementById("progress-bar");
  const text = document.getElementById("progress-text");
  const errorBox = document.getElementById("upload-error");
  const max = parseInt(form.dataset.max, 10);

  function mb(n) { return n >= 1073741824 ? (n / 1073741824).toFixed(2) + " GB" : (n / 1048576).toFixed(1) + " MB"; }
  // `code` in a message is shown as <code>code</code>, never with its backticks.
  function coded(parent, text) {
    String(text).split("`").forEach((part, i) => {
      if (i % 2) { const c = document.createElement("code"); c.textContent = part; parent.appendChild(c); }
      else if (part) parent.appendChild(document.createTextNode(part));
    });
  }
  function showError(detail, hint, problems) {
    errorBox.hidden = false;
    errorBox.textContent = "";
    const box = document.createElement("div");
    box.className = "notice error";
    box.setAttribute("role", "alert");
    const b = document.createElement("b");
    coded(b, detail);
    box.appendChild(b);
    if (hint) { box.appendChild(document.createElement("br")); coded(box, hint); }
    errorBox.appendChild(box);
    if (problems && problems.length) {
      const ul = document.createElement("ul");
      ul.className = "problems";
      problems.forEach(p => {
        const li = document.createElement("li");
        li.className = p.severity || "error";
        const sev = document.createElement("b");
        sev.textContent = (p.severity || "error") + " ";
        li.appendChild(sev);
        const where = [p.file, p.record != null ? "record " + p.record : null, p.field].filter(Boolean).join(", ");
        coded(li, (where ? where + ": " : "") + p.message + (p.expected ? ` (expected ${p.expected})` : ""));
        ul.appendChild(li);
      });
      errorBox.appendChild(ul);
    }
    progress.hidden = true;
    button.disabled = false;
  }

  form.addEventListener("submit", e => {
    e.preventDefault();
    const file = fileInput.files[0];
    if (!file) { showError("Choose a zip file first."); return; }
    if (file.size > max) { showError(`The file is ${mb(file.size)}; at most ${mb(max)} can be uploaded.`); return; }
    errorBox.hidden = true;
    button.disabled = true;
    progress.hidden = false;
    bar.style.width = "0%";
    text.textContent = "Starting the upload…";
    const data = new FormData();
    data.append("name", document.getElementById("name").value);
    data.append("time_budget", document.getElementById("time_budget").value);
    data.append("label", document.getElementById("label").value);
    data.append("file", file);
    const xhr = new XMLHttpRequest();
    xhr.open("POST", "/api/v1/jobs");
    xhr.setRequestHeader("X-CSRF-Token", form.dataset.csrf);
    xhr.setRequestHeader("Accept", "application/json");
    const started = Date.now();
    xhr.upload.addEventListener("progress", ev => {
      if (!ev.lengthComputable) return;
      const pct = Math.round((100 * ev.loaded) / ev.total);
      bar.style.width = pct + "%";
      const rate = ev.loaded / Math.max(0.001, (Date.now() - started) / 1000);
      text.textContent = `Uploading: ${pct}% (${mb(ev.loaded)} of ${mb(ev.total)}, ${mb(rate)}/s)`;
    });
    xhr.upload.addEventListener("load", () => {
      bar.style.width = "100%";
      text.textContent = "Uploaded. Checking the archive and validating the dataset…";
    });
    xhr.addEventListener("load", () => {
      let body = {};
      try { body = JSON.parse(xhr.responseText); } catch (err) { body = { detail: "The server answered unexpectedly (" + xhr.status + ")." }; }
      if (xhr.status === 201) {
        text.textContent = "Queued. Opening the job…";
        window.location.assign(body.page);
      } else {
        showError(body.detail || "The upload failed.", body.hint, body.problems);
      }
    });
    xhr.addEventListener("error", () => showError("The connection was lost during the upload.", "Check your connection and try again."));
    xhr.send(data);
  });
})();
