// certops status page: instant filtering. The page works without this
// script (the filters are a plain GET form the server applies); the script
// only applies them as they change and keeps the address in step.
"use strict";
(function () {
  const form = document.getElementById("filters");
  const items = document.querySelectorAll("[data-cert]");
  const count = document.getElementById("shown-count");
  const none = document.getElementById("none-shown");

  function apply() {
    const state = form.elements.state.value;
    const issuer = form.elements.issuer.value;
    const shown = new Set();
    for (const el of items) {
      const match = (!state || el.dataset.state === state) && (!issuer || el.dataset.issuer === issuer);
      // toggleAttribute works on SVG elements too (they have no .hidden).
      el.toggleAttribute("hidden", !match);
      if (match) {
        shown.add(el.dataset.cert);
      }
    }
    count.textContent = String(shown.size);
    none.toggleAttribute("hidden", shown.size > 0);
    const q = new URLSearchParams();
    if (state) q.set("state", state);
    if (issuer) q.set("issuer", issuer);
    const qs = q.toString();
    history.replaceState(null, "", qs ? "?" + qs : location.pathname);
  }

  form.addEventListener("change", apply);
  form.addEventListener("submit", function (ev) {
    ev.preventDefault();
    apply();
  });
  form.querySelector("button[type=submit]").hidden = true;
  apply();
  document.body.dataset.ready = "true";
})();
