/**
 * POST /workflows — publish a Celery canvas (chain, group, chord, map, starmap, chunks, links) from a
 * JSON spec, encoded exactly as a Python client would; GET /workflows/:id — its tree with states.
 */
import { randomUUID } from 'node:crypto';
import type { FastifyPluginAsync } from 'fastify';
import type { ResultBackend } from '../../backends/backend.ts';
import { compileWorkflow } from '../../canvas/compile.ts';
import { callExtras, producerOptions } from '../../canvas/message.ts';
import { DEFAULT_WORKFLOW_LIMITS, parseWorkflowSpec, type WorkflowLimits } from '../../canvas/spec.ts';
import { asWorkflowNode, overallState, taskIds, viewTree } from '../../canvas/tree.ts';
import { GatewayError } from '../../errors.ts';
import type { Producer } from '../../producer.ts';
import { isGatewayTaskId, newTaskId } from '../../protocol/task-id.ts';
import type { Json, ResultMeta } from '../../protocol/types.ts';
import type { SubmitGuard } from '../submit-guard.ts';
import { errorResponses, TASK_ID_PATTERN, workflowSpecSchema, workflowSubmittedSchema, workflowViewSchema } from '../schemas.ts';

export interface WorkflowsRoutesOptions {
  producer: Producer;
  backend: ResultBackend;
  /** defaults: 1000 nodes, 32 levels */
  limits?: Partial<WorkflowLimits>;
  /** MAX_ARGS_BYTES and the task registry, applied to every node */
  guard: SubmitGuard;
}

function unsupported(backend: ResultBackend, what: string): GatewayError {
  return new GatewayError('GW_ERR_WORKFLOW_UNSUPPORTED', `the ${backend.kind} result backend cannot keep ${what}: use the Redis result backend`);
}

export const workflowsRoutes: FastifyPluginAsync<WorkflowsRoutesOptions> = async (app, { producer, backend, limits, guard }) => {
  const effective: WorkflowLimits = { ...DEFAULT_WORKFLOW_LIMITS, ...limits };

  app.post<{ Body: unknown }>('/workflows', {
    schema: {
      summary: 'Submit a workflow (chain, group, chord, map, starmap, chunks)',
      description: 'Publishes a Celery canvas exactly as a Python client would (Python and Node workers continue it alike) and answers 202 with the id of every node, in the shape of the spec. A bad spec is a 400 GW_ERR_BAD_WORKFLOW whose `details.pointer` is the JSON pointer of the offending node. ' +
        'Each node\'s args + kwargs may take at most MAX_ARGS_BYTES (413 GW_ERR_ARGS_TOO_LARGE); with a task registry each call is validated (400 GW_ERR_ARGS_INVALID / GW_ERR_TASK_NOT_REGISTERED, `details.pointer`); ' +
        'args that will get a parent\'s result prepended (chain steps after the first, chord bodies, links, unless immutable) are incomplete at submit time: only their kwargs are checked.',
      tags: ['tasks'],
      body: workflowSpecSchema,
      response: { 202: workflowSubmittedSchema, ...errorResponses(400, 413, 415, 501, 503) },
    },
  }, async (request, reply) => {
    const spec = parseWorkflowSpec(request.body, effective, new Date());
    guard.node(spec);
    if (!backend.saveWorkflow || !backend.getWorkflow) throw unsupported(backend, 'workflows');
    const compiled = compileWorkflow(spec, { newId: newTaskId, replyTo: producer.replyTo });
    if (compiled.actions.some((a) => a.type === 'chord-size') && (!backend.setChordSize || !backend.chordPartReturn)) throw unsupported(backend, 'chords');
    const id = randomUUID();
    await backend.saveWorkflow(id, compiled.tree as unknown as Json);
    // ids the spec chose are recorded; ours are known by their checksum
    const chosen = taskIds(compiled.tree).filter((taskId) => !isGatewayTaskId(taskId));
    if (chosen.length > 0) await backend.rememberSubmitted(chosen);
    for (const action of compiled.actions) {
      if (action.type === 'chord-size') {
        await backend.setChordSize?.(action.groupId, action.size);
        continue;
      }
      const m = action.message;
      await producer.send({ task: m.task, args: m.args, kwargs: m.kwargs, options: producerOptions(m), idRecorded: true }, callExtras(m));
    }
    const location = `/workflows/${encodeURIComponent(id)}`;
    return reply.code(202).header('location', location).send({ id, state: 'pending', tree: compiled.tree, links: { workflow: location } });
  });

  app.get<{ Params: { id: string } }>('/workflows/:id', {
    schema: {
      summary: 'Get a workflow with the state of every node',
      description: 'The tree POST /workflows answered, each node with its state, result or error, and the overall state.',
      tags: ['results'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } } },
      response: { 200: workflowViewSchema, ...errorResponses(400, 404, 501, 503) },
    },
  }, async (request) => {
    const { id } = request.params;
    if (!backend.getWorkflow) throw unsupported(backend, 'workflows');
    const tree = asWorkflowNode(await backend.getWorkflow(id));
    if (!tree) throw new GatewayError('GW_ERR_WORKFLOW_NOT_FOUND', `no workflow ${id}`, { details: { id } });
    const ids = [...new Set(taskIds(tree))];
    const metas = new Map<string, ResultMeta | null>(await Promise.all(ids.map(async (taskId) => [taskId, await backend.get(taskId)] as const)));
    return { id, state: overallState(tree, metas), tree: viewTree(tree, metas) };
  });
};
