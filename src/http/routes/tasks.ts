/**
 * POST /tasks/:name — publish a Celery task; 202 once the broker has it.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { publishCheck } from '../../auth/keys.ts';
import { buildSignature } from '../../canvas/compile.ts';
import { parseLinkOption, type SpecNode } from '../../canvas/spec.ts';
import { GatewayError, isGatewayError } from '../../errors.ts';
import type { Producer } from '../../producer.ts';
import { isoWithOffset } from '../../protocol/time.ts';
import type { Json, JsonObject, SignatureDict } from '../../protocol/types.ts';
import type { TaskOptions } from '../../task-options.ts';
import type { SubmitGuard } from '../submit-guard.ts';
import { bodyOrEmpty, errorResponses, submittedSchema, submitWithLinksBodySchema, TASK_NAME_PATTERN } from '../schemas.ts';

interface SubmitRoute {
  Params: { name: string };
  Body: { args?: Json[]; kwargs?: JsonObject; options?: TaskOptions & { link?: unknown; link_error?: unknown } } | undefined;
}

function badOption(err: unknown, field: string): unknown {
  return isGatewayError(err) ? new GatewayError('GW_ERR_BAD_OPTION', err.message, { details: { option: field, ...(err.details ?? {}) } }) : err;
}

/**
 * [canvas] link / link_error as Celery's signature dicts (`link=sig`: no pre-assigned id); each call
 * in them passes the guard (size, registry) like the task itself.
 */
function linkSignatures(value: unknown, field: 'link' | 'link_error', guard: SubmitGuard): SignatureDict[] | null {
  if (value === undefined || value === null) return null;
  let nodes: SpecNode[];
  try {
    nodes = parseLinkOption(value, field);
  } catch (err) {
    throw badOption(err, field);
  }
  for (const node of nodes) guard.node(node, true);
  try {
    const sigs = nodes.map((node) => buildSignature(node, { newId: randomUUID, freezeLinks: false }).sig);
    return sigs.length ? sigs : null;
  } catch (err) {
    throw badOption(err, field);
  }
}

/** Content-Length as a number (Fastify has checked that the body had that many bytes); undefined when chunked. */
function contentLength(header: string | undefined): number | undefined {
  return header === undefined ? undefined : Number(header);
}

export const tasksRoutes: FastifyPluginAsync<{ producer: Producer; guard: SubmitGuard }> = async (app, { producer, guard }) => {
  app.post<SubmitRoute>('/tasks/:name', {
    schema: {
      summary: 'Submit a task',
      description: 'Publishes a Celery protocol v2 message. Answers 202 only after the broker has the message. ' +
        'The encoded args + kwargs may take at most MAX_ARGS_BYTES (413 GW_ERR_ARGS_TOO_LARGE); with a task registry (TASK_REGISTRY_FILE) they must match the task\'s schemas ' +
        '(400 GW_ERR_ARGS_INVALID, `details.pointer` into the body), and with TASK_REGISTRY_STRICT=true the task must be registered (400 GW_ERR_TASK_NOT_REGISTERED).',
      tags: ['tasks'],
      params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TASK_NAME_PATTERN } } },
      body: submitWithLinksBodySchema,
      response: { 202: submittedSchema, ...errorResponses(400, 403, 413, 415, 503) },
    },
    // curl -X POST without a body submits a task with no arguments
    preValidation: bodyOrEmpty,
  }, async (request, reply) => {
    const body = request.body ?? {};
    guard.call(request.params.name, body.args, body.kwargs, { args: '/args', kwargs: '/kwargs' }, contentLength(request.headers['content-length']));
    // [canvas] link / link_error become embed.callbacks / embed.errbacks
    const { link, link_error: linkError, ...options } = body.options ?? {};
    const callbacks = linkSignatures(link, 'link', guard);
    const errbacks = linkSignatures(linkError, 'link_error', guard);
    const key = request.apiKey;
    if ((callbacks || errbacks) && key && (key.tasks || key.queues)) {
      throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} has task or queue allowlists, which link / link_error do not support yet`);
    }
    const sent = await producer.send({
      task: request.params.name,
      authorize: publishCheck(key),
      ...(body.args !== undefined ? { args: body.args } : {}),
      ...(body.kwargs !== undefined ? { kwargs: body.kwargs } : {}),
      ...(body.options !== undefined ? { options } : {}),
    }, callbacks || errbacks ? { embed: { callbacks, errbacks } } : {});
    const location = `/results/${encodeURIComponent(sent.id)}`;
    return reply.code(202).header('location', location).send({
      id: sent.id,
      task: sent.task,
      state: 'PENDING',
      queue: sent.queue,
      eta: sent.eta ? isoWithOffset(sent.eta) : null,
      expires: sent.expires ? isoWithOffset(sent.expires) : null,
      links: { result: location },
    });
  });
};
