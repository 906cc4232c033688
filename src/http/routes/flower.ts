/**
 * Flower-compatible aliases (Flower 2.x `/api/...` shapes: `task-id`, `state`, `result`, options at the
 * top level of the body), so clients written for Flower's API can switch without changes. Errors use the
 * gateway's JSON error shape.
 */
import type { FastifyPluginAsync } from 'fastify';
import { publishCheck, type ApiKey } from '../../auth/keys.ts';
import type { ResultBackend } from '../../backends/backend.ts';
import { waitForResult } from '../../backends/wait.ts';
import type { Producer } from '../../producer.ts';
import { saferepr } from '../../protocol/repr.ts';
import { describeError } from '../../protocol/result-meta.ts';
import { READY_STATES, States, type Json, type JsonObject, type ResultMeta } from '../../protocol/types.ts';
import type { TaskOptions } from '../../task-options.ts';
import type { SubmitGuard } from '../submit-guard.ts';
import { bodyOrEmpty, errorResponses, TASK_ID_PATTERN, TASK_NAME_PATTERN, taskOptionsSchema } from '../schemas.ts';

export interface FlowerRoutesOptions {
  producer: Producer;
  backend: ResultBackend;
  maxWaitSeconds: number;
  queueLength: (queue: string) => Promise<number>;
  /** MAX_ARGS_BYTES and the task registry */
  guard: SubmitGuard;
}

type FlowerBody = { args?: Json[]; kwargs?: JsonObject } & Omit<TaskOptions, 'eta' | 'expires'> & { eta?: string; expires?: number | string };

/** Flower's body: args, kwargs and apply_async options side by side. */
const flowerBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    args: { type: 'array' },
    kwargs: { type: 'object', additionalProperties: true },
    ...taskOptionsSchema.properties,
  },
} as const;

const submitted = { type: 'object', properties: { 'task-id': { type: 'string' }, state: { type: 'string' } } } as const;
const resultShape = {
  type: 'object',
  properties: { 'task-id': { type: 'string' }, state: { type: 'string' }, result: {}, traceback: { type: ['string', 'null'] } },
} as const;

/** Flower's dates are `%Y-%m-%d %H:%M:%S.%f` (naive, UTC here); ISO 8601 also works. */
const flowerDate = (value: string): string => value.replace(/^(\d{4}-\d\d-\d\d) /, '$1T');

function toOptions(body: FlowerBody): TaskOptions {
  const { args: _a, kwargs: _k, eta, expires, ...rest } = body;
  const options: TaskOptions = { ...rest };
  if (eta !== undefined) options.eta = flowerDate(eta);
  if (expires !== undefined) options.expires = typeof expires === 'string' ? flowerDate(expires) : expires;
  return options;
}

/** Flower's result fields: the value, or for a failure the exception's repr and the traceback. */
function flowerResult(meta: ResultMeta): { result: Json; traceback?: string | null } {
  if (meta.status === States.SUCCESS) return { result: meta.result };
  const error = describeError(meta.result, meta.traceback);
  if (!error) return { result: meta.result };
  const repr = `${error.type}(${error.args.map((a) => saferepr(a)).join(', ')})`;
  return meta.status === States.FAILURE ? { result: repr, traceback: meta.traceback } : { result: repr };
}

export const flowerRoutes: FastifyPluginAsync<FlowerRoutesOptions> = async (app, { producer, backend, maxWaitSeconds, queueLength, guard }) => {
  const nameParams = { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TASK_NAME_PATTERN } } } as const;
  const send = async (name: string, body: FlowerBody | undefined, key: ApiKey | undefined) => {
    const b = body ?? {};
    guard.call(name, b.args, b.kwargs, { args: '/args', kwargs: '/kwargs' });
    return producer.send({ task: name, args: b.args ?? [], kwargs: b.kwargs ?? {}, options: toOptions(b), authorize: publishCheck(key) });
  };

  for (const [path, summary] of [['/api/task/async-apply/:name', 'Flower: execute a task'], ['/api/task/send-task/:name', 'Flower: execute a task by name']] as const) {
    app.post<{ Params: { name: string }; Body: FlowerBody }>(path, {
      schema: { summary, tags: ['flower'], params: nameParams, body: flowerBodySchema, response: { 200: submitted, ...errorResponses(400, 413, 415, 503) } },
      preValidation: bodyOrEmpty,
    }, async (request) => {
      const sent = await send(request.params.name, request.body, request.apiKey);
      return { 'task-id': sent.id, state: States.PENDING };
    });
  }

  app.post<{ Params: { name: string }; Body: FlowerBody }>('/api/task/apply/:name', {
    schema: {
      summary: 'Flower: execute a task and wait for its result', tags: ['flower'],
      description: `Waits at most MAX_WAIT_SECONDS (${maxWaitSeconds} s); then answers with the state at that moment.`,
      params: nameParams, body: flowerBodySchema, response: { 200: resultShape, ...errorResponses(400, 413, 415, 503) },
    },
    preValidation: bodyOrEmpty,
  }, async (request) => {
    const sent = await send(request.params.name, request.body, request.apiKey);
    const meta = await waitForResult(backend, sent.id, maxWaitSeconds * 1000);
    if (!meta) return { 'task-id': sent.id, state: States.PENDING, result: null };
    return { 'task-id': sent.id, state: meta.status, ...flowerResult(meta) };
  });

  app.get<{ Params: { id: string }; Querystring: { timeout?: number } }>('/api/task/result/:id', {
    schema: {
      summary: 'Flower: get a task result', tags: ['flower'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } } },
      querystring: { type: 'object', properties: { timeout: { type: 'number', minimum: 0, maximum: maxWaitSeconds } } },
      response: { 200: resultShape, ...errorResponses(400, 503) },
    },
  }, async (request) => {
    const { id } = request.params;
    const meta = await waitForResult(backend, id, (request.query.timeout ?? 0) * 1000);
    if (!meta) return { 'task-id': id, state: States.PENDING };
    if (!READY_STATES.has(meta.status)) return { 'task-id': id, state: meta.status };
    return { 'task-id': id, state: meta.status, ...flowerResult(meta) };
  });

  app.get('/api/queues/length', {
    schema: {
      summary: 'Flower: length of the known queues', tags: ['flower'],
      response: {
        200: { type: 'object', properties: { active_queues: { type: 'array', items: { type: 'object', properties: { name: { type: 'string' }, messages: { type: 'integer' } } } } } },
        ...errorResponses(503),
      },
    },
  }, async () => {
    const names = [...producer.queues].sort();
    const lengths = await Promise.all(names.map((name) => queueLength(name)));
    return { active_queues: names.map((name, i) => ({ name, messages: lengths[i] ?? 0 })) };
  });
};
