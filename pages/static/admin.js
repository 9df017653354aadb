// /admin/: the operator console. Each section lives in static/console/;
// this starts them and marks the page ready once every list has loaded.
"use strict";
(function () {
  var parts = window.porticoConsole;
  Promise.all([
    parts.overview.start(),
    parts.flags.load(),
    parts.users.load(),
    parts.upstreams.load(),
    parts.assets.load()
  ]).then(function () {
    document.body.dataset.state = "ready";
  }, function (err) {
    document.getElementById("overview-error").textContent = "Could not load the console: " + err.message;
  });
})();
