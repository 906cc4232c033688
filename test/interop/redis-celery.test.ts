/**
 * The core promise, on Redis: our gateway's messages are run by a REAL Python Celery 5.2.6 worker, and
 * a REAL Python Celery client calls our Node worker and reads its results.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { TaskRegistry, type TaskContext } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { celeryGate, redisGate, runCeleryClient, startCeleryWorker, type CeleryWorker } from '../support/python.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/13';
const urls = { brokerUrl: REDIS_URL, backendUrl: REDIS_URL };
const skip = (await celeryGate()) || (await redisGate(REDIS_URL));
const tag = `${process.pid}-${Date.now().toString(36)}`;

class TsWorkerError extends Error {
  override name = 'TsWorkerError';
}

describe('gateway → Redis → real Python Celery worker', { skip }, () => {
  const queue = `interop-py-${tag}`;
  let py: CeleryWorker;
  let gw: TestGateway;

  before(async () => {
    py = await startCeleryWorker({ ...urls, queues: [queue], concurrency: 2 });
    gw = await startGateway({ broker: new RedisBroker({ url: REDIS_URL, logger: silentLogger }), backend: new RedisBackend({ url: REDIS_URL, logger: silentLogger }) });
  });
  after(async () => {
    await gw?.close();
    await py?.stop();
  });

  it('runs tasks.add and GET /results/:id returns the value', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [2, 3], options: { queue } });
    assert.equal(sent.status, 202);
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'SUCCESS', `${JSON.stringify(res.json)}\n${py.logs()}`);
    assert.equal(res.json.result, 5);
  });

  it('passes kwargs and honours countdown', async () => {
    const started = Date.now();
    const sent = await gw.post('/tasks/tasks.echo', { args: [1, 'two'], kwargs: { k: [1, 2], s: 'é' }, options: { queue, countdown: 1 } });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'SUCCESS', py.logs());
    assert.deepEqual(res.json.result, { args: [1, 'two'], kwargs: { k: [1, 2], s: 'é' } });
    assert.ok(Date.now() - started >= 900, 'not run before its countdown');
  });

  it('shows a failing Python task with its error type and message', async () => {
    const sent = await gw.post('/tasks/tasks.fail', { options: { queue } });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'FAILURE');
    assert.equal(res.json.error.type, 'ValueError');
    assert.equal(res.json.error.module, 'builtins');
    assert.equal(res.json.error.message, 'boom');
    assert.match(res.json.error.traceback, /Traceback/);
  });

  it('POST /tasks/:id/revoke is obeyed by the Python worker (broadcast on the pidbox)', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [1, 1], options: { queue, countdown: 2 } });
    await new Promise((r) => setTimeout(r, 500)); // the worker holds it until its eta
    const revoked = await gw.post(`/tasks/${sent.json.id}/revoke`, {});
    assert.equal(revoked.status, 202);
    assert.deepEqual(revoked.json, { id: sent.json.id, revoked: true, terminate: false, signal: 'SIGTERM' });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'REVOKED', py.logs());
    assert.equal(res.json.error.type, 'TaskRevokedError');
    assert.equal(res.json.error.message, 'revoked');
  });

  it('a task published with an expiry in the past of the worker is REVOKED "expired"', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [1, 1], options: { queue, countdown: 1.5, expires: 0.5 } });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'REVOKED');
    assert.equal(res.json.error.type, 'TaskRevokedError');
    assert.equal(res.json.error.message, 'expired');
  });
});

describe('real Python Celery client → Redis → our Node worker', { skip }, () => {
  const queue = `interop-node-${tag}`;
  let releaseProgress: (() => void) | undefined;
  let worker: Worker;
  let broker: RedisBroker;
  let backend: RedisBackend;

  before(async () => {
    broker = new RedisBroker({ url: REDIS_URL, logger: silentLogger });
    backend = new RedisBackend({ url: REDIS_URL, logger: silentLogger });
    const registry = new TaskRegistry().registerAll({
      'tasks.add': (x: number, y: number) => x + y,
      'tasks.echo': (...params: unknown[]) => {
        const ctx = params.pop() as TaskContext;
        return { args: params, kwargs: ctx.kwargs, retries: ctx.retries };
      },
      'tasks.fail': () => { throw new TsWorkerError('it broke in node'); },
      'tasks.type_error': () => { throw new TypeError('wrong type'); },
      'tasks.retry_once': (value: number, ctx: TaskContext) => (ctx.retries === 0 ? ctx.retry({ countdown: 2, exc: new Error('transient') }) : value),
      'tasks.progress': async (ctx: TaskContext) => {
        await ctx.updateState('PROGRESS', { current: 1, total: 2 });
        await new Promise<void>((resolve) => { releaseProgress = resolve; });
        return 'done';
      },
    });
    worker = new Worker({ broker, backend, registry, queues: [queue], concurrency: 4, prefetchMultiplier: 4, hostname: `interop.${process.pid}@test`, logger: silentLogger, shutdownTimeout: 5 });
    await worker.start();
  });
  after(async () => {
    await worker?.close();
    await broker?.close();
    await backend?.close();
  });

  it('AsyncResult.get() returns the value our handler computed', async () => {
    const r = await runCeleryClient(['send', 'tasks.add', '2', '3', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.state, 'SUCCESS');
    assert.equal(r.json.result, 5);
  });

  it("AsyncResult shows a handler's custom state (ctx.updateState) with its meta, then the outcome", async () => {
    const id = `progress-${tag}`;
    const sent = await runCeleryClient(['send', 'tasks.progress', '--queue', queue, '--task-id', id, '--no-wait'], urls);
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    let state = await runCeleryClient(['state', id], urls);
    for (const until = Date.now() + 20_000; state.json?.state !== 'PROGRESS' && Date.now() < until;) state = await runCeleryClient(['state', id], urls);
    assert.equal(state.json.state, 'PROGRESS', state.stdout + state.stderr);
    assert.deepEqual(state.json.meta.result, { current: 1, total: 2 });
    releaseProgress?.();
    const done = await runCeleryClient(['get', id, '--timeout', '20'], urls);
    assert.equal(done.json.state, 'SUCCESS', done.stdout + done.stderr);
    assert.equal(done.json.result, 'done');
  });

  it('receives args and kwargs as Python sent them', async () => {
    const r = await runCeleryClient(['send', 'tasks.echo', '1', 'two', 'x=3', 'y={"a":1}', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.deepEqual(r.json.result, { args: [1, 'two'], kwargs: { x: 3, y: { a: 1 } }, retries: 0 });
  });

  it('a handler that throws makes Python raise an exception of that name', async () => {
    const r = await runCeleryClient(['send', 'tasks.fail', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 1);
    assert.equal(r.json.state, 'FAILURE');
    assert.equal(r.json.exception.type, 'TsWorkerError');
    assert.deepEqual(r.json.exception.message, ['it broke in node']);
    assert.match(r.json.traceback, /TsWorkerError: it broke in node/);
  });

  it('a JS TypeError becomes the Python builtin TypeError', async () => {
    const r = await runCeleryClient(['send', 'tasks.type_error', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 1);
    assert.equal(r.json.exception.type, 'TypeError');
    assert.equal(r.json.exception.module, 'builtins');
  });

  it('a Node handler that retries: the Python client sees RETRY, then gets the value of the second run', async () => {
    const sent = await runCeleryClient(['send', 'tasks.retry_once', '7', '--queue', queue, '--no-wait'], urls);
    assert.equal(sent.code, 0, sent.stdout + sent.stderr);
    let state = '';
    for (let i = 0; i < 20 && state !== 'RETRY'; i += 1) state = (await runCeleryClient(['state', sent.json.id], urls)).json.state;
    assert.equal(state, 'RETRY', 'the Python client reads the RETRY state during the 2 s countdown');
    const got = await runCeleryClient(['get', sent.json.id, '--timeout', '20'], urls);
    assert.equal(got.code, 0, got.stdout + got.stderr);
    assert.equal(got.json.result, 7);
  });

  it('celery inspect: ping and registered list our Node worker (pidbox on Redis)', async () => {
    const ping = await runCeleryClient(['ping', '--timeout', '2'], urls);
    const replies = Object.assign({}, ...(ping.json.replies as object[]));
    assert.deepEqual(replies[`interop.${process.pid}@test`], { ok: 'pong' }, ping.stdout);
    const registered = await runCeleryClient(['inspect', 'registered'], urls);
    assert.ok(registered.json.registered[`interop.${process.pid}@test`].includes('tasks.retry_once'), registered.stdout);
  });

  it('an unregistered task fails with NotRegistered, as a Python worker does', async () => {
    const r = await runCeleryClient(['send', 'tasks.nope', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 1);
    assert.equal(r.json.exception.type, 'NotRegistered');
    assert.equal(r.json.exception.module, 'celery.exceptions');
  });
});
