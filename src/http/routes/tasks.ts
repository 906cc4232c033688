/**
 * POST /tasks/:name — publish a Celery task; 202 once the broker has it.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import { buildSignature } from '../../canvas/compile.ts';
import { parseLinkOption } from '../../canvas/spec.ts';
import { GatewayError, isGatewayError } from '../../errors.ts';
import type { Producer } from '../../producer.ts';
import { isoWithOffset } from '../../protocol/time.ts';
import type { Json, JsonObject, SignatureDict } from '../../protocol/types.ts';
import type { TaskOptions } from '../../task-options.ts';
import { bodyOrEmpty, errorResponses, submittedSchema, submitWithLinksBodySchema, TASK_NAME_PATTERN } from '../schemas.ts';

interface SubmitRoute {
  Params: { name: string };
  Body: { args?: Json[]; kwargs?: JsonObject; options?: TaskOptions & { link?: unknown; link_error?: unknown } } | undefined;
}

/** [canvas] link / link_error as Celery's signature dicts (`link=sig`: no pre-assigned id). */
function linkSignatures(value: unknown, field: 'link' | 'link_error'): SignatureDict[] | null {
  try {
    const sigs = parseLinkOption(value, field).map((node) => buildSignature(node, { newId: randomUUID, freezeLinks: false }).sig);
    return sigs.length ? sigs : null;
  } catch (err) {
    if (isGatewayError(err)) throw new GatewayError('GW_ERR_BAD_OPTION', err.message, { details: { option: field, ...(err.details ?? {}) } });
    throw err;
  }
}

export const tasksRoutes: FastifyPluginAsync<{ producer: Producer }> = async (app, { producer }) => {
  app.post<SubmitRoute>('/tasks/:name', {
    schema: {
      summary: 'Submit a task',
      description: 'Publishes a Celery protocol v2 message. Answers 202 only after the broker has the message.',
      tags: ['tasks'],
      params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TASK_NAME_PATTERN } } },
      body: submitWithLinksBodySchema,
      response: { 202: submittedSchema, ...errorResponses(400, 403, 413, 415, 503) },
    },
    // curl -X POST without a body submits a task with no arguments
    preValidation: bodyOrEmpty,
  }, async (request, reply) => {
    const body = request.body ?? {};
    // [canvas] link / link_error become embed.callbacks / embed.errbacks
    const { link, link_error: linkError, ...options } = body.options ?? {};
    const callbacks = linkSignatures(link, 'link');
    const errbacks = linkSignatures(linkError, 'link_error');
    const key = request.apiKey;
    if ((callbacks || errbacks) && key && (key.tasks || key.queues)) {
      throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} has task or queue allowlists, which link / link_error do not support yet`);
    }
    const sent = await producer.send({
      task: request.params.name,
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
