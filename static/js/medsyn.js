// Small behaviours any page can use through data attributes (the Content-Security-Policy forbids inline scripts and
// on* handler attributes, so behaviour lives here).
//
// <form data-confirm="Question?"> asks the question before the form is sent, and sends nothing unless confirmed: the
//   policy-compatible form of onsubmit="return confirm(...)". For htmx requests use hx-confirm instead.
(function () {
  "use strict";
  document.addEventListener("submit", function (event) {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
})();
