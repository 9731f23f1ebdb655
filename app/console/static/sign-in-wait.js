// The sign-in page waits for the code's approval: it asks every 2 s and moves on
// once approved (or shows the expiry). Without script, the page's link does the same.
(function () {
  "use strict";
  var waiting = document.querySelector("[data-status-url]");
  if (!waiting) {
    return;
  }
  function poll() {
    fetch(waiting.dataset.statusUrl, { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.json() : { state: "pending" };
      })
      .then(function (body) {
        if (body.state === "pending") {
          window.setTimeout(poll, 2000);
        } else {
          window.location.assign(waiting.dataset.next);
        }
      })
      .catch(function () {
        window.setTimeout(poll, 2000);
      });
  }
  window.setTimeout(poll, 2000);
})();
