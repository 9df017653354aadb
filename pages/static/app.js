// /app/: who is signed in, their new-checkout variant and every flag.
"use strict";
(function () {
  var api = window.portico.api;
  var cell = window.portico.cell;
  var status = document.getElementById("status");

  function show(value) {
    return value === undefined || value === null ? "—" : JSON.stringify(value);
  }

  async function load() {
    var user = await api("GET", "/api/user");
    if (!user.ok) {
      status.textContent = "Could not load your profile: " + window.portico.problem(user);
      return;
    }
    document.getElementById("user").textContent = user.data.name;

    var ab = await api("GET", "/api/ab/new-checkout");
    document.getElementById("variant").textContent =
      ab.status === 404 ? "none" : ab.ok ? ab.data.variant || "none" : "unavailable";

    var config = await api("GET", "/api/config");
    var table = document.getElementById("flags");
    var body = table.tBodies[0];
    body.textContent = "";
    if (!config.ok) {
      status.textContent = "Could not load the flags: " + window.portico.problem(config);
    } else {
      var flags = config.data.flags || {};
      Object.keys(flags).sort().forEach(function (key) {
        var flag = flags[key];
        var row = window.portico.headedRow("flag", key);
        cell(row, show(flag.value), "value");
        cell(row, flag.variant || "—", "variant");
        cell(row, flag.reason || "—", "reason");
        body.appendChild(row);
      });
    }
    table.setAttribute("aria-busy", "false");
    document.body.dataset.state = "ready";
  }

  load().catch(function (err) {
    status.textContent = "Could not load the page: " + err.message;
  });
})();
