/**
 * Chaos: SIGTERM a real gateway process (`celery-gateway serve` on Redis) while 32 keep-alive clients
 * hammer POST /tasks/:name. Each request carries its own task_id, so the queue tells what was accepted:
 *   - every 202's message is in the Redis list;
 *   - every other outcome (503 JSON, connection refused, a reset before any response) left nothing in the
 *     queue — a request the gateway accepted is never answered with a reset;
 *   - no response is cut off once it has started;
 *   - the process exits 0.
 * Uses the shared Redis, DB 0, with its own queue `h3-sigterm-<uuid>` (removed afterwards).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { decodeEnvelope } from '../../src/protocol/kombu-envelope.ts';
import { submittedBucketKey } from '../../src/backends/redis.ts';
import { ERRORS } from '../../src/errors.ts';
import { runCli } from '../support/cli.ts';
import { redisGate } from '../support/python.ts';
import { sleep } from '../support/private-servers.ts';

const REDIS = 'redis://127.0.0.1:6379/0';
const skip = await redisGate(REDIS);

type Outcome =
  | { kind: 'response'; id: string; status: number; body: string; at: number }
  | { kind: 'error'; id: string; code: string; afterHeaders: boolean; at: number };

function submit(agent: http.Agent, port: number, id: string): Promise<Outcome> {
  const payload = JSON.stringify({ args: [1, 2], options: { task_id: id } });
  return new Promise((resolve) => {
    let afterHeaders = false;
    const req = http.request({
      host: '127.0.0.1', port, agent, method: 'POST', path: '/tasks/tasks.add',
      headers: { 'content-type': 'application/json', 'content-length': Buffer.byteLength(payload) },
    }, (res) => {
      afterHeaders = true;
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { body += chunk; });
      res.on('end', () => resolve({ kind: 'response', id, status: res.statusCode ?? 0, body, at: Date.now() }));
      res.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'error', id, code: err.code ?? err.message, afterHeaders: true, at: Date.now() }));
      res.on('aborted', () => resolve({ kind: 'error', id, code: 'ABORTED', afterHeaders: true, at: Date.now() }));
    });
    req.on('error', (err: NodeJS.ErrnoException) => resolve({ kind: 'error', id, code: err.code ?? err.message, afterHeaders, at: Date.now() }));
    req.end(payload);
  });
}

describe('chaos: SIGTERM of the gateway under load', { skip }, () => {
  const queue = `h3-sigterm-${randomUUID()}`;
  const redis = skip ? undefined : new Redis(REDIS);
  const ids: string[] = [];
  after(async () => {
    if (!redis) return;
    await redis.del(queue, `_kombu.binding.${queue}`);
    const now = Date.now();
    for (const key of [submittedBucketKey(now), submittedBucketKey(now - 3_600_000)]) {
      for (let i = 0; i < ids.length; i += 1000) await redis.hdel(key, ...ids.slice(i, i + 1000));
    }
    redis.disconnect();
  });

  it('in-flight requests complete or are cleanly refused, every 202 is in the queue, exit 0', async (t) => {
    const cli = runCli(['serve', '--port', '0'], {
      AUTH: 'none', CELERY_BROKER_URL: REDIS, CELERY_RESULT_BACKEND: REDIS, CELERY_DEFAULT_QUEUE: queue, LOG_LEVEL: 'warn',
    });
    const [, portText] = await cli.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    const port = Number(portText);
    const agent = new http.Agent({ keepAlive: true, maxSockets: 32 });
    const outcomes: Outcome[] = [];
    let gone = false;
    let signalledAt = Infinity;
    const exit = new Promise<number | null>((resolve) => cli.child.once('exit', (code) => { gone = true; resolve(code); }));
    const client = async (n: number): Promise<void> => {
      for (let i = 0; ; i += 1) {
        const id = `h3-sig-${n}-${i}-${randomUUID()}`;
        ids.push(id);
        const out = await submit(agent, port, id);
        outcomes.push(out);
        // stop once the process is gone and a fresh connection was refused
        if (gone && out.kind === 'error' && out.code === 'ECONNREFUSED') return;
        if (out.kind === 'error' || out.status !== 202) await sleep(5);
      }
    };
    const clients = Array.from({ length: 32 }, (_, n) => client(n));
    await sleep(1500);
    const acceptedBefore = outcomes.filter((o) => o.kind === 'response' && o.status === 202).length;
    signalledAt = Date.now();
    cli.child.kill('SIGTERM');
    const code = await exit;
    await Promise.all(clients);
    agent.destroy();

    // what reached the queue
    const listed = await redis!.lrange(queue, 0, -1);
    const queued = new Set(listed.map((e) => decodeEnvelope(e).message.headers['id'] as string));
    assert.equal(queued.size, listed.length, 'no duplicates in the queue');

    const accepted = outcomes.filter((o): o is Extract<Outcome, { kind: 'response' }> => o.kind === 'response' && o.status === 202);
    const refused = outcomes.filter((o): o is Extract<Outcome, { kind: 'response' }> => o.kind === 'response' && o.status !== 202);
    const errors = outcomes.filter((o): o is Extract<Outcome, { kind: 'error' }> => o.kind === 'error');
    const lost = accepted.filter((o) => !queued.has(o.id));
    assert.deepEqual(lost.map((o) => o.id), [], `${lost.length} of ${accepted.length} accepted tasks are not in the queue`);
    for (const o of refused) {
      assert.equal(o.status, 503, `unexpected answer ${o.status} ${o.body}`);
      const body = JSON.parse(o.body) as { code: keyof typeof ERRORS; statusCode: number };
      assert.equal(body.statusCode, 503);
      assert.equal(ERRORS[body.code]?.status, 503, o.body);
      assert.ok(!queued.has(o.id), `a refused request (${body.code}) was published`);
    }
    for (const o of errors) {
      assert.equal(o.afterHeaders, false, `a response was cut off after it started (${o.code})`);
      assert.ok(['ECONNREFUSED', 'ECONNRESET', 'EPIPE'].includes(o.code), `unexpected client error ${o.code}`);
      assert.ok(!queued.has(o.id), `request ${o.id} was accepted (its message is queued) but the client got ${o.code}`);
    }
    assert.equal(queued.size, accepted.length, 'the queue holds exactly the accepted tasks');
    const completedAfterSignal = accepted.filter((o) => o.at >= signalledAt).length;
    const summary = {
      accepted: accepted.length, acceptedBeforeSignal: acceptedBefore, completedAfterSignal,
      refused503: refused.length, refusedCodes: [...new Set(refused.map((o) => JSON.parse(o.body).code))],
      connectionErrors: Object.fromEntries([...new Set(errors.map((e) => e.code))].map((c) => [c, errors.filter((e) => e.code === c).length])),
      exitCode: code,
    };
    t.diagnostic(`gateway SIGTERM: ${JSON.stringify(summary)}`);
    assert.ok(acceptedBefore >= 100, `load was flowing before the signal (${acceptedBefore} accepted)`);
    assert.ok(completedAfterSignal + refused.length >= 1, 'the signal hit mid-stream: some requests were answered after it');
    assert.equal(code, 0, `exit code ${code}; output:\n${cli.output().slice(-2000)}`);
  });
});
