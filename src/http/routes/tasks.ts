/**
 * POST /tasks/:name — publish a Celery task; 202 once the broker has it.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { Producer } from '../../producer.ts';
import { isoWithOffset } from '../../protocol/time.ts';
import type { Json, JsonObject } from '../../protocol/types.ts';
import type { TaskOptions } from '../../task-options.ts';
import { errorResponses, submitBodySchema, submittedSchema, TASK_NAME_PATTERN } from '../schemas.ts';

interface SubmitRoute {
  Params: { name: string };
  Body: { args?: Json[]; kwargs?: JsonObject; options?: TaskOptions } | undefined;
}

export const tasksRoutes: FastifyPluginAsync<{ producer: Producer }> = async (app, { producer }) => {
  app.post<SubmitRoute>('/tasks/:name', {
    schema: {
      summary: 'Submit a task',
      description: 'Publishes a Celery protocol v2 message. Answers 202 only after the broker has the message.',
      tags: ['tasks'],
      params: { type: 'object', required: ['name'], properties: { name: { type: 'string', pattern: TASK_NAME_PATTERN } } },
      body: submitBodySchema,
      response: { 202: submittedSchema, ...errorResponses(400, 413, 415, 503) },
    },
    // curl -X POST without a body submits a task with no arguments
    preValidation: async (request) => {
      if (request.body === undefined || request.body === null) request.body = {};
    },
  }, async (request, reply) => {
    const body = request.body ?? {};
    const sent = await producer.send({
      task: request.params.name,
      ...(body.args !== undefined ? { args: body.args } : {}),
      ...(body.kwargs !== undefined ? { kwargs: body.kwargs } : {}),
      ...(body.options !== undefined ? { options: body.options } : {}),
    });
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
