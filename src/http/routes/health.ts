/**
 * GET /healthz (the process answers) and GET /readyz (broker and backend reachable).
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Broker } from '../../brokers/broker.ts';
import type { ResultBackend } from '../../backends/backend.ts';
import { errorBody } from '../plugins/errors.ts';

const CHECK_TIMEOUT_MS = 2000;

async function check(probe: () => Promise<void>): Promise<string> {
  let timer: NodeJS.Timeout | undefined;
  try {
    await Promise.race([
      probe(),
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no answer within ${CHECK_TIMEOUT_MS} ms`)), CHECK_TIMEOUT_MS); }),
    ]);
    return 'ok';
  } catch (err) {
    return err instanceof Error ? err.message : String(err);
  } finally {
    clearTimeout(timer);
  }
}

const checksSchema = {
  type: 'object',
  properties: { broker: { type: 'string' }, backend: { type: 'string' } },
} as const;

export const healthRoutes: FastifyPluginAsync<{ broker: Broker; backend: ResultBackend }> = async (app, { broker, backend }) => {
  app.get('/healthz', {
    schema: {
      summary: 'Liveness', tags: ['health'],
      response: { 200: { type: 'object', properties: { status: { type: 'string', enum: ['ok'] } } } },
    },
  }, async () => ({ status: 'ok' }));

  app.get('/readyz', {
    schema: {
      summary: 'Readiness: broker and result backend reachable', tags: ['health'],
      response: {
        200: { type: 'object', properties: { status: { type: 'string', enum: ['ready'] }, checks: checksSchema } },
        503: {
          type: 'object',
          description: 'Not ready: code GW_ERR_BROKER_UNAVAILABLE or GW_ERR_BACKEND_UNAVAILABLE, with `checks`; or GW_ERR_SHUTTING_DOWN while the gateway closes',
          properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' }, checks: checksSchema },
        },
      },
    },
  }, async (_request, reply) => {
    const [brokerState, backendState] = await Promise.all([check(() => broker.ping()), check(() => backend.ping())]);
    const checks = { broker: brokerState, backend: backendState };
    if (brokerState === 'ok' && backendState === 'ok') return { status: 'ready', checks };
    const code = brokerState !== 'ok' ? 'GW_ERR_BROKER_UNAVAILABLE' : 'GW_ERR_BACKEND_UNAVAILABLE';
    return reply.code(503).send({ ...errorBody(code, `not ready: broker ${brokerState}; backend ${backendState}`), checks });
  });
};
