// Reading /admin/metrics (Prometheus text) into what the overview charts:
// rates from counter deltas between two scrapes, and latency percentiles
// estimated from the histogram's bucket deltas. Pure functions, no DOM, so
// tests/browser/metrics.test.mjs checks them under Node as well.
"use strict";
(function (root) {
  // Parses the text format into [{name, labels, value}]; comments and
  // malformed lines are skipped.
  function parse(text) {
    var samples = [];
    text.split("\n").forEach(function (line) {
      line = line.trim();
      if (!line || line[0] === "#") return;
      var match = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)/.exec(line);
      if (!match) return;
      var labels = {};
      var pairs = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      var pair;
      while ((pair = pairs.exec(match[3] || "")) !== null) {
        labels[pair[1]] = pair[2].replace(/\\(.)/g, function (_, c) { return c === "n" ? "\n" : c; });
      }
      var value = Number(match[4]);
      if (!Number.isNaN(value)) samples.push({ name: match[1], labels: labels, value: value });
    });
    return samples;
  }

  // Sums `name` grouped by the value of `label` (all samples when absent).
  function sumBy(samples, name, label) {
    var sums = {};
    samples.forEach(function (s) {
      if (s.name !== name) return;
      var key = label ? (s.labels[label] || "") : "";
      sums[key] = (sums[key] || 0) + s.value;
    });
    return sums;
  }

  // The latency histogram's cumulative buckets as [[upperBound, count]],
  // ordered by bound (+Inf last).
  function buckets(samples) {
    var list = samples
      .filter(function (s) { return s.name === "portico_request_duration_seconds_bucket"; })
      .map(function (s) {
        var le = s.labels.le === "+Inf" ? Infinity : Number(s.labels.le);
        return [le, s.value];
      })
      .filter(function (b) { return !Number.isNaN(b[0]); });
    list.sort(function (a, b) { return a[0] - b[0]; });
    return list;
  }

  // The q-quantile (0..1) of the observations counted in `cumulative`
  // ([[bound, count]] as above), by linear interpolation inside the bucket
  // it falls in, as Prometheus' histogram_quantile does; null without
  // observations. A quantile in the +Inf bucket is the last finite bound.
  function quantile(q, cumulative) {
    if (!cumulative.length) return null;
    var total = cumulative[cumulative.length - 1][1];
    if (!(total > 0)) return null;
    var rank = q * total;
    var lowerBound = 0;
    var lowerCount = 0;
    for (var i = 0; i < cumulative.length; i++) {
      var bound = cumulative[i][0];
      var count = cumulative[i][1];
      if (count >= rank) {
        if (bound === Infinity) return lowerBound;
        if (count === lowerCount) return bound;
        return lowerBound + (bound - lowerBound) * ((rank - lowerCount) / (count - lowerCount));
      }
      lowerBound = bound;
      lowerCount = count;
    }
    return lowerBound;
  }

  // Per-second rates of `after - before` over `seconds`, key by key; a
  // counter that went down (the store was reset) counts from zero.
  function rates(before, after, seconds) {
    var out = {};
    Object.keys(after).forEach(function (key) {
      var delta = after[key] - (before[key] || 0);
      if (delta < 0) delta = after[key];
      out[key] = seconds > 0 ? delta / seconds : 0;
    });
    return out;
  }

  // What one chart point needs from two scrapes (`before`, `after`:
  // {at: ms, samples}): request rates by status class, p50/p90/p99 latency
  // in ms of the requests between them, rejection and cache-result rates.
  function step(before, after) {
    var seconds = (after.at - before.at) / 1000;
    var latency = {};
    var a = buckets(after.samples);
    var b = buckets(before.samples);
    var delta = a.map(function (bucket, i) {
      var previous = b[i] && b[i][0] === bucket[0] ? b[i][1] : 0;
      return [bucket[0], Math.max(0, bucket[1] - previous)];
    });
    [["p50", 0.5], ["p90", 0.9], ["p99", 0.99]].forEach(function (p) {
      var seconds_ = quantile(p[1], delta);
      latency[p[0]] = seconds_ === null ? null : seconds_ * 1000;
    });
    return {
      at: after.at,
      status: rates(
        sumBy(before.samples, "portico_requests_total", "status"),
        sumBy(after.samples, "portico_requests_total", "status"),
        seconds
      ),
      latency: latency,
      rejections: rates(
        sumBy(before.samples, "portico_rate_limit_rejections_total"),
        sumBy(after.samples, "portico_rate_limit_rejections_total"),
        seconds
      )[""] || 0,
      cache: rates(
        sumBy(before.samples, "portico_cache_responses_total", "result"),
        sumBy(after.samples, "portico_cache_responses_total", "result"),
        seconds
      )
    };
  }

  var api = { parse: parse, sumBy: sumBy, buckets: buckets, quantile: quantile, rates: rates, step: step };
  if (typeof module === "object" && module.exports) {
    module.exports = api;
  } else {
    root.porticoMetrics = api;
  }
})(typeof window === "undefined" ? globalThis : window);
