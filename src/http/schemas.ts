/**
 * JSON schemas of the HTTP API: one source for validation (ajv through Fastify) and for OpenAPI.
 */
import { ERRORS } from '../errors.ts';

/** Celery task names: dotted identifiers such as `proj.tasks.add` (also `:` and `-`). */
export const TASK_NAME_PATTERN = '^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$';
/** Task ids: Celery uses uuid4 but accepts any string; we refuse whitespace and control characters. */
export const TASK_ID_PATTERN = '^[A-Za-z0-9_.:@+=-]{1,255}$';
/** Queue, exchange and routing key names. */
export const QUEUE_NAME_PATTERN = '^[A-Za-z0-9_.:@#*-]{1,200}$';

export const errorSchema = {
  $id: 'Error',
  type: 'object',
  description: 'Every error answer has this shape; `code` is stable (see docs/errors.md).',
  required: ['statusCode', 'code', 'error', 'message'],
  properties: {
    statusCode: { type: 'integer', examples: [400] },
    code: { type: 'string', enum: Object.keys(ERRORS), examples: ['GW_ERR_VALIDATION'] },
    error: { type: 'string', description: 'HTTP reason phrase', examples: ['Bad Request'] },
    message: { type: 'string', examples: ['body/args must be array'] },
    details: { type: 'object', additionalProperties: true },
  },
} as const;

const errorRef = { $ref: 'Error#' } as const;

/** preValidation hook: a POST without a body (`curl -X POST …`) counts as `{}`. */
export function bodyOrEmpty(request: { body: unknown }, _reply: unknown, done: () => void): void {
  if (request.body === undefined || request.body === null) request.body = {};
  done();
}

/** Error responses for a route, described by the codes it can answer with. */
export function errorResponses(...statuses: number[]): Record<number, unknown> {
  const out: Record<number, unknown> = {};
  for (const status of statuses) {
    const codes = Object.entries(ERRORS).filter(([, spec]) => spec.status === status).map(([code]) => code);
    out[status] = { ...errorRef, description: `Error; code one of ${codes.join(', ')}` };
  }
  return out;
}

export const taskOptionsSchema = {
  type: 'object',
  additionalProperties: false,
  description: "Celery's apply_async options.",
  properties: {
    task_id: { type: 'string', pattern: TASK_ID_PATTERN, description: 'Use this id instead of a new uuid4' },
    queue: { type: 'string', pattern: QUEUE_NAME_PATTERN, description: 'Queue to publish to (default CELERY_DEFAULT_QUEUE)' },
    exchange: { type: 'string', pattern: '^[A-Za-z0-9_.:@-]{0,200}$', description: 'Route through this exchange (its bindings pick the queues)' },
    routing_key: { type: 'string', pattern: QUEUE_NAME_PATTERN, description: 'Routing key used with `exchange`' },
    priority: { type: 'integer', minimum: 0, maximum: 255, description: 'Redis: 0 (first) .. 9; RabbitMQ: higher first, needs x-max-priority' },
    countdown: { type: 'number', minimum: 0, maximum: 315360000, description: 'Run no earlier than this many seconds from now' },
    eta: { type: 'string', maxLength: 64, description: 'Run no earlier than this ISO 8601 time (UTC when no offset)', examples: ['2030-01-02T03:04:05+00:00'] },
    expires: {
      description: 'Discard the task if not started by then: seconds from now, or an ISO 8601 time',
      anyOf: [{ type: 'number', exclusiveMinimum: 0, maximum: 315360000 }, { type: 'string', maxLength: 64 }],
    },
    time_limit: { type: 'number', exclusiveMinimum: 0, description: 'Hard time limit, seconds' },
    soft_time_limit: { type: 'number', exclusiveMinimum: 0, description: 'Soft time limit, seconds' },
    ignore_result: { type: 'boolean', description: 'Do not store the SUCCESS result' },
  },
} as const;

export const submitBodySchema = {
  type: 'object',
  additionalProperties: false,
  properties: {
    args: { type: 'array', description: 'Positional arguments', examples: [[4, 5]] },
    kwargs: { type: 'object', description: 'Keyword arguments', additionalProperties: true },
    options: taskOptionsSchema,
  },
} as const;

export const submittedSchema = {
  type: 'object',
  required: ['id', 'task', 'state', 'queue', 'links'],
  properties: {
    id: { type: 'string' },
    task: { type: 'string' },
    state: { type: 'string', enum: ['PENDING'] },
    queue: { type: 'string' },
    eta: { type: ['string', 'null'] },
    expires: { type: ['string', 'null'] },
    links: { type: 'object', properties: { result: { type: 'string' } }, required: ['result'] },
  },
} as const;

export const resultSchema = {
  type: 'object',
  required: ['id', 'state', 'ready', 'result', 'error', 'date_done', 'children'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string', description: 'PENDING, STARTED, RETRY, SUCCESS, FAILURE, REVOKED or a custom state' },
    ready: { type: 'boolean', description: 'true for SUCCESS, FAILURE and REVOKED: the state will not change' },
    result: { description: "The return value (SUCCESS), the meta of a custom state (a task's update_state, e.g. PROGRESS with {current, total}), else null" },
    error: {
      type: ['object', 'null'],
      description: 'The exception for FAILURE, RETRY and REVOKED',
      properties: {
        type: { type: 'string' },
        module: { type: ['string', 'null'] },
        message: { type: 'string' },
        args: { type: 'array' },
        traceback: { type: ['string', 'null'] },
      },
    },
    worker: { type: ['string', 'null'], description: 'The worker running it (STARTED)' },
    date_done: { type: ['string', 'null'], description: 'UTC, ISO 8601 without offset, as Celery stores it' },
    children: { type: 'array', description: 'Result tuples of tasks this task published, as Celery stores them' },
    parent_id: { type: ['string', 'null'] },
    group_id: { type: ['string', 'null'] },
  },
} as const;

// ---------------------------------------------------------------------------------------------
// Canvas: link / link_error on POST /tasks/:name, and workflows (POST /workflows, GET /workflows/:id).
// The recursive workflow spec is checked in code (src/canvas/spec.ts) so errors can point at the node.

const workflowSignatureExample = { task: 'tasks.add', args: [2, 3] };

export const linkSchema = {
  description: 'A signature `{task, args?, kwargs?, options?, immutable?}` (or any workflow node), or a list of them. ' +
    'link: applied with the result prepended to its args after SUCCESS; link_error: applied with `[failed task id]` after FAILURE.',
  anyOf: [{ type: 'object' }, { type: 'array', items: { type: 'object' }, maxItems: 100 }],
  examples: [{ task: 'tasks.mul', args: [10] }],
} as const;

export const taskOptionsWithLinksSchema = {
  ...taskOptionsSchema,
  properties: { ...taskOptionsSchema.properties, link: linkSchema, link_error: linkSchema },
} as const;

export const submitWithLinksBodySchema = {
  ...submitBodySchema,
  properties: { ...submitBodySchema.properties, options: taskOptionsWithLinksSchema },
} as const;

export const workflowSpecSchema = {
  type: 'object',
  description: [
    'A workflow node, nestable:',
    '- signature `{task, args?, kwargs?, options?, immutable?}` — options are apply_async\'s (task_id, queue, exchange, routing_key, priority, countdown, eta, expires in seconds, time_limit, soft_time_limit, ignore_result) plus `link` / `link_error` (a node or a list of nodes); `immutable` (Celery\'s `.si()`) keeps the parent\'s result out of args',
    '- `{chain: [node, …]}` — each step gets the previous result prepended (a group followed by a step becomes a chord, as in Celery)',
    '- `{group: [node, …], id?}` — `id` is the group id',
    '- `{chord: {header: [node, …], body: node}, id?}` — the body gets the list of header results',
    '- `{map: {task, items, options?}}`, `{starmap: {task, items: [[args…], …], options?}}` — one celery.map / celery.starmap task',
    '- `{chunks: {task, items: [[args…], …], size, options?}, id?}` — a group of starmaps of `size` items',
    'Limits: 1000 nodes, 32 levels (defaults).',
  ].join('\n'),
  additionalProperties: true,
  examples: [
    { chain: [workflowSignatureExample, { task: 'tasks.mul', args: [10] }] },
    { chord: { header: [{ task: 'tasks.add', args: [1, 1] }, { task: 'tasks.add', args: [2, 2] }], body: { task: 'tasks.xsum' } } },
  ],
} as const;

const workflowTreeSchema = {
  type: 'object',
  additionalProperties: true,
  description: 'The spec\'s shape with ids: `{type, id, …}` where type is task, chain (steps), group (members), chord (group_id, header, body), map, starmap or chunks (chunks); link / link_error under tasks. A chain\'s id is its last step\'s, a chord\'s its body\'s.',
} as const;

export const workflowSubmittedSchema = {
  type: 'object',
  required: ['id', 'state', 'tree', 'links'],
  properties: {
    id: { type: 'string', description: 'The workflow id (for GET /workflows/:id)' },
    state: { type: 'string', enum: ['pending'] },
    tree: workflowTreeSchema,
    links: { type: 'object', properties: { workflow: { type: 'string' } }, required: ['workflow'] },
  },
} as const;

export const workflowViewSchema = {
  type: 'object',
  required: ['id', 'state', 'tree'],
  properties: {
    id: { type: 'string' },
    state: { type: 'string', enum: ['pending', 'running', 'succeeded', 'failed', 'revoked'], description: 'Over every task of the workflow except link_error callbacks' },
    tree: { ...workflowTreeSchema, description: 'The tree of ids, each node with `state` (Celery\'s: PENDING, STARTED, SUCCESS, FAILURE, REVOKED…), `result` (when SUCCESS; a chain\'s is its last step\'s, a group\'s the list of its members\'), and `error` ({type, module, message, args, traceback} or null)' },
  },
} as const;
