// The overview: live charts of traffic, latency, rate-limit rejections and
// cache results, from /admin/metrics scraped every few seconds. Rates are
// counter deltas between scrapes, computed here (metrics.js); the last ten
// minutes are kept. `?refresh=<seconds>` on the page changes the interval.
"use strict";
(function () {
  var metrics = window.porticoMetrics;
  var problem = window.portico.problem;
  var $ = function (id) { return document.getElementById(id); };

  var params = new URLSearchParams(window.location.search);
  var refreshSeconds = Math.min(60, Math.max(1, Number(params.get("refresh")) || 5));
  var keepSeconds = 600;

  // Each chart: its series (label, how to read a point, colour).
  var charts = {
    requests: {
      title: "Requests per second by status",
      unit: "req/s",
      series: [
        ["2xx", function (p) { return p.status["2xx"] || 0; }, "#2da44e"],
        ["3xx", function (p) { return p.status["3xx"] || 0; }, "#0969da"],
        ["4xx", function (p) { return p.status["4xx"] || 0; }, "#bf8700"],
        ["5xx", function (p) { return p.status["5xx"] || 0; }, "#cf222e"]
      ]
    },
    latency: {
      title: "Latency (estimated from the histogram)",
      unit: "ms",
      series: [
        ["p50", function (p) { return p.latency.p50; }, "#2da44e"],
        ["p90", function (p) { return p.latency.p90; }, "#bf8700"],
        ["p99", function (p) { return p.latency.p99; }, "#cf222e"]
      ]
    },
    rejections: {
      title: "Rate-limit rejections per second",
      unit: "req/s",
      series: [["429", function (p) { return p.rejections; }, "#cf222e"]]
    },
    cache: {
      title: "Edge cache results per second",
      unit: "req/s",
      series: [
        ["hit", function (p) { return p.cache.hit || 0; }, "#2da44e"],
        ["stale", function (p) { return p.cache.stale || 0; }, "#bf8700"],
        ["miss", function (p) { return p.cache.miss || 0; }, "#cf222e"]
      ]
    }
  };

  var points = [];
  var previous = null;

  function width(element) {
    return Math.max(240, Math.floor(element.clientWidth || 320));
  }

  function create() {
    Object.keys(charts).forEach(function (name) {
      var chart = charts[name];
      var holder = $("chart-" + name);
      var options = {
        title: chart.title,
        width: width(holder),
        height: 200,
        scales: { x: { time: true } },
        axes: [{}, { label: chart.unit, size: 56 }],
        series: [{}].concat(chart.series.map(function (s) {
          return { label: s[0], stroke: s[2], width: 2, spanGaps: false };
        }))
      };
      chart.plot = new window.uPlot(options, data(chart), holder);
    });
    window.addEventListener("resize", function () {
      Object.keys(charts).forEach(function (name) {
        var chart = charts[name];
        chart.plot.setSize({ width: width($("chart-" + name)), height: 200 });
      });
    });
  }

  // uPlot's columns: times in seconds, then one array per series.
  function data(chart) {
    var columns = [points.map(function (p) { return p.at / 1000; })];
    chart.series.forEach(function (s) {
      columns.push(points.map(function (p) {
        var value = s[1](p);
        return value === null || value === undefined ? null : Math.round(value * 1000) / 1000;
      }));
    });
    return columns;
  }

  function summary(point) {
    var total = 0;
    Object.keys(point.status).forEach(function (k) { total += point.status[k]; });
    var errors = point.status["5xx"] || 0;
    var p99 = point.latency.p99;
    $("overview-summary").textContent =
      total.toFixed(1) + " req/s · " +
      (total > 0 ? ((errors / total) * 100).toFixed(1) : "0.0") + "% 5xx · p99 " +
      (p99 === null ? "–" : p99.toFixed(1) + " ms") + " · every " + refreshSeconds + " s";
  }

  async function scrape() {
    var response;
    try {
      response = await fetch("/admin/metrics", { credentials: "same-origin", cache: "no-store" });
    } catch (err) {
      $("overview-error").textContent = "Could not read the metrics: " + err.message;
      return;
    }
    if (response.status === 401) {
      window.portico.toLogin();
      return;
    }
    var text = await response.text();
    if (!response.ok) {
      var reply = { status: response.status, data: null };
      try { reply.data = JSON.parse(text); } catch (e) { /* not a problem body */ }
      $("overview-error").textContent = "Could not read the metrics: " + problem(reply);
      return;
    }
    $("overview-error").textContent = "";
    var now = { at: Date.now(), samples: metrics.parse(text) };
    if (previous) {
      var point = metrics.step(previous, now);
      points.push(point);
      while (points.length && points[0].at < now.at - keepSeconds * 1000) points.shift();
      Object.keys(charts).forEach(function (name) {
        charts[name].plot.setData(data(charts[name]));
      });
      summary(point);
      $("overview").dataset.points = String(points.length);
    }
    previous = now;
  }

  window.porticoConsole = window.porticoConsole || {};
  window.porticoConsole.overview = {
    charts: charts,
    points: points,
    start: async function () {
      create();
      await scrape();
      setInterval(scrape, refreshSeconds * 1000);
    }
  };
})();
