// Curation queue keyboard: j/k (or arrows) move through the queue and open the note beside it;
// a approve, r reject, e needs edit, s submit, o reopen. An action that needs a reason focuses the reason box
// first; pressing the key again (or Enter in the box, then the button) sends it.
(function () {
  "use strict";
  // By physical key (event.code), so the keys work with any keyboard layout (Russian ЙЦУКЕН included).
  const keys = { KeyA: "approve", KeyR: "reject", KeyE: "request_edit", KeyS: "submit", KeyO: "reopen" };
  let current = -1;

  function rows() { return Array.from(document.querySelectorAll("#queue .queue-row")); }

  function select(index) {
    const all = rows();
    if (!all.length) return;
    current = Math.max(0, Math.min(index, all.length - 1));
    all.forEach((row, i) => row.classList.toggle("selected", i === current));
    all[current].scrollIntoView({ block: "nearest" });
    htmx.trigger(all[current], "select-note");
  }

  function act(action) {
    const button = document.querySelector(`#note-pane [data-action="${action}"]`);
    if (!button) {  // the note's state does not allow it: say why (the pane carries the refusal in words)
      const refusal = document.querySelector(`#note-pane [data-refusal="${action}"]`);
      const message = document.querySelector("#note-pane [data-testid=key-message]");
      if (refusal && message) { message.textContent = refusal.textContent; message.hidden = false; }
      return;
    }
    const reason = document.querySelector("#note-pane [data-testid=reason]");
    if (button.dataset.reasonRequired === "1" && reason && !reason.value.trim()) {
      reason.focus();
      reason.dataset.pending = action;
      return;
    }
    button.click();
  }

  document.addEventListener("keydown", (event) => {
    const target = event.target;
    if (target.matches("textarea[data-testid=reason]") && event.key === "Enter" && !event.shiftKey
        && target.dataset.pending) {
      event.preventDefault();
      const button = document.querySelector(`#note-pane [data-action="${target.dataset.pending}"]`);
      if (button && target.value.trim()) button.click();
      return;
    }
    if (event.altKey || event.ctrlKey || event.metaKey || target.closest("input, textarea, select, [contenteditable]")) {
      return;
    }
    if (event.code === "KeyJ" || event.key === "ArrowDown") { event.preventDefault(); select(current + 1); }
    else if (event.code === "KeyK" || event.key === "ArrowUp") { event.preventDefault(); select(current - 1); }
    else if (keys[event.code]) { event.preventDefault(); act(keys[event.code]); }
  });

  // After an action the queue reloads. When the note shown left the queue (approved, rejected...), the next
  // note has moved up into its place: "j" opens it.
  let selectedId = null;
  document.body.addEventListener("htmx:afterSwap", (event) => {
    const all = rows();
    if (event.detail.target.id === "note-pane") {
      const pane = event.detail.target.querySelector("[data-testid=curation-note]");
      selectedId = pane ? pane.dataset.note : null;
    }
    const at = all.findIndex((row) => row.dataset.note === selectedId);
    if (event.detail.target.id === "queue" && at < 0 && current >= 0) current -= 1;
    if (at >= 0) current = at;
    all.forEach((row, i) => row.classList.toggle("selected", i === at));
  });
})();
