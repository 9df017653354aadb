// Unit tests of the console's metrics arithmetic (pages/static/console/
// metrics.js), run with `node --test` by tests/e2e/browser.rs. Expected
// values are worked out by hand from the inputs, not taken from the code.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const metrics = require("../../pages/static/console/metrics.js");

const text = (requests2xx, requests4xx, buckets, hits) => `
# HELP portico_requests_total Requests answered, by route and status class.
# TYPE portico_requests_total counter
portico_requests_total{route="/api/config",status="2xx"} ${requests2xx}
portico_requests_total{route="/healthz",status="2xx"} 1
portico_requests_total{route="none",status="4xx"} ${requests4xx}
# TYPE portico_request_duration_seconds histogram
portico_request_duration_seconds_bucket{le="0.001"} ${buckets[0]}
portico_request_duration_seconds_bucket{le="0.01"} ${buckets[1]}
portico_request_duration_seconds_bucket{le="0.1"} ${buckets[2]}
portico_request_duration_seconds_bucket{le="+Inf"} ${buckets[3]}
portico_cache_responses_total{result="hit"} ${hits}
portico_rate_limit_rejections_total{policy="strict"} 3
portico_rate_limit_rejections_total{policy="default"} 1
`;

test("parse reads names, labels and values, skipping comments", () => {
  const samples = metrics.parse(text(10, 2, [1, 2, 3, 4], 5));
  assert.equal(samples.length, 10);
  assert.deepEqual(samples[0], {
    name: "portico_requests_total",
    labels: { route: "/api/config", status: "2xx" },
    value: 10,
  });
  assert.deepEqual(metrics.sumBy(samples, "portico_requests_total", "status"), { "2xx": 11, "4xx": 2 });
  assert.deepEqual(metrics.sumBy(samples, "portico_rate_limit_rejections_total"), { "": 4 });
});

test("quantile interpolates inside the bucket, as histogram_quantile does", () => {
  // 100 observations: 50 up to 1 ms, 40 in (1, 10] ms, 10 in (10, 100] ms.
  const cumulative = [[0.001, 50], [0.01, 90], [0.1, 100], [Infinity, 100]];
  assert.equal(metrics.quantile(0.5, cumulative), 0.001);
  // rank 70: 20 of the 40 in (0.001, 0.01] -> halfway.
  assert.ok(Math.abs(metrics.quantile(0.7, cumulative) - 0.0055) < 1e-12);
  // rank 99: 9 of the 10 in (0.01, 0.1].
  assert.ok(Math.abs(metrics.quantile(0.99, cumulative) - 0.091) < 1e-12);
  assert.equal(metrics.quantile(0.5, [[0.001, 0], [Infinity, 0]]), null);
  // Everything above the last finite bound: that bound.
  assert.equal(metrics.quantile(0.5, [[0.1, 0], [Infinity, 4]]), 0.1);
});

test("step turns two scrapes into rates and the latency of the requests between them", () => {
  const before = { at: 0, samples: metrics.parse(text(10, 2, [0, 0, 0, 0], 1)) };
  // 20 more 2xx and 4 more 4xx over 2 s; the 20 new observations all
  // fall in (1, 10] ms.
  const after = { at: 2000, samples: metrics.parse(text(30, 6, [0, 20, 20, 20], 5)) };
  const point = metrics.step(before, after);
  assert.equal(point.at, 2000);
  assert.deepEqual(point.status, { "2xx": 10, "4xx": 2 });
  assert.deepEqual(point.cache, { hit: 2 });
  assert.equal(point.rejections, 0);
  assert.ok(Math.abs(point.latency.p50 - 5.5) < 1e-9, String(point.latency.p50));
  // A counter that went down (a reset) counts from zero.
  const reset = metrics.step(after, { at: 3000, samples: metrics.parse(text(4, 6, [0, 20, 20, 20], 5)) });
  assert.equal(reset.status["2xx"], 5);
});
