/**
 * GET /metrics in Prometheus' text format, and the hooks that count every request.
 */
import type { FastifyPluginAsync, onResponseHookHandler } from 'fastify';
import fp from 'fastify-plugin';
import type { GatewayMetrics } from '../metrics.ts';
import type { CounterSeries, HistogramSeries } from '../metric-series.ts';

const SUBMIT_OUTCOMES = ['accepted', 'refused', 'unavailable'] as const;

const plugin: FastifyPluginAsync<{ metrics: GatewayMetrics }> = async (app, { metrics }) => {
  /** Counting for one route and method: its series are looked up once per status, not per request. */
  const countFor = (route: string, method: string): ((status: number, elapsedMs: number) => void) => {
    const byStatus = new Map<number, CounterSeries>();
    let duration: HistogramSeries | undefined; // made on first use: routes never called are not listed
    return (status, elapsedMs) => {
      let counter = byStatus.get(status);
      if (!counter) byStatus.set(status, counter = metrics.httpRequests.series(route, method, String(status)));
      counter.inc();
      (duration ??= metrics.httpDuration.series(route)).observe(elapsedMs / 1000);
    };
  };

  /** POST /tasks/:name: submissions by task name (bounded, see taskLabel) and outcome */
  const submissions = new Map<string, CounterSeries[]>();
  const countSubmission = (name: string, status: number): void => {
    const task = status === 202 ? metrics.taskLabel(name) : 'refused';
    let series = submissions.get(task);
    if (!series) submissions.set(task, series = SUBMIT_OUTCOMES.map((outcome) => metrics.submissions.series(task, outcome)));
    series[status === 202 ? 0 : status >= 500 ? 2 : 1]!.inc();
  };

  // Each route gets its own onResponse hook, made when the route is added (callback-style: no promise
  // per request), so a request costs no route lookup or label hashing.
  app.addHook('onRoute', (route) => {
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    for (const method of methods) {
      const count = countFor(route.url, method);
      const submit = route.url === '/tasks/:name' && method === 'POST';
      const hook: onResponseHookHandler = (request, reply, done) => {
        if (request.method === method) {
          count(reply.statusCode, reply.elapsedTime);
          if (submit) countSubmission((request.params as { name?: string }).name ?? '', reply.statusCode);
        }
        done();
      };
      const existing = route.onResponse;
      route.onResponse = existing === undefined ? [hook] : [...(Array.isArray(existing) ? existing : [existing]), hook];
    }
  });
  // requests no route matched (404s of the not-found handler)
  const unmatched = new Map<string, (status: number, elapsedMs: number) => void>();
  app.addHook('onResponse', (request, reply, done) => {
    if (request.is404) {
      let count = unmatched.get(request.method);
      if (!count) unmatched.set(request.method, count = countFor('unmatched', request.method));
      count(reply.statusCode, reply.elapsedTime);
    }
    done();
  });

  app.get('/metrics', {
    schema: {
      summary: 'Prometheus metrics', tags: ['operations'],
      produces: ['text/plain'],
      response: { 200: { type: 'string', description: 'Prometheus text exposition format' } },
    },
  }, async (_request, reply) => {
    const text = await metrics.registry.metrics();
    return reply.type(metrics.registry.contentType).send(text);
  });
};

export const metricsPlugin = fp(plugin, { name: 'celery-gateway-metrics' });
