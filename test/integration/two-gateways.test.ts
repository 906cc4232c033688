/**
 * Two gateway processes behind one (imaginary) load balancer share everything through Redis (issue #9):
 * a client alternates between them and gets identical answers. Submitted ids (B knows A's task),
 * results, idempotency keys (a retry on B replays A's answer, one message), schedules (PUT on A, GET
 * on B), revoked ids (revoke on B, the worker skips the task) and rate limits (counted across both).
 * A private redis-server on 127.0.0.1:6400 (started and stopped here) holds it all.
 */
import assert from 'node:assert/strict';
import { createHash, randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { runCli, type CliProcess } from '../support/cli.ts';
import { binaryGate, startPrivateRedis, type PrivateRedis } from '../support/private-servers.ts';

const PORT = 6400;
const REDIS = `redis://127.0.0.1:${PORT}/0`;
const QUEUE = 'h4-two';
const ADMIN_KEY = `h4-admin-${randomUUID()}`;
const LIMITED_KEY = `h4-limited-${randomUUID()}`;
const LIMIT = 10;
const sha = (s: string): string => `sha256:${createHash('sha256').update(s).digest('hex')}`;


interface Answer { status: number; json: any; headers: Headers }

async function call(base: string, method: string, path: string, body?: unknown, headers: Record<string, string> = {}, key = ADMIN_KEY): Promise<Answer> {
  const init: RequestInit = { method, headers: { authorization: `Bearer ${key}`, ...headers } };
  if (body !== undefined) {
    init.body = JSON.stringify(body);
    (init.headers as Record<string, string>)['content-type'] = 'application/json';
  }
  const res = await fetch(base + path, init);
  const text = await res.text();
  let json: unknown = text;
  try { json = JSON.parse(text); } catch { /* not JSON */ }
  return { status: res.status, json, headers: res.headers };
}

describe('two gateway processes on one Redis', { skip: await binaryGate('redis-server', 'apt-get install redis-server'), timeout: 60_000 }, () => {
  let server: PrivateRedis | undefined;
  let redis: Redis;
  let gwA: CliProcess;
  let gwB: CliProcess;
  let worker: CliProcess | undefined;
  let A = '';
  let B = '';
  const env = {
    CELERY_BROKER_URL: REDIS,
    PORT: '0',
    LOG_LEVEL: 'warn',
    API_KEYS: JSON.stringify([
      { name: 'admin', hash: sha(ADMIN_KEY), scopes: ['admin'] },
      { name: 'limited', hash: sha(LIMITED_KEY), scopes: ['read'], rateLimit: LIMIT },
    ]),
  };

  before(async () => {
    server = await startPrivateRedis(PORT, false);
    redis = new Redis(REDIS);
    gwA = runCli(['serve'], env);
    gwB = runCli(['serve'], env);
    A = (await gwA.waitFor(/listening on (http:\/\/[\d.]+:\d+)/))[1]!;
    B = (await gwB.waitFor(/listening on (http:\/\/[\d.]+:\d+)/))[1]!;
    assert.notEqual(A, B);
  });

  after(async () => {
    await Promise.all([worker?.stop(), gwA?.stop(), gwB?.stop()]);
    redis?.disconnect();
    await server?.destroy();
  });

  it('alternating client: results, idempotency, schedules, revoke, rate limit agree', async () => {
    // submit on A, read on B: B knows the id (PENDING, not 404), and both answer the same
    const sub = await call(A, 'POST', '/tasks/tasks.add', { args: [2, 3], options: { queue: QUEUE } });
    assert.equal(sub.status, 202);
    const id = sub.json.id as string;
    const pendingB = await call(B, 'GET', `/results/${id}`);
    const pendingA = await call(A, 'GET', `/results/${id}`);
    assert.equal(pendingB.status, 200);
    assert.equal(pendingB.json.state, 'PENDING');
    assert.deepEqual(pendingB.json, pendingA.json);
    // an id neither submitted: 404 on both
    const unknown = randomUUID();
    assert.equal((await call(A, 'GET', `/results/${unknown}`)).status, 404);
    assert.equal((await call(B, 'GET', `/results/${unknown}`)).status, 404);

    // Idempotency-Key: first on A, retried on B → A's answer replayed, one message on the queue
    const idemQueue = `${QUEUE}-idem`;
    const idemBody = { args: [7, 8], options: { queue: idemQueue } };
    const first = await call(A, 'POST', '/tasks/tasks.add', idemBody, { 'idempotency-key': 'h4-order-1' });
    const retry = await call(B, 'POST', '/tasks/tasks.add', idemBody, { 'idempotency-key': 'h4-order-1' });
    assert.equal(first.status, 202);
    assert.equal(retry.status, 202);
    assert.deepEqual(retry.json, first.json);
    assert.equal(retry.headers.get('idempotent-replayed'), 'true');
    assert.equal(await redis.llen(idemQueue), 1, 'one message for two requests');
    const other = await call(B, 'POST', '/tasks/tasks.add', { ...idemBody, args: [9, 9] }, { 'idempotency-key': 'h4-order-1' });
    assert.equal(other.status, 422, 'same key, other body: refused on the other instance too');
    assert.equal(other.json.code, 'GW_ERR_IDEMPOTENCY_MISMATCH');

    // schedules: PUT on A, visible on B identically; DELETE on B, gone on A
    const entry = { task: 'tasks.add', args: [1, 2], cron: '0 3 * * *', timezone: 'Europe/Berlin' };
    assert.equal((await call(A, 'PUT', '/schedules/h4-nightly', entry)).status < 300, true);
    const onA = await call(A, 'GET', '/schedules/h4-nightly');
    const onB = await call(B, 'GET', '/schedules/h4-nightly');
    assert.equal(onB.status, 200);
    assert.equal(onB.json.task, 'tasks.add');
    assert.deepEqual(onB.json, onA.json);
    assert.ok((await call(B, 'DELETE', '/schedules/h4-nightly')).status < 300);
    assert.equal((await call(A, 'GET', '/schedules/h4-nightly')).status, 404);

    // revoke on B a task submitted on A, before any worker runs: the worker must skip it
    const doomed = await call(A, 'POST', '/tasks/tasks.add', { args: [10, 10], options: { queue: QUEUE } });
    const revoked = await call(B, 'POST', `/tasks/${doomed.json.id}/revoke`);
    assert.ok(revoked.status < 300, JSON.stringify(revoked.json));

    // a worker runs the queue; both gateways then answer SUCCESS (long-poll on B), identically
    worker = runCli(['worker', '--tasks', 'examples/tasks.ts', '-Q', QUEUE, '-c', '2', '-n', 'h4-two@test'], { CELERY_BROKER_URL: REDIS, LOG_LEVEL: 'info' });
    await worker.waitFor(/h4-two@test ready\./, 30_000);
    const doneB = await call(B, 'GET', `/results/${id}?wait=15`);
    assert.equal(doneB.json.state, 'SUCCESS');
    assert.equal(doneB.json.result, 5);
    assert.deepEqual((await call(A, 'GET', `/results/${id}`)).json, doneB.json);
    // the revoked one was taken off the queue without running
    for (let i = 0; i < 100 && ((await redis.llen(QUEUE)) > 0 || (await redis.hlen('unacked')) > 0); i += 1) await new Promise((r) => setTimeout(r, 100));
    assert.equal(await redis.llen(QUEUE), 0, 'the worker consumed the queue');
    await worker.waitFor(new RegExp(`${doomed.json.id}.*revoked|revoked.*${doomed.json.id}`, 'i'), 10_000).catch(() => undefined);
    const doomedA = await call(A, 'GET', `/results/${doomed.json.id}`);
    const doomedB = await call(B, 'GET', `/results/${doomed.json.id}`);
    assert.equal(doomedA.json.state, 'REVOKED', 'the worker did not run the revoked task');
    assert.deepEqual(doomedB.json, doomedA.json);

    // rate limit: a key allowed LIMIT requests a minute gets LIMIT answers in total from A and B together
    const statuses: number[] = [];
    for (let i = 0; i < LIMIT + 6; i += 1) {
      statuses.push((await call(i % 2 === 0 ? A : B, 'GET', `/results/${id}`, undefined, {}, LIMITED_KEY)).status);
    }
    assert.equal(statuses.filter((s) => s === 200).length, LIMIT, `statuses: ${statuses.join(',')}`);
    assert.ok(statuses.slice(LIMIT).every((s) => s === 429), `past the limit, 429 from both: ${statuses.join(',')}`);
  });
});
