// My jobs: the compare button is useful only with two or more jobs ticked.
"use strict";
(function () {
  const form = document.getElementById("compare-form");
  if (!form) return;
  const button = document.getElementById("compare-button");
  const boxes = Array.from(form.querySelectorAll("input[name=ids]"));
  function update() {
    const n = boxes.filter(b => b.checked).length;
    button.disabled = n < 2;
    button.textContent = n >= 2 ? `Compare ${n} jobs` : "Compare selected";
  }
  boxes.forEach(b => b.addEventListener("change", update));
  update();
})();
