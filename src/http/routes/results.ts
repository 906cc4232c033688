/**
 * GET /results/:id — a task's state and result; `?wait=SECONDS` long-polls until it is ready.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ResultBackend } from '../../backends/backend.ts';
import { waitForResult } from '../../backends/wait.ts';
import { GatewayError } from '../../errors.ts';
import { READY_STATES } from '../../protocol/types.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { pendingView, resultView } from '../result-view.ts';
import { errorResponses, resultSchema, TASK_ID_PATTERN } from '../schemas.ts';

interface ResultRoute {
  Params: { id: string };
  Querystring: { wait?: number };
}

export interface ResultsRoutesOptions {
  backend: ResultBackend;
  maxWaitSeconds: number;
  /** aborted when the gateway shuts down: long-polls answer at once with the current state */
  shutdown: AbortSignal;
  metrics?: GatewayMetrics;
}

export const resultsRoutes: FastifyPluginAsync<ResultsRoutesOptions> = async (app, { backend, maxWaitSeconds, shutdown, metrics }) => {
  app.get<ResultRoute>('/results/:id', {
    schema: {
      summary: 'Get a task result',
      description: 'With `wait`, holds the request until the task is ready (SUCCESS, FAILURE, REVOKED) or the wait ends, then answers with the state at that moment.',
      tags: ['results'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } } },
      querystring: {
        type: 'object',
        additionalProperties: false,
        properties: { wait: { type: 'number', minimum: 0, maximum: maxWaitSeconds, description: `Seconds to wait for a ready state (max ${maxWaitSeconds})` } },
      },
      response: { 200: resultSchema, ...errorResponses(400, 404, 503) },
    },
  }, async (request) => {
    const { id } = request.params;
    const waitMs = (request.query.wait ?? 0) * 1000;
    const gone = new AbortController();
    const onClose = (): void => gone.abort();
    request.raw.once('close', onClose);
    try {
      const signal = AbortSignal.any([gone.signal, shutdown]);
      if (waitMs > 0) metrics?.openLongPolls.inc();
      let meta;
      try {
        meta = await waitForResult(backend, id, waitMs, signal);
      } finally {
        if (waitMs > 0) {
          metrics?.openLongPolls.dec();
          const outcome = meta && READY_STATES.has(meta.status) ? 'ready' : signal.aborted ? 'aborted' : 'timeout';
          metrics?.resultWaits.inc({ outcome });
        }
      }
      if (meta) return resultView(id, meta);
      if (await backend.wasSubmitted(id)) return pendingView(id);
      throw new GatewayError('GW_ERR_RESULT_NOT_FOUND', `no task ${id}: it was not submitted through this gateway (or its record expired) and the result backend has no result for it`);
    } finally {
      request.raw.off('close', onClose);
    }
  });
};
