/**
 * GET /workers (and Flower's GET /api/workers): the live workers, Python and Node alike, found with
 * Celery's remote control — a `ping`, `inspect registered` and `inspect active` broadcast on the pidbox,
 * replies gathered for `timeout` seconds.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { Broker } from '../../brokers/broker.ts';
import { controlRequest, PIDBOX_EXCHANGE, REPLY_EXCHANGE } from '../../protocol/control.ts';
import type { Json } from '../../protocol/types.ts';
import { errorResponses } from '../schemas.ts';

type Replies = Record<string, Record<string, Json>>;

/** method → hostname → reply */
export async function inspectWorkers(broker: Broker, methods: readonly string[], timeoutSec: number): Promise<Replies> {
  const oid = randomUUID();
  const tickets = new Map<string, string>(methods.map((m) => [randomUUID(), m]));
  const messages = await broker.gatherReplies(REPLY_EXCHANGE, oid, `${oid}.reply.celery.pidbox`, timeoutSec * 1000, async () => {
    for (const [ticket, method] of tickets) {
      await broker.broadcast(controlRequest(method, method === 'active' ? { safe: null } : {}, oid, ticket, new Date(), timeoutSec), PIDBOX_EXCHANGE);
    }
  });
  const out: Replies = Object.fromEntries(methods.map((m) => [m, {}]));
  for (const message of messages) {
    const method = tickets.get(String(message.headers['ticket']));
    if (!method) continue;
    try {
      Object.assign(out[method] as object, JSON.parse(message.body) as Record<string, Json>);
    } catch { /* not a reply */ }
  }
  return out;
}

const timeoutQuery = {
  type: 'object', additionalProperties: false,
  properties: { timeout: { type: 'number', minimum: 0.1, maximum: 10, description: 'Seconds to gather replies (default 1)' } },
} as const;

export const workersRoutes: FastifyPluginAsync<{ broker: Broker }> = async (app, { broker }) => {
  app.get<{ Querystring: { timeout?: number } }>('/workers', {
    schema: {
      summary: 'Live workers (remote-control ping)', tags: ['operations'],
      querystring: timeoutQuery,
      response: {
        200: {
          type: 'object',
          properties: {
            workers: {
              type: 'array',
              items: {
                type: 'object',
                properties: { hostname: { type: 'string' }, ok: { type: 'boolean' }, registered: { type: 'array', items: { type: 'string' } }, active: { type: 'integer' } },
              },
            },
          },
        },
        ...errorResponses(400, 503),
      },
    },
  }, async (request) => {
    const replies = await inspectWorkers(broker, ['ping', 'registered', 'active'], request.query.timeout ?? 1);
    const hostnames = [...new Set([...Object.keys(replies['ping'] ?? {}), ...Object.keys(replies['registered'] ?? {})])].sort();
    return {
      workers: hostnames.map((hostname) => ({
        hostname,
        ok: (replies['ping']?.[hostname] as { ok?: string } | undefined)?.ok === 'pong',
        registered: (replies['registered']?.[hostname] as string[] | undefined) ?? [],
        active: ((replies['active']?.[hostname] as unknown[] | undefined) ?? []).length,
      })),
    };
  });

  app.get<{ Querystring: { timeout?: number } }>('/api/workers', {
    schema: {
      summary: "Flower: workers and their inspect data ({hostname: {registered, active, stats, …}})", tags: ['flower'],
      querystring: timeoutQuery,
      response: { 200: { type: 'object', additionalProperties: true }, ...errorResponses(400, 503) },
    },
  }, async (request) => {
    const methods = ['registered', 'active', 'reserved', 'scheduled', 'stats', 'revoked'];
    const replies = await inspectWorkers(broker, methods, request.query.timeout ?? 1);
    const out: Record<string, Record<string, Json>> = {};
    for (const method of methods) {
      for (const [hostname, reply] of Object.entries(replies[method] ?? {})) (out[hostname] ??= {})[method] = reply;
    }
    return out;
  });
};
