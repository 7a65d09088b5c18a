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
    if (event.altKey || event.ctrlKey || event.metaKey) return;  // Ctrl+R still reloads
    // By physical key (event.code): R and S work with the Russian layout too (where they type К and Ы).
    const code = event.code;
    const digit = /^(Digit|Numpad)([1-5])$/.exec(code);
    if (code === "KeyR" || code === "KeyS") {
      form.querySelector(`input[name=origin][value=${code === "KeyR" ? "real" : "synthetic"}]`).checked = true;
      event.preventDefault();
    } else if (digit && scales[active]) {
      const key = digit[2];
      scales[active].querySelector(`input[value="${key}"]`).checked = true;
      if (active < scales.length - 1) active += 1;
      highlight();
      event.preventDefault();
    } else if (code === "Enter" || code === "NumpadEnter") {
      event.preventDefault();
      form.requestSubmit();
    }
  });
})();
