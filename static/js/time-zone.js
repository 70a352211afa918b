// Records the browser's time zone once, for a person who has not chosen one yet (the page's
// <body data-time-zone-url> is only there then). The server never overrides a choice with it.
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-time-zone-url");
  var zone = window.Intl && Intl.DateTimeFormat().resolvedOptions().timeZone;
  if (!url || !zone) {
    return;
  }
  var data = new URLSearchParams();
  data.append("time_zone", zone);
  data.append("detected", "1");
  data.append("csrfmiddlewaretoken", body.getAttribute("data-csrf-token"));
  fetch(url, { method: "POST", body: data, credentials: "same-origin" }).then(function (response) {
    // Reload (a page that was a GET) only when its times were shown in another zone (UTC).
    var shown = body.getAttribute("data-time-zone-shown");
    if (response.status === 204 && body.hasAttribute("data-time-zone-reload") && zone !== shown) {
      window.location.reload();
    }
  });
})();
