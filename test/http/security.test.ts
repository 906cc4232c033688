import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { hashKey, KeyRing, parseApiKeys } from '../../src/auth/keys.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { parseTaskRoutes } from '../../src/routing.ts';
import { RedisState, type SharedState, MemoryState } from '../../src/state/shared-state.ts';
import { startGateway, type TestGateway } from '../support/app.ts';
import { redisGate } from '../support/python.ts';

const SUBMITTER = 'submitter-key-0123456789';
const READER = 'reader-key-0123456789ab';
const LIMITED = 'limited-key-0123456789ab';
const ADMIN = 'admin-key-0123456789abcd';
const keys = new KeyRing(parseApiKeys(JSON.stringify([
  { name: 'submitter', hash: `sha256:${hashKey(SUBMITTER)}`, scopes: ['submit', 'read'], tasks: ['reports.*', 'tasks.add'], queues: ['celery', 'reports'] },
  { name: 'reader', hash: `sha256:${hashKey(READER)}`, scopes: ['read'] },
  { name: 'limited', hash: `sha256:${hashKey(LIMITED)}`, scopes: ['submit'], rateLimit: 3 },
  { name: 'admin', hash: `sha256:${hashKey(ADMIN)}`, scopes: ['admin'] },
])));
const bearer = (key: string) => ({ authorization: `Bearer ${key}` });

describe('API keys', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway({ keys }); });
  after(async () => { await gw.close(); });

  it('refuses a missing or unknown key with 401 and a code', async () => {
    const none = await gw.post('/tasks/tasks.add', { args: [1, 2] });
    assert.equal(none.status, 401);
    assert.equal(none.json.code, 'GW_ERR_UNAUTHORIZED');
    const wrong = await gw.post('/tasks/tasks.add', { args: [1, 2] }, bearer('not-a-key-at-all-000'));
    assert.equal(wrong.status, 401);
    assert.equal(await gw.broker.queueLength('celery'), 0);
  });

  it('checks scopes: read-only keys cannot submit, submit keys cannot read metrics (admin)', async () => {
    const res = await gw.post('/tasks/tasks.add', { args: [1, 2] }, bearer(READER));
    assert.equal(res.status, 403);
    assert.equal(res.json.code, 'GW_ERR_FORBIDDEN');
    const metrics = await fetch(`${gw.base}/metrics`, { headers: bearer(SUBMITTER) });
    assert.equal(metrics.status, 403);
    assert.equal((await fetch(`${gw.base}/metrics`, { headers: bearer(ADMIN) })).status, 200);
  });

  it('enforces the task-name globs and queue allowlist of a key', async () => {
    assert.equal((await gw.post('/tasks/reports.render', { args: [] }, bearer(SUBMITTER))).status, 202);
    const task = await gw.post('/tasks/billing.charge', { args: [] }, bearer(SUBMITTER));
    assert.equal(task.status, 403);
    assert.match(task.json.message, /may not submit billing\.charge/);
    const queue = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'hipri' } }, bearer(SUBMITTER));
    assert.equal(queue.status, 403);
    assert.match(queue.json.message, /queue hipri/);
    const flower = await gw.post('/api/task/async-apply/tasks.add', { args: [1, 2], queue: 'hipri' }, bearer(SUBMITTER));
    assert.equal(flower.status, 403);
  });

  it('checks the queue a submission is routed to, not only the one it names', async () => {
    // CELERY_TASK_ROUTES (and registry queues) route reports.* to a queue outside the key's allowlist
    const routed = await startGateway({ keys, routes: parseTaskRoutes('{"reports.secret": {"queue": "hipri"}, "reports.fanout": {"exchange": "fan", "routing_key": "x"}}') });
    try {
      const viaRoute = await routed.post('/tasks/reports.secret', { args: [] }, bearer(SUBMITTER));
      assert.equal(viaRoute.status, 403);
      assert.equal(viaRoute.json.code, 'GW_ERR_FORBIDDEN');
      assert.match(viaRoute.json.message, /queue hipri/);
      const flower = await routed.post('/api/task/async-apply/reports.secret', { args: [] }, bearer(SUBMITTER));
      assert.equal(flower.status, 403);
      // an exchange's bindings decide the queue: a key with a queue allowlist cannot publish through one
      const viaExchange = await routed.post('/tasks/tasks.add', { args: [1, 2], options: { exchange: 'amq.direct', routing_key: 'hipri' } }, bearer(SUBMITTER));
      assert.equal(viaExchange.status, 403);
      assert.match(viaExchange.json.message, /exchange amq\.direct/);
      assert.equal((await routed.post('/tasks/reports.fanout', { args: [] }, bearer(SUBMITTER))).status, 403);
      assert.equal(await routed.broker.queueLength('hipri'), 0);
      // naming an allowed queue overrides the route (Celery's precedence), and is allowed
      const own = await routed.post('/tasks/reports.secret', { args: [], options: { queue: 'reports' } }, bearer(SUBMITTER));
      assert.equal(own.status, 202);
      assert.equal(own.json.queue, 'reports');
      // a key without a queue allowlist follows the routes
      const admin = await routed.post('/tasks/reports.secret', { args: [] }, bearer(ADMIN));
      assert.equal(admin.status, 202);
      assert.equal(admin.json.queue, 'hipri');
      assert.equal(await routed.broker.queueLength('hipri'), 1);
    } finally {
      await routed.close();
    }
  });

  it('a valid key reads results; health and OpenAPI stay public', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [1, 2] }, bearer(SUBMITTER));
    const read = await fetch(`${gw.base}/results/${sent.json.id}`, { headers: bearer(READER) });
    assert.equal(read.status, 200);
    assert.equal((await gw.get('/healthz')).status, 200);
    assert.equal((await gw.get('/openapi.json')).status, 200);
  });

  it('rate-limits a key to its per-minute budget with 429, a code and Retry-After', async () => {
    const statuses: number[] = [];
    let last;
    for (let i = 0; i < 5; i += 1) {
      last = await gw.post('/tasks/tasks.add', { args: [i, 0] }, bearer(LIMITED));
      statuses.push(last.status);
    }
    assert.deepEqual(statuses, [202, 202, 202, 429, 429]);
    assert.equal(last!.json.code, 'GW_ERR_RATE_LIMITED');
    assert.ok(Number(last!.headers.get('retry-after')) > 0);
  });

  it('parses key files strictly and never accepts a plain key', () => {
    assert.throws(() => parseApiKeys('[{"name":"x","hash":"plaintext","scopes":["read"]}]'), /sha256/);
    assert.throws(() => parseApiKeys('[{"name":"x","hash":"sha256:' + 'a'.repeat(64) + '","scopes":["root"]}]'), /scopes/);
    assert.throws(() => parseApiKeys('{}'), /array/);
  });
});

function idempotencySuite(name: string, makeState: () => Promise<SharedState>): void {
  describe(`Idempotency-Key (${name})`, () => {
    let a: TestGateway;
    let b: TestGateway;
    let broker: MemoryBroker;
    let state: SharedState;
    before(async () => {
      broker = new MemoryBroker();
      state = await makeState();
      a = await startGateway({ broker, state });
      b = await startGateway({ broker, state }); // a second instance sharing the state
    });
    after(async () => { await a.app.close(); await b.app.close(); await broker.close(); await state.close(); });

    it('two parallel identical requests on two instances publish one message and get the same answer', async () => {
      const key = randomUUID();
      const body = { args: [1, 2], options: { queue: `idem-${key}` } };
      const [r1, r2] = await Promise.all([
        a.post('/tasks/tasks.add', body, { 'idempotency-key': key }),
        b.post('/tasks/tasks.add', body, { 'idempotency-key': key }),
      ]);
      assert.equal(r1.status, 202);
      assert.equal(r2.status, 202);
      assert.equal(r1.json.id, r2.json.id);
      assert.equal(await broker.queueLength(`idem-${key}`), 1);
      const again = await a.post('/tasks/tasks.add', body, { 'idempotency-key': key });
      assert.equal(again.json.id, r1.json.id);
      assert.equal(again.headers.get('idempotent-replayed'), 'true');
      assert.equal(await broker.queueLength(`idem-${key}`), 1);
    });

    it('the same key with another body is a 422; a refused request can be retried', async () => {
      const key = randomUUID();
      await a.post('/tasks/tasks.add', { args: [1, 2] }, { 'idempotency-key': key });
      const other = await a.post('/tasks/tasks.add', { args: [9, 9] }, { 'idempotency-key': key });
      assert.equal(other.status, 422);
      assert.equal(other.json.code, 'GW_ERR_IDEMPOTENCY_MISMATCH');
      const key2 = randomUUID();
      const bad = await a.post('/tasks/tasks.add', { args: [1], options: { eta: 'nope' } }, { 'idempotency-key': key2 });
      assert.equal(bad.status, 400);
      const good = await a.post('/tasks/tasks.add', { args: [1], options: { eta: 'nope' } }, { 'idempotency-key': key2 });
      assert.equal(good.status, 400, 'not replayed: the refusal published nothing, the retry is evaluated again');
    });
  });
}

idempotencySuite('memory', async () => new MemoryState());
const redisSkip = await redisGate('redis://127.0.0.1:6379/6');
if (redisSkip) describe('Idempotency-Key (redis)', { skip: redisSkip }, () => {});
else idempotencySuite('redis', async () => new RedisState(new Redis('redis://127.0.0.1:6379/6')));
