/**
 * GET /metrics in Prometheus' text format, and the hooks that count every request.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { GatewayMetrics } from '../metrics.ts';

const plugin: FastifyPluginAsync<{ metrics: GatewayMetrics }> = async (app, { metrics }) => {
  // Labelled children are looked up once per label set (prom-client hashes a label object on every
  // call), and the hook is callback-style: no promise per request on the hot path.
  const counters = new Map<string, { inc(): void }>();
  const durations = new Map<string, { observe(seconds: number): void }>();
  const submissions = new Map<string, { inc(): void }>();
  app.addHook('onResponse', (request, reply, done) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    const countKey = `${route} ${request.method} ${status}`;
    let counter = counters.get(countKey);
    if (!counter) counters.set(countKey, counter = metrics.httpRequests.labels(route, request.method, String(status)));
    counter.inc();
    let duration = durations.get(route);
    if (!duration) durations.set(route, duration = metrics.httpDuration.labels(route));
    duration.observe(reply.elapsedTime / 1000);
    if (route === '/tasks/:name' && request.method === 'POST') {
      const name = (request.params as { name?: string }).name ?? '';
      const outcome = status === 202 ? 'accepted' : status >= 500 ? 'unavailable' : 'refused';
      const task = status === 202 ? metrics.taskLabel(name) : 'refused';
      const key = `${task}\n${outcome}`;
      let submitted = submissions.get(key);
      if (!submitted) submissions.set(key, submitted = metrics.submissions.labels(task, outcome));
      submitted.inc();
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
