/**
 * `Idempotency-Key` on submissions: a retried request (same key, same route and body) within the window
 * gets the first answer again and publishes nothing. The record lives in shared state (Redis when
 * configured), so it holds across gateway instances; a concurrent duplicate waits for the first to finish.
 */
import { createHash } from 'node:crypto';
import type { FastifyPluginAsync, FastifyReply, FastifyRequest } from 'fastify';
import fp from 'fastify-plugin';
import { GatewayError } from '../../errors.ts';
import type { SharedState } from '../../state/shared-state.ts';

declare module 'fastify' {
  interface FastifyRequest {
    idempotencyRecord?: string;
  }
}

const ROUTES = new Set(['/tasks/:name', '/workflows', '/api/task/async-apply/:name', '/api/task/send-task/:name']);
const KEY_PATTERN = /^[\x21-\x7e]{1,255}$/;
const WAIT_MS = 10_000;
const POLL_MS = 25;

interface Record {
  state: 'pending' | 'done';
  fingerprint: string;
  status?: number;
  body?: string;
  location?: string;
}

const sha256 = (text: string): string => createHash('sha256').update(text).digest('hex');

function fingerprint(request: FastifyRequest): string {
  return sha256(`${request.method} ${request.url}\n${JSON.stringify(request.body ?? null)}`);
}

/**
 * Claims the record of an idempotent request, or answers it from the record (a replay). Resolves true
 * when it answered.
 */
async function claim(request: FastifyRequest, reply: FastifyReply, header: unknown, state: SharedState, ttlSec: number): Promise<boolean> {
  if (typeof header !== 'string' || !KEY_PATTERN.test(header)) {
    throw new GatewayError('GW_ERR_VALIDATION', 'Idempotency-Key must be 1 to 255 visible ASCII characters');
  }
  const recordKey = `celery-gateway-idempotency-${sha256(`${request.apiKey?.name ?? ''}\n${header}`)}`;
  const fp = fingerprint(request);
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    if (await state.setIfAbsent(recordKey, JSON.stringify({ state: 'pending', fingerprint: fp } satisfies Record), ttlSec)) {
      request.idempotencyRecord = recordKey;
      return false;
    }
    const text = await state.get(recordKey);
    if (text === null) continue; // expired or released in between: claim again
    const record = JSON.parse(text) as Record;
    if (record.fingerprint !== fp) {
      throw new GatewayError('GW_ERR_IDEMPOTENCY_MISMATCH', 'this Idempotency-Key was used for a different request');
    }
    if (record.state === 'done') {
      reply.code(record.status ?? 200).type('application/json').header('idempotent-replayed', 'true');
      if (record.location) reply.header('location', record.location);
      reply.send(record.body);
      return true;
    }
    if (Date.now() > deadline) {
      throw new GatewayError('GW_ERR_IDEMPOTENCY_IN_FLIGHT', 'a request with this Idempotency-Key is still in progress');
    }
    await new Promise((resolve) => setTimeout(resolve, POLL_MS));
  }
}

/** Records the answer of a claimed request (2xx), or releases the claim (anything else). */
async function settle(request: FastifyRequest, reply: FastifyReply, payload: unknown, recordKey: string, state: SharedState, ttlSec: number): Promise<void> {
  if (reply.statusCode >= 200 && reply.statusCode < 300 && typeof payload === 'string') {
    const location = reply.getHeader('location');
    const record: Record = { state: 'done', fingerprint: fingerprint(request), status: reply.statusCode, body: payload, ...(typeof location === 'string' ? { location } : {}) };
    await state.set(recordKey, JSON.stringify(record), ttlSec).catch((err: unknown) => {
      request.log.error({ err }, 'could not record the idempotent answer; a retry within the window may publish again');
    });
  } else {
    // a refused or failed request published nothing: let a retry try again
    await state.delete(recordKey).catch(() => {});
  }
}

// Callback-style hooks that return at once for the requests without the header (nearly all): no promise
// per request on the submit path.
const plugin: FastifyPluginAsync<{ state: SharedState; ttlSec: number }> = async (app, { state, ttlSec }) => {
  app.addHook('preHandler', (request, reply, done) => {
    const header = request.headers['idempotency-key'];
    if (header === undefined || request.method !== 'POST' || !ROUTES.has(request.routeOptions.url ?? '')) {
      done();
      return;
    }
    // answered from the record: the reply is sent, so the request goes no further (done is not called)
    claim(request, reply, header, state, ttlSec).then((answered) => { if (!answered) done(); }, done);
  });

  app.addHook('onSend', (request, reply, payload, done) => {
    const recordKey = request.idempotencyRecord;
    if (!recordKey) {
      done(null, payload);
      return;
    }
    request.idempotencyRecord = undefined;
    settle(request, reply, payload, recordKey, state, ttlSec).then(() => done(null, payload), (err: Error) => done(err));
  });
};

export const idempotencyPlugin = fp(plugin, { name: 'celery-gateway-idempotency' });
