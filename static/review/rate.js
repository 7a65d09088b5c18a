// Keyboard rating: R / S pick the origin, digits fill the active scale and move on, Enter submits.
(function () {
  const form = document.getElementById("rating-form");
  if (!form) return;
  const scales = Array.from(form.querySelectorAll("fieldset.scale"));
  let active = scales.findIndex((f) => !f.querySelector("input:checked"));
  if (active < 0) active = 0;
  function highlight() {
    scales.forEach((f, i) => f.classList.toggle("active", i === active));
  }
  highlight();
  scales.forEach((f, i) => f.addEventListener("click", () => { active = i; highlight(); }));
  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target && (target.tagName === "TEXTAREA" || (target.tagName === "INPUT" && target.type === "text"))) return;
    const key = event.key.toLowerCase();
    if (key === "r" || key === "s") {
      form.querySelector(`input[name=origin][value=${key === "r" ? "real" : "synthetic"}]`).checked = true;
      event.preventDefault();
    } else if (/^[1-5]$/.test(key) && scales[active]) {
      scales[active].querySelector(`input[value="${key}"]`).checked = true;
      if (active < scales.length - 1) active += 1;
      highlight();
      event.preventDefault();
    } else if (key === "enter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
