/**
 * buildApp() assembles the gateway; it never listens (the CLI does), so tests use inject() or a port of
 * their choosing.
 */
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from 'fastify';
import swagger from '@fastify/swagger';
import swaggerUi from '@fastify/swagger-ui';
import rateLimit from '@fastify/rate-limit';
import type { Redis } from 'ioredis';
import { Ajv, type Options as AjvOptions } from 'ajv';
import type { Logger } from 'pino';
import type { Broker } from '../brokers/broker.ts';
import type { ResultBackend } from '../backends/backend.ts';
import type { KeyRing } from '../auth/keys.ts';
import type { TaskRoute } from '../routing.ts';
import { MemoryScheduleStore, type ScheduleStore } from '../beat/store.ts';
import type { Config } from '../config.ts';
import { GatewayError } from '../errors.ts';
import { RevokedSet } from '../state/revoked.ts';
import { MemoryState, type SharedState } from '../state/shared-state.ts';
import { Producer } from '../producer.ts';
import { GatewayMetrics } from './metrics.ts';
import { authPlugin } from './plugins/auth.ts';
import { errorHandler, notFoundHandler } from './plugins/errors.ts';
import { idempotencyPlugin } from './plugins/idempotency.ts';
import { metricsPlugin } from './plugins/metrics.ts';
import { flowerRoutes } from './routes/flower.ts';
import { healthRoutes } from './routes/health.ts';
import { queuesRoutes } from './routes/queues.ts';
import { revokeRoutes } from './routes/revoke.ts';
import { workersRoutes } from './routes/workers.ts';
import { schedulesRoutes } from './routes/schedules.ts';
import { resultsRoutes } from './routes/results.ts';
import { tasksRoutes } from './routes/tasks.ts';
import { workflowsRoutes } from './routes/workflows.ts';
import type { WorkflowLimits } from '../canvas/spec.ts';
import { errorSchema } from './schemas.ts';
import { openapiInfo } from './openapi-info.ts';

export interface AppDeps {
  broker: Broker;
  backend: ResultBackend;
  config: Pick<Config, 'defaultQueue' | 'bodyLimit' | 'maxWaitSeconds' | 'rateLimitPerMinute' | 'idempotencyTtl' | 'resultExpires'> & Partial<Pick<Config, 'maxLongPolls'>>;
  logger: Logger;
  /** API keys; absent = no authentication (dev) */
  keys?: KeyRing;
  /** state shared by gateway instances (idempotency records); in-process memory by default */
  state?: SharedState;
  /** the beat schedule table behind /schedules; in-process memory by default */
  schedules?: ScheduleStore;
  /** Celery's task_routes, parsed */
  routes?: readonly TaskRoute[];
  /** this process's oid (reply_to of published tasks; the rpc:// reply queue) */
  replyTo?: string;
  /** a Redis connection for rate-limit counters shared by instances; in-process when absent */
  rateLimitRedis?: Redis;
  now?: () => Date;
  /** POST /workflows limits (defaults: 1000 nodes, 32 levels) */
  workflowLimits?: Partial<WorkflowLimits>;
}

const AJV_BASE: AjvOptions = { allErrors: false, useDefaults: true, removeAdditional: false, strict: false };

/**
 * Bodies are validated strictly (no coercion: `"args": "5"` is an error, not `["5"]`); params and
 * query strings arrive as text, so they are coerced.
 */
function validatorCompiler(): (route: { schema: object; httpPart?: string }) => (data: unknown) => boolean {
  const strict = new Ajv({ ...AJV_BASE, coerceTypes: false });
  const coercing = new Ajv({ ...AJV_BASE, coerceTypes: true });
  return ({ schema, httpPart }) => (httpPart === 'body' ? strict : coercing).compile(schema);
}

export async function buildApp(deps: AppDeps): Promise<FastifyInstance> {
  const loggerInstance: FastifyBaseLogger = deps.logger;
  const app = Fastify({
    loggerInstance,
    bodyLimit: deps.config.bodyLimit,
    return503OnClosing: true,
    forceCloseConnections: 'idle',
    requestIdHeader: 'x-request-id',
  });
  app.setValidatorCompiler(validatorCompiler());
  // JSON only: a text/plain body is a 415, not a string that fails validation
  app.removeContentTypeParser('text/plain');
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addSchema(errorSchema);

  await app.register(swagger, { openapi: openapiInfo });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  const metrics = new GatewayMetrics();
  await app.register(metricsPlugin, { metrics });
  if (deps.keys) await app.register(authPlugin, { keys: deps.keys, defaultQueue: deps.config.defaultQueue });
  const defaultLimit = deps.config.rateLimitPerMinute;
  if (defaultLimit > 0 || deps.keys?.hasRateLimits) {
    await app.register(rateLimit, {
      global: true,
      hook: 'preHandler',
      timeWindow: 60_000,
      max: (request) => request.apiKey?.rateLimit ?? (defaultLimit > 0 ? defaultLimit : 1_000_000_000),
      keyGenerator: (request) => (request.apiKey ? `key:${request.apiKey.name}` : `ip:${request.ip}`),
      allowList: (request) => ['/healthz', '/readyz'].includes(request.routeOptions.url ?? ''),
      nameSpace: 'celery-gateway-ratelimit-',
      skipOnError: true, // a Redis outage must not turn into refused submissions
      ...(deps.rateLimitRedis ? { redis: deps.rateLimitRedis } : {}),
      errorResponseBuilder: (_request, context) => new GatewayError('GW_ERR_RATE_LIMITED', `rate limit of ${context.max} requests per minute reached; retry in ${Math.ceil(context.ttl / 1000)} s`),
    });
  }
  const state = deps.state ?? new MemoryState();
  await app.register(idempotencyPlugin, { state, ttlSec: deps.config.idempotencyTtl });

  // Wake long-polls when the gateway closes, so in-flight requests finish at once with the current state.
  const shutdown = new AbortController();
  app.addHook('preClose', async () => { shutdown.abort(); });

  const producer = new Producer({
    broker: deps.broker,
    backend: deps.backend,
    defaultQueue: deps.config.defaultQueue,
    logger: deps.logger,
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.replyTo ? { replyTo: deps.replyTo } : {}),
    ...(deps.routes ? { routes: deps.routes } : {}),
    onPublished: (seconds, ok) => metrics.publishDuration.observe({ outcome: ok ? 'ok' : 'failed' }, seconds),
  });
  await app.register(tasksRoutes, { producer });
  await app.register(workflowsRoutes, { producer, backend: deps.backend, ...(deps.workflowLimits ? { limits: deps.workflowLimits } : {}) });
  await app.register(resultsRoutes, { backend: deps.backend, maxWaitSeconds: deps.config.maxWaitSeconds, shutdown: shutdown.signal, metrics, ...(deps.config.maxLongPolls ? { maxLongPolls: deps.config.maxLongPolls } : {}) });
  await app.register(healthRoutes, { broker: deps.broker, backend: deps.backend });
  await app.register(queuesRoutes, { broker: deps.broker, producer });
  await app.register(workersRoutes, { broker: deps.broker });
  await app.register(revokeRoutes, { broker: deps.broker, revoked: new RevokedSet(state, deps.config.resultExpires) });
  await app.register(schedulesRoutes, { store: deps.schedules ?? new MemoryScheduleStore(), ...(deps.now ? { now: deps.now } : {}) });
  await app.register(flowerRoutes, { producer, backend: deps.backend, maxWaitSeconds: deps.config.maxWaitSeconds, queueLength: (q) => deps.broker.queueLength(q) });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
