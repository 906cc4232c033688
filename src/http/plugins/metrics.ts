/**
 * GET /metrics in Prometheus' text format, and the hooks that count every request.
 */
import type { FastifyPluginAsync } from 'fastify';
import fp from 'fastify-plugin';
import type { GatewayMetrics } from '../metrics.ts';

const plugin: FastifyPluginAsync<{ metrics: GatewayMetrics }> = async (app, { metrics }) => {
  app.addHook('onResponse', async (request, reply) => {
    const route = request.routeOptions.url ?? 'unmatched';
    const status = reply.statusCode;
    metrics.httpRequests.inc({ route, method: request.method, status: String(status) });
    metrics.httpDuration.observe({ route }, reply.elapsedTime / 1000);
    if (route === '/tasks/:name' && request.method === 'POST') {
      const name = (request.params as { name?: string }).name ?? '';
      const outcome = status === 202 ? 'accepted' : status >= 500 ? 'unavailable' : 'refused';
      metrics.submissions.inc({ task: status === 202 ? metrics.taskLabel(name) : 'refused', outcome });
    }
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
