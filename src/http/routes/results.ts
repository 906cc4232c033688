/**
 * GET /results/:id — a task's state and result; `?wait=SECONDS` long-polls until it is ready.
 */
import type { FastifyPluginAsync } from 'fastify';
import type { ResultBackend } from '../../backends/backend.ts';
import { waitForResult } from '../../backends/wait.ts';
import { GatewayError } from '../../errors.ts';
import { isGatewayTaskId } from '../../protocol/task-id.ts';
import { READY_STATES, type ResultMeta } from '../../protocol/types.ts';
import type { GatewayMetrics } from '../metrics.ts';
import { pendingView, resultView } from '../result-view.ts';
import { errorResponses, resultSchema, TASK_ID_PATTERN } from '../schemas.ts';

interface ResultRoute {
  Params: { id: string };
  Querystring: { wait?: number };
}

/** An id we made (its checksum says so), or one a client chose that the backend recorded. */
async function submitted(backend: ResultBackend, id: string): Promise<boolean> {
  return isGatewayTaskId(id) || backend.wasSubmitted(id);
}

export interface ResultsRoutesOptions {
  backend: ResultBackend;
  maxWaitSeconds: number;
  /** aborted when the gateway shuts down: long-polls answer at once with the current state */
  shutdown: AbortSignal;
  metrics?: GatewayMetrics;
  /** most long-polls and event streams open at once (MAX_LONG_POLLS) */
  maxLongPolls?: number;
}

export const resultsRoutes: FastifyPluginAsync<ResultsRoutesOptions> = async (app, { backend, maxWaitSeconds, shutdown, metrics, maxLongPolls = 10_000 }) => {
  let open = 0;
  /** a slot for a long-poll or a stream; refused (503, Retry-After) when all are taken */
  const claim = (): (() => void) => {
    if (open >= maxLongPolls) {
      throw new GatewayError('GW_ERR_TOO_MANY_WAITS', `${maxLongPolls} long-polls are open (MAX_LONG_POLLS): retry shortly, or read without ?wait`);
    }
    open += 1;
    metrics?.openLongPolls.inc();
    let released = false;
    return () => {
      if (released) return;
      released = true;
      open -= 1;
      metrics?.openLongPolls.dec();
    };
  };
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
      // 503 also when MAX_LONG_POLLS long-polls are open (GW_ERR_TOO_MANY_WAITS)
    },
  }, async (request, reply) => {
    const { id } = request.params;
    const waitMs = (request.query.wait ?? 0) * 1000;
    let meta;
    if (waitMs <= 0) {
      meta = await backend.get(id);
    } else {
      // Ends early when the client goes away or the gateway closes. One listener on the shutdown signal,
      // removed after, rather than AbortSignal.any: that one ties every composite signal (and all a
      // wait's closures hold) to the shutdown signal through WeakRefs, which scavenges treat as strong,
      // so each long-poll's garbage was promoted to the old generation.
      const release = claim();
      const gone = new AbortController();
      const abort = (): void => gone.abort();
      reply.raw.once('close', abort);
      shutdown.addEventListener('abort', abort, { once: true });
      if (shutdown.aborted) gone.abort();
      try {
        meta = await waitForResult(backend, id, waitMs, gone.signal);
      } finally {
        reply.raw.off('close', abort);
        shutdown.removeEventListener('abort', abort);
        release();
        const outcome = meta && READY_STATES.has(meta.status) ? 'ready' : gone.signal.aborted ? 'aborted' : 'timeout';
        metrics?.resultWaits.inc({ outcome });
      }
    }
    if (meta) return resultView(id, meta);
    if (await submitted(backend, id)) return pendingView(id);
    throw new GatewayError('GW_ERR_RESULT_NOT_FOUND', `no task ${id}: it was not submitted through this gateway (or its record expired) and the result backend has no result for it`);
  });

  app.get<{ Params: { id: string } }>('/results/:id/events', {
    schema: {
      summary: 'Follow a task as Server-Sent Events',
      description: 'A `state` event (data: the same JSON as GET /results/:id) now and at every state change; the stream ends after a ready state (SUCCESS, FAILURE, REVOKED). A comment line every 15 s keeps proxies from closing it.',
      tags: ['results'],
      produces: ['text/event-stream'],
      params: { type: 'object', required: ['id'], properties: { id: { type: 'string', pattern: TASK_ID_PATTERN } } },
      response: { 200: { type: 'string', description: 'text/event-stream' }, ...errorResponses(400, 404, 503) },
    },
  }, async (request, reply) => {
    const { id } = request.params;
    let last = '';
    let finish: () => void = () => {};
    const finished = new Promise<void>((resolve) => { finish = resolve; });
    const send = (view: ReturnType<typeof resultView>): void => {
      if (view.state === last) return;
      last = view.state;
      reply.raw.write(`event: state\ndata: ${JSON.stringify(view)}\n\n`);
      if (view.ready) finish();
    };
    const queued: ResultMeta[] = [];
    let streaming = false;
    const release = claim();
    let unlisten: () => void = () => {};
    let heartbeat: NodeJS.Timeout | undefined;
    try {
      unlisten = await backend.listen(id, (meta) => (streaming ? send(resultView(id, meta)) : queued.push(meta)));
      const stored = await backend.get(id);
      if (!stored && queued.length === 0 && !(await submitted(backend, id))) {
        throw new GatewayError('GW_ERR_RESULT_NOT_FOUND', `no task ${id}: it was not submitted through this gateway and the result backend has no result for it`);
      }
      reply.hijack();
      reply.raw.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive', 'x-accel-buffering': 'no' });
      streaming = true;
      send(stored ? resultView(id, stored) : pendingView(id));
      for (const meta of queued) send(resultView(id, meta));
      heartbeat = setInterval(() => reply.raw.write(': keep-alive\n\n'), 15_000);
      reply.raw.once('close', finish);
      shutdown.addEventListener('abort', finish, { once: true });
      await finished;
      shutdown.removeEventListener('abort', finish);
      reply.raw.end();
    } finally {
      release();
      clearInterval(heartbeat);
      unlisten();
    }
  });
};
