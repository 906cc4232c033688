/**
 * GET /queues — messages waiting in each known queue (the default queue and every queue this gateway
 * published to; `?names=a,b` asks for others).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Broker } from '../../brokers/broker.ts';
import type { Producer } from '../../producer.ts';
import { errorResponses } from '../schemas.ts';

export const queuesRoutes: FastifyPluginAsync<{ broker: Broker; producer: Producer }> = async (app, { broker, producer }) => {
  app.get<{ Querystring: { names?: string } }>('/queues', {
    schema: {
      summary: 'Queue depths', tags: ['operations'],
      description: 'Messages waiting (not yet delivered to a worker) per queue; on Redis all priority levels are summed.',
      querystring: { type: 'object', additionalProperties: false, properties: { names: { type: 'string', pattern: '^[A-Za-z0-9_.:@-]{1,200}(,[A-Za-z0-9_.:@-]{1,200}){0,99}$', description: 'Comma-separated queue names' } } },
      response: {
        200: { type: 'object', properties: { queues: { type: 'array', items: { type: 'object', required: ['name', 'messages'], properties: { name: { type: 'string' }, messages: { type: 'integer' } } } } } },
        ...errorResponses(400, 503),
      },
    },
  }, async (request) => {
    const names = new Set(producer.queues);
    for (const name of request.query.names?.split(',') ?? []) names.add(name);
    const sorted = [...names].sort();
    const lengths = await Promise.all(sorted.map((name) => broker.queueLength(name)));
    return { queues: sorted.map((name, i) => ({ name, messages: lengths[i] ?? 0 })) };
  });
};
