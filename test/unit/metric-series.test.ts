/**
 * The hot-path metric series (src/http/metric-series.ts) must expose exactly what prom-client's own
 * Counter and Histogram would for the same events: the same /metrics text, scrape after scrape.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Counter, Histogram, Registry } from 'prom-client';
import { BatchedCounter, BucketHistogram } from '../../src/http/metric-series.ts';

const BUCKETS = [0.0005, 0.001, 0.01, 0.1, 1];

describe('metric series', () => {
  it('BucketHistogram: the same exposition as a prom-client Histogram, per series, edges and +Inf included', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const h = new BucketHistogram({ name: 'h_seconds', help: 'durations', labelNames: ['route', 'method'] as const, buckets: BUCKETS, registers: [ours] });
    const p = new Histogram({ name: 'h_seconds', help: 'durations', labelNames: ['route', 'method'] as const, buckets: BUCKETS, registers: [theirs] });
    const b = h.series('/b', 'POST'); // series are listed in the order they were made, as prom-client lists them by first use
    const a = h.series('/a', 'GET');
    // on a bound, between bounds, below the first, past the last
    const values = [0.0005, 0.0004, 0.001, 0.002, 0.1, 0.7, 1, 1.5, 30, 0];
    values.forEach((v, i) => {
      (i % 2 ? a : b).observe(v);
      p.observe({ route: i % 2 ? '/a' : '/b', method: i % 2 ? 'GET' : 'POST' }, v);
    });
    h.observe({ route: '/a', method: 'GET' }, 0.003); // the cold-path form
    p.observe({ route: '/a', method: 'GET' }, 0.003);
    const text = await ours.metrics();
    assert.equal(text, await theirs.metrics());
    assert.match(text, /h_seconds_bucket\{le="0\.001",route="\/a",method="GET"\} 2\n/);
    assert.match(text, /h_seconds_count\{route="\/b",method="POST"\} 5\n/);
    assert.deepEqual(await ours.getMetricsAsJSON(), JSON.parse(JSON.stringify(await theirs.getMetricsAsJSON()), (k, v) => (k === 'exemplar' ? undefined : v)));
    // a reset zeroes the series; the ones handed out keep counting
    ours.resetMetrics();
    a.observe(0.002);
    assert.match(await ours.metrics(), /h_seconds_count\{route="\/a",method="GET"\} 1\n/);
    assert.match(await ours.metrics(), /h_seconds_count\{route="\/b",method="POST"\} 0\n/);
  });

  it('BatchedCounter: increments of a series reach the Counter at each scrape, exactly once', async () => {
    const ours = new Registry();
    const theirs = new Registry();
    const c = new BatchedCounter({ name: 'c_total', help: 'count', labelNames: ['route', 'status'] as const, registers: [ours] });
    const p = new Counter({ name: 'c_total', help: 'count', labelNames: ['route', 'status'] as const, registers: [theirs] });
    const ok = c.series('/a', '200');
    const again = c.series('/a', '200'); // the same series
    for (let i = 0; i < 3; i++) { ok.inc(); p.inc({ route: '/a', status: '200' }); }
    again.inc(); p.inc({ route: '/a', status: '200' });
    c.series('/b', '404').inc(); p.inc({ route: '/b', status: '404' });
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.match(await ours.metrics(), /c_total\{route="\/a",status="200"\} 4\n/);
    assert.equal(await ours.metrics(), await theirs.metrics(), 'a second scrape adds nothing twice');
    ok.inc(); p.inc({ route: '/a', status: '200' });
    c.inc({ route: '/c', status: '500' }, 2); p.inc({ route: '/c', status: '500' }, 2); // the Counter's own inc still works
    assert.equal(await ours.metrics(), await theirs.metrics());
    assert.match(await ours.metrics(), /c_total\{route="\/a",status="200"\} 5\n/);
  });
});
