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
import { authPlugin, PUBLIC } from './plugins/auth.ts';
import { errorBody, errorHandler, frameworkErrorHandler, notFoundHandler } from './plugins/errors.ts';
import { idempotencyPlugin } from './plugins/idempotency.ts';
import { parseJsonBody } from './plugins/json-body.ts';
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
import { errorResponses, errorSchema } from './schemas.ts';
import { openapiInfo } from './openapi-info.ts';
import { SubmitGuard } from './submit-guard.ts';
import { publishRoutes, registryOpenapi, type TaskRegistry } from './task-registry.ts';
import { requestLogger } from './request-logger.ts';

export interface AppDeps {
  broker: Broker;
  backend: ResultBackend;
  config: Pick<Config, 'defaultQueue' | 'bodyLimit' | 'maxWaitSeconds' | 'rateLimitPerMinute' | 'idempotencyTtl' | 'resultExpires'> & Partial<Pick<Config, 'maxLongPolls' | 'maxArgsBytes'>>;
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
  /** TASK_REGISTRY_FILE, loaded: argument schemas checked at submit and shown in /openapi.json */
  taskRegistry?: TaskRegistry;
  /**
   * the metrics /metrics serves; made by the caller when the adapters must count into it (broker and
   * backend reconnects), else a fresh set
   */
  metrics?: GatewayMetrics;
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
    // answered by our own onRequest check below, with the JSON error shape and a code
    return503OnClosing: false,
    forceCloseConnections: 'idle',
    requestIdHeader: 'x-request-id',
    // task names and ids may be 255 characters (the schemas' patterns); longer ones are a 400, not a 414
    routerOptions: { maxParamLength: 512 },
    // a malformed URL (`/%`) or an over-long parameter gets our JSON error shape too
    frameworkErrors: frameworkErrorHandler,
    // request.log is made on its first log line, not per request (src/http/request-logger.ts)
    childLoggerFactory: requestLogger,
  });
  app.setValidatorCompiler(validatorCompiler());
  // JSON only: a text/plain body is a 415, not a string that fails validation
  app.removeContentTypeParser('text/plain');
  // Fastify's JSON parser with messages that say what is wrong, and a depth limit (src/http/plugins/json-body.ts)
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, parseJsonBody);
  app.setErrorHandler(errorHandler);
  app.setNotFoundHandler(notFoundHandler);
  app.addSchema(errorSchema);

  // Graceful close: from app.close() on, requests that still arrive (pipelined, or on a kept-alive
  // connection that was busy when the close began) get a 503 with our JSON body and `Connection: close`;
  // requests already running finish. The last answer on each connection says `Connection: close`, so
  // clients stop reusing it and the close does not wait for keep-alive timeouts; an answer with
  // pipelined requests queued behind it on its connection leaves that to the last one (Node drops
  // whatever is queued after a `Connection: close`).
  let closing = false;
  const inFlight = new WeakMap<object, number>();
  app.addHook('preClose', async () => { closing = true; });
  app.addHook('onRequest', (request, reply, done) => {
    const socket = request.raw.socket;
    inFlight.set(socket, (inFlight.get(socket) ?? 0) + 1);
    if (!closing) { done(); return; }
    void reply.code(503).header('connection', 'close').header('retry-after', '1').type('application/json')
      .send(errorBody('GW_ERR_SHUTTING_DOWN', 'the gateway is shutting down: retry on another instance'));
  });
  app.addHook('onSend', (request, reply, payload, done) => {
    if (closing && (inFlight.get(request.raw.socket) ?? 0) <= 1) void reply.header('connection', 'close');
    done(null, payload);
  });
  app.addHook('onResponse', (request, _reply, done) => {
    const socket = request.raw.socket;
    const n = inFlight.get(socket);
    if (n !== undefined) inFlight.set(socket, n - 1);
    done();
  });
  // Statuses every route of a kind can answer, documented on each: 503 (shutting down) everywhere; 401,
  // 403, 429 where API keys and rate limits apply (all but the public routes); 413, 415 with a body.
  app.addHook('onRoute', (route) => {
    const schema = route.schema as { hide?: boolean; produces?: string[]; body?: unknown; response?: Record<string, unknown> } | undefined;
    if (!schema || schema.hide) return;
    const response = (schema.response ??= {});
    const document = (status: number): void => {
      const doc = errorResponses(status)[status] as { description: string };
      // a route that produces text (/metrics) still answers errors in JSON
      response[String(status)] ??= schema.produces ? { description: doc.description, content: { 'application/json': { schema: { $ref: 'Error#' } } } } : doc;
    };
    document(503);
    const methods = Array.isArray(route.method) ? route.method : [route.method];
    if (!methods.every((m) => PUBLIC.has(`${m} ${route.url}`))) for (const status of [401, 403, 429]) document(status);
    if (schema.body) for (const status of [413, 415]) document(status);
  });

  const registry = deps.taskRegistry;
  await app.register(swagger, { openapi: openapiInfo, ...(registry ? { transformObject: registryOpenapi(registry) as never } : {}) });
  const metrics = deps.metrics ?? new GatewayMetrics();
  if (deps.broker.kind !== 'memory') metrics.countReconnects(deps.broker.kind);
  // after swagger (which documents /metrics), before every other route (each route's counting is
  // attached when it is added)
  await app.register(metricsPlugin, { metrics });
  await app.register(swaggerUi, { routePrefix: '/docs' });
  if (deps.keys) await app.register(authPlugin, { keys: deps.keys });
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

  const published = metrics.publishDuration.series('ok');
  const publishFailed = metrics.publishDuration.series('failed');
  const producer = new Producer({
    broker: deps.broker,
    backend: deps.backend,
    defaultQueue: deps.config.defaultQueue,
    logger: deps.logger,
    ...(deps.now ? { now: deps.now } : {}),
    ...(deps.replyTo ? { replyTo: deps.replyTo } : {}),
    routes: publishRoutes(registry, deps.routes),
    onPublished: (seconds, ok) => (ok ? published : publishFailed).observe(seconds),
  });
  const guard = new SubmitGuard({ registry, ...(deps.config.maxArgsBytes !== undefined ? { maxArgsBytes: deps.config.maxArgsBytes } : {}) });
  await app.register(tasksRoutes, { producer, guard });
  await app.register(workflowsRoutes, { producer, backend: deps.backend, guard, ...(deps.workflowLimits ? { limits: deps.workflowLimits } : {}) });
  await app.register(resultsRoutes, { backend: deps.backend, maxWaitSeconds: deps.config.maxWaitSeconds, shutdown: shutdown.signal, metrics, ...(deps.config.maxLongPolls ? { maxLongPolls: deps.config.maxLongPolls } : {}) });
  await app.register(healthRoutes, { broker: deps.broker, backend: deps.backend });
  await app.register(queuesRoutes, { broker: deps.broker, producer });
  await app.register(workersRoutes, { broker: deps.broker });
  await app.register(revokeRoutes, { broker: deps.broker, revoked: new RevokedSet(state, deps.config.resultExpires) });
  await app.register(schedulesRoutes, { store: deps.schedules ?? new MemoryScheduleStore(), ...(deps.now ? { now: deps.now } : {}) });
  await app.register(flowerRoutes, { producer, backend: deps.backend, maxWaitSeconds: deps.config.maxWaitSeconds, queueLength: (q) => deps.broker.queueLength(q), guard });
  app.get('/openapi.json', { schema: { hide: true } }, async () => app.swagger());
  return app;
}
