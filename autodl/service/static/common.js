// Small behaviours shared by pages: confirmation on dangerous forms, bar widths.
"use strict";
document.querySelectorAll("form[data-confirm]").forEach(form => {
  form.addEventListener("submit", e => { if (!window.confirm(form.dataset.confirm)) e.preventDefault(); });
});
document.querySelectorAll("[data-fill]").forEach(bar => { bar.style.width = Math.min(100, parseFloat(bar.dataset.fill) || 0) + "%"; });
