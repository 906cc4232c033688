/**
 * API-key authentication and authorisation: `Authorization: Bearer <key>`, a scope per route, and the
 * key's task-name and queue allowlists for submissions.
 */
import type { FastifyPluginAsync, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { hasScope, mayRunTask, type ApiKey, type KeyRing, type Scope } from '../../auth/keys.ts';
import { GatewayError } from '../../errors.ts';

declare module 'fastify' {
  interface FastifyRequest {
    /** the authenticated key; undefined when auth is off or the route is public */
    apiKey?: ApiKey;
  }
}

/** Routes anyone may call (`METHOD /url`); /docs too. */
export const PUBLIC = new Set(['GET /healthz', 'GET /readyz', 'GET /openapi.json', 'HEAD /healthz', 'HEAD /readyz']);

/** The scope each route needs; a route missing here needs `admin` (secure by default). */
const ROUTE_SCOPES: Record<string, Scope> = {
  'POST /tasks/:name': 'submit',
  'POST /workflows': 'submit',
  'POST /api/task/async-apply/:name': 'submit',
  'POST /api/task/send-task/:name': 'submit',
  'POST /api/task/apply/:name': 'submit',
  'GET /results/:id': 'read',
  'GET /results/:id/events': 'read',
  'GET /workflows/:id': 'read',
  'GET /api/task/result/:id': 'read',
  'GET /queues': 'read',
  'GET /workers': 'read',
  'GET /api/workers': 'read',
  'GET /api/queues/length': 'read',
  'GET /schedules': 'read',
  'GET /schedules/:name': 'read',
  'POST /tasks/:id/revoke': 'revoke',
  'POST /api/task/revoke/:id': 'revoke',
};

function routeKey(request: FastifyRequest): string {
  return `${request.method} ${request.routeOptions.url ?? ''}`;
}

function isPublic(request: FastifyRequest): boolean {
  const url = request.routeOptions.url;
  return url === undefined || PUBLIC.has(routeKey(request)) || url.startsWith('/docs');
}

const plugin: FastifyPluginAsync<{ keys: KeyRing }> = async (app, { keys }) => {
  app.addHook('onRequest', async (request) => {
    if (isPublic(request)) return;
    const header = request.headers.authorization;
    const match = typeof header === 'string' ? /^Bearer\s+(\S+)\s*$/i.exec(header) : null;
    const key = match?.[1] ? keys.find(match[1]) : undefined;
    if (!key) throw new GatewayError('GW_ERR_UNAUTHORIZED', header ? 'invalid API key' : 'missing API key: send Authorization: Bearer <key>');
    const scope = ROUTE_SCOPES[routeKey(request)] ?? 'admin';
    if (!hasScope(key, scope)) throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} lacks the "${scope}" scope`);
    request.apiKey = key;
  });

  // The task-name allowlist. The queue allowlist is checked by the producer, on the route a submission
  // really takes (its own queue or exchange, else task_routes / registry queues): see assertMayPublish.
  app.addHook('preHandler', async (request) => {
    const key = request.apiKey;
    if (!key || (!key.tasks && !key.queues) || ROUTE_SCOPES[routeKey(request)] !== 'submit') return;
    if (request.routeOptions.url === '/workflows') {
      throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} has task or queue allowlists, which workflows do not support yet`);
    }
    const task = (request.params as { name?: string } | undefined)?.name;
    if (task !== undefined && !mayRunTask(key, task)) throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} may not submit ${task}`);
  });
};

export const authPlugin = fp(plugin, { name: 'celery-gateway-auth' });
