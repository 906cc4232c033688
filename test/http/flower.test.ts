import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';

describe("Flower API aliases (shapes from Flower's documented examples) and GET /queues", () => {
  let gw: TestGateway;
  let worker: Worker;
  before(async () => {
    gw = await startGateway();
    const registry = new TaskRegistry().registerAll({
      'tasks.add': (x: number, y: number) => x + y,
      'tasks.fail': () => { const e = new Error('boom'); e.name = 'ValueError'; throw e; },
    });
    worker = new Worker({ broker: gw.broker, backend: gw.backend, registry, queues: ['celery', 'flower-q'], concurrency: 2, prefetchMultiplier: 1, hostname: 'flower-test@host', logger: silentLogger, shutdownTimeout: 1 });
    await worker.start();
  });
  after(async () => { await worker.close(); await gw.close(); });

  it('POST /api/task/async-apply/:name → {"task-id", "state": "PENDING"}', async () => {
    const res = await gw.post('/api/task/async-apply/tasks.add', { args: [1, 2] });
    assert.equal(res.status, 200);
    assert.deepEqual(Object.keys(res.json).sort(), ['state', 'task-id']);
    assert.equal(res.json.state, 'PENDING');
    const result = await gw.get(`/api/task/result/${res.json['task-id']}?timeout=5`);
    assert.deepEqual(result.json, { 'task-id': res.json['task-id'], state: 'SUCCESS', result: 3 });
  });

  it('POST /api/task/send-task/:name takes options at the top level (Flower date format too)', async () => {
    const eta = new Date(Date.now() + 300).toISOString().replace('T', ' ').replace('Z', '000');
    const res = await gw.post('/api/task/send-task/tasks.add', { args: [2, 2], queue: 'flower-q', eta });
    assert.equal(res.status, 200, JSON.stringify(res.json));
    const result = await gw.get(`/api/task/result/${res.json['task-id']}?timeout=5`);
    assert.equal(result.json.result, 4);
  });

  it('POST /api/task/apply/:name waits: {"task-id", "state", "result"}; a failure carries the repr and traceback', async () => {
    const ok = await gw.post('/api/task/apply/tasks.add', { args: [1, 2] });
    assert.deepEqual(ok.json, { 'task-id': ok.json['task-id'], state: 'SUCCESS', result: 3 });
    const bad = await gw.post('/api/task/apply/tasks.fail', {});
    assert.equal(bad.json.state, 'FAILURE');
    assert.equal(bad.json.result, "ValueError('boom')");
    assert.match(bad.json.traceback, /boom/);
  });

  it('GET /api/task/result/:id without timeout answers the current state only', async () => {
    const res = await gw.get('/api/task/result/unknown-id-1');
    assert.deepEqual(res.json, { 'task-id': 'unknown-id-1', state: 'PENDING' });
  });

  it('refuses a non-array args and unknown options with our 400 JSON error', async () => {
    const res = await gw.post('/api/task/async-apply/tasks.add', { args: 3 });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'GW_ERR_VALIDATION');
    const unknown = await gw.post('/api/task/async-apply/tasks.add', { retry_policy: {} });
    assert.equal(unknown.status, 400);
  });

  it('GET /api/queues/length and GET /queues list the known queues with their depth', async () => {
    await worker.close();
    await gw.post('/tasks/tasks.add', { args: [1, 1], options: { queue: 'flower-q' } });
    await gw.post('/tasks/tasks.add', { args: [1, 1], options: { queue: 'flower-q' } });
    const flower = await gw.get('/api/queues/length');
    assert.deepEqual(flower.json.active_queues.find((q: any) => q.name === 'flower-q'), { name: 'flower-q', messages: 2 });
    const ours = await gw.get('/queues?names=other-q');
    assert.deepEqual(ours.json.queues.map((q: any) => q.name), ['celery', 'flower-q', 'other-q']);
    assert.equal(ours.json.queues[1].messages, 2);
  });
});
