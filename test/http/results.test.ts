import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import { startGateway, type TestGateway } from '../support/app.ts';

describe('GET /results/:id (real socket, memory backend)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway(); });
  after(async () => { await gw.close(); });

  it('404s an id nobody submitted', async () => {
    const res = await gw.get('/results/never-seen-1');
    assert.equal(res.status, 404);
    assert.equal(res.json.code, 'GW_ERR_RESULT_NOT_FOUND');
  });

  it('says PENDING for a submitted task without a result', async () => {
    const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'res-q1' } });
    const res = await gw.get(`/results/${json.id}`);
    assert.equal(res.status, 200);
    assert.deepEqual(res.json, { id: json.id, state: 'PENDING', ready: false, result: null, error: null, worker: null, date_done: null, children: [], parent_id: null, group_id: null });
  });

  it('knows its own ids without a record, and records the ids a client chooses', async () => {
    // no submitted-id record for ids the gateway makes: their checksum says they are ours
    const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'res-q1' } });
    assert.equal(await gw.backend.wasSubmitted(json.id), false);
    // an id the client chose cannot carry our checksum: it is recorded
    const chosen = `client-chosen-${Date.now()}`;
    assert.equal((await gw.get(`/results/${chosen}`)).status, 404);
    const sent = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'res-q1', task_id: chosen } });
    assert.equal(sent.json.id, chosen);
    assert.equal(await gw.backend.wasSubmitted(chosen), true);
    const res = await gw.get(`/results/${chosen}`);
    assert.equal(res.status, 200);
    assert.equal(res.json.state, 'PENDING');
    // a one-character typo of one of our ids is a 404
    const typo = json.id.slice(0, 35) + (json.id.endsWith('0') ? '1' : '0');
    assert.equal((await gw.get(`/results/${typo}`)).json.code, 'GW_ERR_RESULT_NOT_FOUND');
    assert.equal((await gw.get(`/results/${typo}/events`)).status, 404);
  });

  it('a workflow records the ids its spec chose, all at once and once each', async () => {
    const calls: string[][] = [];
    const remember = gw.backend.rememberSubmitted.bind(gw.backend);
    gw.backend.rememberSubmitted = async (ids: string[]) => { calls.push([...ids]); return remember(ids); };
    try {
      const stamp = Date.now();
      const [a, b] = [`wf-chosen-a-${stamp}`, `wf-chosen-b-${stamp}`];
      const res = await gw.post('/workflows', { chain: [{ task: 'tasks.add', args: [1, 2], options: { task_id: a } }, { task: 'tasks.add', args: [3], options: { task_id: b } }, { task: 'tasks.add', args: [4] }] });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      // the first step is published now, the others travel in its message: all chosen ids recorded in one call
      assert.deepEqual(calls, [[a, b]]);
      for (const id of [a, b]) assert.equal((await gw.get(`/results/${id}`)).json.state, 'PENDING');
    } finally {
      gw.backend.rememberSubmitted = remember;
    }
  });

  it('returns a stored SUCCESS even for an id it did not submit (e.g. sent by a Python client)', async () => {
    await gw.backend.store(buildMeta({ taskId: 'py-1', status: 'SUCCESS', result: { a: [1, 2] }, now: new Date('2026-01-02T03:04:05.006Z') }));
    const res = await gw.get('/results/py-1');
    assert.equal(res.status, 200);
    assert.equal(res.json.state, 'SUCCESS');
    assert.equal(res.json.ready, true);
    assert.deepEqual(res.json.result, { a: [1, 2] });
    assert.equal(res.json.date_done, '2026-01-02T03:04:05.006000');
  });

  it('describes a FAILURE', async () => {
    await gw.backend.store(buildMeta({ taskId: 'py-2', status: 'FAILURE', result: { exc_type: 'ValueError', exc_message: ['boom'], exc_module: 'builtins' }, traceback: 'Traceback…', now: new Date() }));
    const res = await gw.get('/results/py-2');
    assert.equal(res.json.state, 'FAILURE');
    assert.equal(res.json.result, null);
    assert.equal(res.json.error.type, 'ValueError');
    assert.equal(res.json.error.message, 'boom');
    assert.equal(res.json.error.module, 'builtins');
    assert.equal(res.json.error.traceback, 'Traceback…');
  });

  it('long-polls until the result is stored', async () => {
    const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'res-q2' } });
    const started = Date.now();
    setTimeout(() => { void gw.backend.store(buildMeta({ taskId: json.id, status: 'SUCCESS', result: 3, now: new Date() })); }, 150);
    const res = await gw.get(`/results/${json.id}?wait=5`);
    const took = Date.now() - started;
    assert.equal(res.json.state, 'SUCCESS');
    assert.equal(res.json.result, 3);
    assert.ok(took >= 100 && took < 2000, `took ${took} ms`);
  });

  it('a long-poll ends at the wait with the current state', async () => {
    const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue: 'res-q3' } });
    await gw.backend.store(buildMeta({ taskId: json.id, status: 'STARTED', result: { pid: 1, hostname: 'w1@h' }, now: new Date() }));
    const started = Date.now();
    const res = await gw.get(`/results/${json.id}?wait=0.3`);
    const took = Date.now() - started;
    assert.equal(res.json.state, 'STARTED');
    assert.equal(res.json.worker, 'w1@h');
    assert.ok(took >= 250 && took < 1500, `took ${took} ms`);
  });

  it('refuses a wait over the limit and a malformed id', async () => {
    const tooLong = await gw.get('/results/abc?wait=100000');
    assert.equal(tooLong.status, 400);
    assert.equal(tooLong.json.code, 'GW_ERR_VALIDATION');
    const notNumber = await gw.get('/results/abc?wait=soon');
    assert.equal(notNumber.status, 400);
    const badId = await gw.get('/results/a%20b');
    assert.equal(badId.status, 400);
    assert.equal(badId.json.code, 'GW_ERR_VALIDATION');
  });

  it('closing the gateway ends open long-polls at once', async () => {
    const local = await startGateway();
    const { json } = await local.post('/tasks/tasks.add', { args: [1, 2] });
    const started = Date.now();
    const pending = local.get(`/results/${json.id}?wait=30`);
    await new Promise((r) => setTimeout(r, 100));
    await local.close();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.json.state, 'PENDING');
    assert.ok(Date.now() - started < 5000);
  });
});

describe('MAX_LONG_POLLS', () => {
  it('refuses a long-poll past the limit with 503 GW_ERR_TOO_MANY_WAITS and Retry-After; frees the slot after', async () => {
    const gw = await startGateway({ env: { MAX_LONG_POLLS: '1' } });
    try {
      const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2] });
      const first = gw.get(`/results/${json.id}?wait=0.5`);
      await new Promise((r) => setTimeout(r, 100));
      const second = await gw.get(`/results/${json.id}?wait=0.5`);
      assert.equal(second.status, 503);
      assert.equal(second.json.code, 'GW_ERR_TOO_MANY_WAITS');
      assert.equal(second.headers.get('retry-after'), '1');
      const plain = await gw.get(`/results/${json.id}`);
      assert.equal(plain.status, 200, 'a read without wait needs no slot');
      assert.equal((await first).status, 200);
      assert.equal((await gw.get(`/results/${json.id}?wait=0.1`)).status, 200, 'the slot is free again');
    } finally {
      await gw.close();
    }
  });

  it('a client that goes away ends its long-poll at once: the slot is free and the wait counts as aborted', async () => {
    const gw = await startGateway({ env: { MAX_LONG_POLLS: '1' } });
    try {
      const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2] });
      const gone = new AbortController();
      const abandoned = fetch(`${gw.base}/results/${json.id}?wait=30`, { signal: gone.signal }).catch((err: unknown) => err);
      await new Promise((r) => setTimeout(r, 100));
      assert.equal((await gw.get(`/results/${json.id}?wait=0.1`)).status, 503, 'the slot is taken while the client waits');
      gone.abort();
      assert.equal(((await abandoned) as Error).name, 'AbortError');
      let status = 0;
      for (let i = 0; i < 50 && status !== 200; i += 1) {
        await new Promise((r) => setTimeout(r, 20));
        status = (await gw.get(`/results/${json.id}?wait=0.05`)).status;
      }
      assert.equal(status, 200, 'the slot is free again well before the 30 s wait');
      const metrics = await (await fetch(`${gw.base}/metrics`)).text();
      assert.match(metrics, /celery_gateway_result_waits_total\{outcome="aborted"\} 1\n/);
    } finally {
      await gw.close();
    }
  });
});

describe('GET /results/:id/events (Server-Sent Events)', () => {
  it('streams each state change and ends after the ready state', async () => {
    const gw = await startGateway();
    try {
      const { json } = await gw.post('/tasks/tasks.add', { args: [1, 2] });
      const res = await fetch(`${gw.base}/results/${json.id}/events`);
      assert.equal(res.status, 200);
      assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
      setTimeout(() => { void gw.backend.store(buildMeta({ taskId: json.id, status: 'STARTED', result: { pid: 1, hostname: 'w@h' }, now: new Date() })); }, 50);
      setTimeout(() => { void gw.backend.store(buildMeta({ taskId: json.id, status: 'SUCCESS', result: 3, now: new Date() })); }, 100);
      const text = await res.text(); // resolves only when the server ends the stream
      const events = text.split('\n\n').filter((e) => e.startsWith('event: state')).map((e) => JSON.parse(e.split('\ndata: ')[1] as string));
      assert.deepEqual(events.map((e) => e.state), ['PENDING', 'STARTED', 'SUCCESS']);
      assert.equal(events[2].result, 3);
    } finally {
      await gw.close();
    }
  });

  it('404s an unknown id before streaming', async () => {
    const gw = await startGateway();
    try {
      const res = await gw.get('/results/nobody-1/events');
      assert.equal(res.status, 404);
      assert.equal(res.json.code, 'GW_ERR_RESULT_NOT_FOUND');
    } finally {
      await gw.close();
    }
  });
});

describe('health', () => {
  it('healthz and readyz answer 200 when the adapters are up', async () => {
    const gw = await startGateway();
    try {
      assert.deepEqual((await gw.get('/healthz')).json, { status: 'ok' });
      const ready = await gw.get('/readyz');
      assert.equal(ready.status, 200);
      assert.deepEqual(ready.json, { status: 'ready', checks: { broker: 'ok', backend: 'ok' } });
    } finally {
      await gw.close();
    }
  });
});
