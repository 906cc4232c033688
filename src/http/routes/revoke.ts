/**
 * POST /tasks/:id/revoke — Celery's `control.revoke`: broadcast on the pidbox (Python workers obey it)
 * and record the id in the shared revoked set (celery-gateway workers check it before running, so it
 * also reaches workers that were offline and survives their restarts, until REVOKED_TTL).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Broker } from '../../brokers/broker.ts';
import { PIDBOX_EXCHANGE, revokeMessage, type RevokeOptions } from '../../protocol/control.ts';
import type { RevokedSet } from '../../state/revoked.ts';
import { bodyOrEmpty, errorResponses, TASK_ID_PATTERN } from '../schemas.ts';

export interface RevokeRoutesOptions {
  broker: Broker;
  revoked: RevokedSet;
}

const params = { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } } } as const;
const SIGNAL = '^(SIG)?[A-Z0-9]{2,10}$';

export const revokeRoutes: FastifyPluginAsync<RevokeRoutesOptions> = async (app, { broker, revoked }) => {
  const revoke = async (id: string, options: RevokeOptions): Promise<void> => {
    await revoked.add(id, options);
    await broker.broadcast(revokeMessage(id, options, new Date()), PIDBOX_EXCHANGE);
  };

  app.post<{ Params: { id: string }; Body: { terminate?: boolean; signal?: string }; Querystring: { terminate?: boolean } }>('/tasks/:id/revoke', {
    schema: {
      summary: 'Revoke a task',
      description: 'A revoked task that has not started is discarded and stored as REVOKED by the worker that receives it. With `terminate`, a running one is aborted (Python: the signal is sent to its process; Node: its AbortSignal fires).',
      tags: ['tasks'],
      params,
      querystring: { type: 'object', additionalProperties: false, properties: { terminate: { type: 'boolean' } } },
      body: {
        type: 'object', additionalProperties: false,
        properties: { terminate: { type: 'boolean' }, signal: { type: 'string', pattern: SIGNAL, description: 'default SIGTERM' } },
      },
      response: {
        202: { type: 'object', properties: { id: { type: 'string' }, revoked: { type: 'boolean' }, terminate: { type: 'boolean' }, signal: { type: 'string' } } },
        ...errorResponses(400, 503),
      },
    },
    preValidation: bodyOrEmpty,
  }, async (request, reply) => {
    const terminate = request.body?.terminate ?? request.query.terminate ?? false;
    const signal = request.body?.signal ?? 'SIGTERM';
    await revoke(request.params.id, { terminate, signal });
    return reply.code(202).send({ id: request.params.id, revoked: true, terminate, signal });
  });

  app.post<{ Params: { id: string }; Querystring: { terminate?: boolean; signal?: string } }>('/api/task/revoke/:id', {
    schema: {
      summary: 'Flower: revoke a task', tags: ['flower'], params,
      querystring: { type: 'object', properties: { terminate: { type: 'boolean' }, signal: { type: 'string', pattern: SIGNAL } } },
      response: { 200: { type: 'object', properties: { message: { type: 'string' } } }, ...errorResponses(400, 503) },
    },
  }, async (request) => {
    await revoke(request.params.id, { terminate: request.query.terminate ?? false, signal: request.query.signal ?? 'SIGTERM' });
    return { message: `Revoked '${request.params.id}'` };
  });
};
