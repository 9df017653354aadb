// Upstreams: the API gateway's routes with their circuit breakers (state
// and failures in the current window; total failures from the metrics), and
// a purge of the edge cache by URL or by prefix.
"use strict";
(function () {
  var api = window.portico.api;
  var problem = window.portico.problem;
  var cell = window.portico.cell;
  var $ = function (id) { return document.getElementById(id); };

  function breakerText(breaker) {
    if (!breaker || !breaker.state) return "unknown";
    if (breaker.state === "open" && breaker.until) {
      return "open until " + new Date(breaker.until * 1000).toLocaleTimeString();
    }
    return breaker.state.replace("_", "-");
  }

  async function failureTotals() {
    var response = await fetch("/admin/metrics", { credentials: "same-origin", cache: "no-store" });
    if (!response.ok) return {};
    var samples = window.porticoMetrics.parse(await response.text());
    return window.porticoMetrics.sumBy(samples, "portico_upstream_failures_total", "route");
  }

  async function load() {
    var reply = await api("GET", "/admin/upstreams");
    if (!reply.ok) {
      $("upstreams-error").textContent = "Could not list the upstreams: " + problem(reply);
      return;
    }
    var totals = await failureTotals().catch(function () { return {}; });
    var routes = reply.data.routes || [];
    var body = $("upstreams").tBodies[0];
    body.textContent = "";
    routes.forEach(function (route) {
      var row = window.portico.headedRow("route", route.name);
      cell(row, route.prefix);
      cell(row, route.origin, "origin");
      cell(row, route.cache ? "yes" : "no");
      var state = cell(row, breakerText(route.breaker), "breaker");
      state.dataset.state = route.breaker && route.breaker.state ? route.breaker.state : "";
      cell(row, String(route.breaker && route.breaker.failures_in_window || 0), "failures");
      cell(row, String(totals[route.name] || 0), "failures-total");
      body.appendChild(row);
    });
    $("upstreams-empty").hidden = routes.length > 0;
    $("upstreams").setAttribute("aria-busy", "false");
  }

  $("purge-form").addEventListener("submit", async function (event) {
    event.preventDefault();
    $("purge-error").textContent = "";
    $("purge-status").textContent = "";
    var by = document.querySelector("input[name=purge-by]:checked").value;
    var target = $("purge-target").value.trim();
    var body = {};
    body[by] = target;
    var reply = await api("POST", "/admin/cache/purge", JSON.stringify(body));
    if (reply.ok) {
      $("purge-status").textContent = "Purged " + reply.data.purged + " cached " +
        (reply.data.purged === 1 ? "response" : "responses") + " for " + by + " " + target + ".";
    } else {
      $("purge-error").textContent = "Could not purge: " + problem(reply);
    }
  });

  $("upstreams-refresh").addEventListener("click", load);

  window.porticoConsole = window.porticoConsole || {};
  window.porticoConsole.upstreams = { load: load };
})();
