/**
 * Worker behaviours, run on every broker/backend pair (memory here, the real Redis in test/integration).
 * Each test uses its own queue.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { PIDBOX_EXCHANGE, revokeMessage } from '../../src/protocol/control.ts';
import { buildTaskMessage, type TaskCall } from '../../src/protocol/message.ts';
import type { JsonObject, ResultMeta } from '../../src/protocol/types.ts';
import { TaskRegistry, type TaskContext } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';

export interface Adapters {
  broker: Broker;
  backend: ResultBackend;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Poll `done` every 10 ms until it holds or `ms` pass (the assertion after it says what was expected). */
async function until(done: () => boolean, ms = 2000): Promise<void> {
  for (const end = Date.now() + ms; !done() && Date.now() < end;) await sleep(10);
}

/** gates a running tasks.progress waits on: open one to let it finish */
const gates = new Map<string, () => void>();

function registry(log: string[]): TaskRegistry {
  return new TaskRegistry().registerAll({
    'tasks.multiply': (x: number, y: number) => x * y,
    'tasks.fail': () => { throw new TypeError('bad input'); },
    'tasks.record': (value: string, ctx: TaskContext) => { log.push(`${value}@${ctx.retries}`); return value; },
    'tasks.kw': (...params: unknown[]) => {
      const ctx = params.pop() as TaskContext;
      return { args: params, kwargs: ctx.kwargs, id: ctx.id };
    },
    'tasks.slow': async (ms: number, ctx: TaskContext) => {
      await new Promise<void>((resolve) => { const t = setTimeout(resolve, ms); ctx.signal.addEventListener('abort', () => clearTimeout(t)); });
      return ms;
    },
    'tasks.hang': { handler: () => new Promise(() => {}), timeLimit: 0.2 },
    'tasks.soft': async (_: unknown, ctx: TaskContext) => {
      await new Promise((resolve) => ctx.signal.addEventListener('abort', resolve, { once: true }));
      return `cleaned up after ${(ctx.signal.reason as Error).name}`;
    },
    'tasks.bigint': () => 10n,
    'tasks.flaky': (key: string, ctx: TaskContext) => {
      log.push(`${key}@${ctx.retries}`);
      if (ctx.retries === 0) ctx.retry({ countdown: 0.1, exc: new Error('transient') });
      return ctx.retries;
    },
    'tasks.always_type_error': {
      handler: (key: string) => { log.push(key); throw new TypeError('still broken'); },
      autoretryFor: [TypeError], maxRetries: 2, retryDelay: 0.05,
    },
    // destructures its context, as handlers do: its members work unbound
    'tasks.retry_forever': (key: string, { retry }: TaskContext) => { log.push(key); return retry({ countdown: 0.01, maxRetries: 1 }); },
    // refuses its first delivery, then runs
    'tasks.reject': (key: string, requeue: boolean, ctx: TaskContext) => {
      log.push(key);
      const runs = log.filter((k) => k === key).length;
      if (runs === 1) ctx.reject({ requeue, reason: 'poison' });
      return `ran ${runs} times`;
    },
    'tasks.progress': async (gate: string, { updateState }: TaskContext) => {
      await updateState('PROGRESS', { current: 1, total: 2 });
      await new Promise<void>((resolve) => gates.set(gate, resolve));
      await updateState('PROGRESS', { current: 2, total: 2 });
      return 'done';
    },
    // sets its own final state, then ends without an outcome
    'tasks.skip': async (key: string, ctx: TaskContext) => {
      log.push(key);
      await ctx.updateState('SKIPPED', { why: 'nothing to do' });
      return ctx.ignore();
    },
    // acked when it starts: a rejection cannot requeue it
    'tasks.reject_acked': { handler: (key: string, ctx: TaskContext) => { log.push(key); return ctx.reject({ requeue: true }); }, acksLate: false },
  });
}

function call(task: string, args: unknown[], extra: Partial<TaskCall> = {}): TaskCall {
  return { task, id: randomUUID(), args: args as TaskCall['args'], kwargs: {}, origin: 'test@host', replyTo: randomUUID(), ...extra };
}

async function result(backend: ResultBackend, id: string, ms = 5000): Promise<ResultMeta> {
  const meta = await waitForResult(backend, id, ms);
  assert.ok(meta, `a result for ${id}`);
  return meta;
}

export function workerSuite(name: string, make: () => Promise<Adapters>): void {
  describe(`worker on ${name}`, () => {
    let a: Adapters;
    const log: string[] = [];
    const workers: Worker[] = [];
    const start = async (queue: string, concurrency = 4, extra: { taskEvents?: boolean } = {}) => {
      const w = new Worker({
        broker: a.broker, backend: a.backend, registry: registry(log), queues: [queue], concurrency,
        prefetchMultiplier: 2, hostname: `test.${process.pid}@host`, logger: silentLogger, shutdownTimeout: 2, ...extra,
      });
      await w.start();
      workers.push(w);
      return w;
    };
    const publish = (queue: string, c: TaskCall) => a.broker.publish(buildTaskMessage(c, new Date()), { queue });
    /** a gateway on the same adapters for the length of `use` */
    const withGateway = async (use: (gw: TestGateway) => Promise<void>): Promise<void> => {
      const gw = await startGateway({ broker: a.broker, backend: a.backend });
      try {
        await use(gw);
      } finally {
        await gw.app.close();
      }
    };

    before(async () => { a = await make(); });
    after(async () => {
      await Promise.all(workers.map((w) => w.close()));
      await a.broker.close();
      await a.backend.close();
    });

    it('gateway → broker → worker → GET /results gives 20', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      await withGateway(async (gw) => {
        const sent = await gw.post('/tasks/tasks.multiply', { args: [4, 5], options: { queue: q } });
        assert.equal(sent.status, 202);
        const res = await gw.get(`/results/${sent.json.id}?wait=5`);
        assert.equal(res.json.state, 'SUCCESS');
        assert.equal(res.json.result, 20);
        assert.match(res.json.date_done, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?$/);
      });
    });

    it('stores STARTED then SUCCESS in Celery format, with kwargs and context', async () => {
      const q = `wq-${randomUUID()}`;
      const c = call('tasks.kw', [1, 'two'], { kwargs: { k: [1, 2] } });
      const seen: string[] = [];
      const unlisten = await a.backend.listen(c.id, (m) => seen.push(m.status));
      await start(q);
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      // the result can be read before the subscriber connection has delivered its messages: give them 2 s
      await until(() => seen.length >= 2);
      unlisten();
      assert.equal(meta.status, 'SUCCESS');
      assert.deepEqual(meta.result, { args: [1, 'two'], kwargs: { k: [1, 2] }, id: c.id });
      assert.equal(meta.task_id, c.id);
      assert.deepEqual(meta.children, []);
      assert.equal(meta.traceback, null);
      assert.deepEqual(seen, ['STARTED', 'SUCCESS']);
      assert.equal(await a.broker.queueLength(q), 0);
    });

    it('a thrown error is stored as FAILURE with exc_type / exc_message / exc_module', async () => {
      const q = `wq-${randomUUID()}`;
      const c = call('tasks.fail', []);
      await start(q);
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'FAILURE');
      assert.deepEqual(meta.result, { exc_type: 'TypeError', exc_message: ['bad input'], exc_module: 'builtins' });
      assert.match(meta.traceback ?? '', /TypeError: bad input/);
    });

    it('an unregistered task stores NotRegistered and the message is dropped', async () => {
      const q = `wq-${randomUUID()}`;
      const c = call('tasks.does_not_exist', []);
      await start(q);
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'FAILURE');
      assert.deepEqual(meta.result, { exc_type: 'NotRegistered', exc_message: ['tasks.does_not_exist'], exc_module: 'celery.exceptions' });
      await sleep(50);
      assert.equal(await a.broker.queueLength(q), 0);
    });

    it('a malformed message is rejected and the worker keeps serving', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      await a.broker.publish({ headers: { task: 'tasks.multiply', id: 'x' }, properties: {}, contentType: 'application/json', contentEncoding: 'utf-8', body: '{"not": "a v2 body"}' }, { queue: q });
      await a.broker.publish({ headers: { task: 'tasks.multiply', id: 'y' }, properties: {}, contentType: 'application/x-python-serialize', contentEncoding: 'binary', body: 'cos\nsystem\n(S"echo pwned"\ntR.' }, { queue: q });
      const c = call('tasks.multiply', [6, 7]);
      await publish(q, c);
      assert.equal((await result(a.backend, c.id)).result, 42);
      assert.equal(await a.backend.get('x'), null);
      assert.equal(await a.backend.get('y'), null);
      assert.equal(await a.broker.queueLength(q), 0);
    });

    it('honours eta: not run before it, without blocking other tasks', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q, 1);
      const later = call('tasks.record', [`eta-${q}`], { eta: new Date(Date.now() + 400) });
      const now = call('tasks.multiply', [2, 3]);
      const published = Date.now();
      await publish(q, later);
      await publish(q, now);
      assert.equal((await result(a.backend, now.id)).result, 6);
      assert.ok(Date.now() - published < 350, 'the task without eta ran first');
      assert.ok(!log.includes(`eta-${q}@0`));
      const meta = await result(a.backend, later.id);
      assert.equal(meta.status, 'SUCCESS');
      assert.ok(Date.now() - published >= 390, `ran after ${Date.now() - published} ms`);
    });

    it('an expired task is stored REVOKED "expired" and never runs', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.record', [`exp-${q}`], { expires: new Date(Date.now() - 1000) });
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'REVOKED');
      assert.deepEqual(meta.result, { exc_type: 'TaskRevokedError', exc_message: ['expired'], exc_module: 'celery.exceptions' });
      assert.ok(!log.some((l) => l.startsWith(`exp-${q}`)));
    });

    it('hard time limit fails the task with TimeLimitExceeded; soft limit aborts the signal', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const hang = call('tasks.hang', []);
      const soft = call('tasks.soft', [null], { timeLimit: [null, 0.1] });
      await publish(q, hang);
      await publish(q, soft);
      const hard = await result(a.backend, hang.id);
      assert.equal(hard.status, 'FAILURE');
      assert.equal((hard.result as { exc_type: string }).exc_type, 'TimeLimitExceeded');
      const s = await result(a.backend, soft.id);
      assert.equal(s.status, 'SUCCESS');
      assert.equal(s.result, 'cleaned up after SoftTimeLimitExceeded');
    });

    it('a result that is not JSON is stored as a FAILURE, not lost', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.bigint', []);
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'FAILURE');
      assert.match(JSON.stringify(meta.result), /not JSON serializable/);
    });

    it('ctx.retry republishes the same id with retries + 1 and stores RETRY, then SUCCESS (parent_id = own id)', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.flaky', [q]);
      const seen: ResultMeta[] = [];
      const unlisten = await a.backend.listen(c.id, (m) => seen.push(m));
      await publish(q, c);
      const meta = await result(a.backend, c.id);
      unlisten();
      assert.equal(meta.status, 'SUCCESS');
      assert.equal(meta.result, 1, 'the second run saw retries = 1');
      assert.equal(meta.parent_id, c.id);
      assert.deepEqual(seen.map((m) => m.status), ['STARTED', 'RETRY', 'STARTED', 'SUCCESS']);
      const retry = seen[1]!;
      assert.deepEqual(retry.result, { exc_type: 'Error', exc_message: ['transient'], exc_module: 'celery_gateway.errors' });
      assert.deepEqual(retry.children, [[[c.id, null], null]]);
      assert.deepEqual(log.filter((l) => l.startsWith(q)), [`${q}@0`, `${q}@1`]);
    });

    it('autoretryFor retries up to maxRetries, then stores the original error', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.always_type_error', [`auto-${q}`]);
      await publish(q, c);
      const meta = await waitForResult(a.backend, c.id, 5000).then(async (m) => (m?.status === 'FAILURE' ? m : result(a.backend, c.id)));
      assert.equal(meta.status, 'FAILURE');
      assert.deepEqual(meta.result, { exc_type: 'TypeError', exc_message: ['still broken'], exc_module: 'builtins' });
      assert.equal(log.filter((l) => l === `auto-${q}`).length, 3, 'first run + 2 retries');
    });

    it('a retry past the limit without an error fails with MaxRetriesExceededError', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.retry_forever', [`max-${q}`]);
      await publish(q, c);
      let meta = await result(a.backend, c.id);
      for (let i = 0; i < 50 && meta.status !== 'FAILURE'; i += 1) meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'FAILURE');
      assert.equal((meta.result as { exc_type: string }).exc_type, 'MaxRetriesExceededError');
      assert.equal(log.filter((l) => l === `max-${q}`).length, 2);
    });

    it('ctx.updateState stores a custom state with its meta, which GET /results shows until the outcome', async () => {
      const q = `wq-${randomUUID()}`;
      const gate = `gate-${q}`;
      const c = call('tasks.progress', [gate]);
      const seen: [string, unknown][] = [];
      const unlisten = await a.backend.listen(c.id, (m) => seen.push([m.status, m.result]));
      await start(q);
      try {
        await withGateway(async (gw) => {
          await publish(q, c);
          await until(() => gates.has(gate), 5000);
          const running = await gw.get(`/results/${c.id}`);
          assert.equal(running.json.state, 'PROGRESS');
          assert.equal(running.json.ready, false);
          assert.deepEqual(running.json.result, { current: 1, total: 2 });
          gates.get(gate)?.();
          const meta = await result(a.backend, c.id);
          assert.equal(meta.status, 'SUCCESS');
          assert.equal(meta.result, 'done');
          await until(() => seen.length >= 4);
          assert.deepEqual(seen.map(([status]) => status), ['STARTED', 'PROGRESS', 'PROGRESS', 'SUCCESS']);
          assert.deepEqual(seen[2]?.[1], { current: 2, total: 2 });
        });
      } finally {
        unlisten();
        gates.get(gate)?.();
      }
    });

    it('ctx.ignore: acked, nothing stored over the state the handler set, the worker keeps serving', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      await withGateway(async (gw) => {
        const c = call('tasks.skip', [`skip-${q}`]);
        await publish(q, c);
        const next = call('tasks.multiply', [3, 3]);
        await publish(q, next);
        assert.equal((await result(a.backend, next.id)).result, 9);
        await sleep(100);
        const res = await gw.get(`/results/${c.id}`);
        assert.equal(res.json.state, 'SKIPPED');
        assert.deepEqual(res.json.result, { why: 'nothing to do' });
        assert.equal(log.filter((k) => k === `skip-${q}`).length, 1, 'acked: not run again');
        assert.equal(await a.broker.queueLength(q), 0);
      });
    });

    it('ctx.reject: nothing stored, the message dropped or requeued, task-rejected sent; the worker keeps serving', async () => {
      const q = `wq-${randomUUID()}`;
      const events: JsonObject[] = [];
      const stop = await a.broker.listenBroadcast('celeryev', `wq-ev-${randomUUID()}`, (m) => { events.push(JSON.parse(m.body) as JsonObject); });
      try {
        await start(q, 4, { taskEvents: true });
        const dropped = call('tasks.reject', [`drop-${q}`, false]);
        const requeued = call('tasks.reject', [`requeue-${q}`, true]);
        await publish(q, dropped);
        await publish(q, requeued);
        // the requeued message is delivered again and runs
        const meta = await result(a.backend, requeued.id);
        assert.equal(meta.status, 'SUCCESS');
        assert.equal(meta.result, 'ran 2 times');
        const acked = call('tasks.reject_acked', [`acked-${q}`]);
        await publish(q, acked);
        const next = call('tasks.multiply', [2, 3]);
        await publish(q, next);
        assert.equal((await result(a.backend, next.id)).result, 6);
        await sleep(100);
        assert.equal(log.filter((k) => k === `acked-${q}`).length, 1, 'an acked message is not requeued');
        // the dropped one ran once and has no outcome (STARTED at most, as in Celery)
        assert.equal(log.filter((k) => k === `drop-${q}`).length, 1);
        assert.ok([undefined, 'STARTED'].includes((await a.backend.get(dropped.id))?.status), JSON.stringify(await a.backend.get(dropped.id)));
        assert.equal(await a.broker.queueLength(q), 0);
        // events reach listenBroadcast on the memory broker (on Redis they travel on topic channels, which
        // test/interop/events-celery.test.ts reads with Celery's own receiver)
        if (name === 'memory') {
          const rejected = () => events.filter((e) => e['type'] === 'task-rejected').map((e) => `${String(e['uuid'])} ${String(e['requeue'])}`).sort();
          await until(() => rejected().length >= 2);
          assert.deepEqual(rejected(), [`${dropped.id} false`, `${requeued.id} true`].sort());
        }
      } finally {
        await stop();
      }
    });

    it('obeys a pidbox revoke with terminate: the running handler is aborted and REVOKED is stored', async () => {
      const q = `wq-${randomUUID()}`;
      await start(q);
      const c = call('tasks.slow', [5000]);
      await publish(q, c);
      let started = false;
      for (let i = 0; i < 100 && !started; i += 1) { started = (await a.backend.get(c.id))?.status === 'STARTED'; await sleep(10); }
      assert.ok(started, 'the task is running');
      const t0 = Date.now();
      await a.broker.broadcast(revokeMessage(c.id, { terminate: true, signal: 'SIGTERM' }, new Date()), PIDBOX_EXCHANGE);
      const meta = await result(a.backend, c.id);
      assert.equal(meta.status, 'REVOKED');
      assert.deepEqual(meta.result, { exc_type: 'TaskRevokedError', exc_message: ['terminated'], exc_module: 'celery.exceptions' });
      assert.ok(Date.now() - t0 < 2000, 'aborted, not run to its end');
    });

    it('runs at most `concurrency` tasks at once', async () => {
      const q = `wq-${randomUUID()}`;
      const w = await start(q, 2);
      const calls = Array.from({ length: 5 }, () => call('tasks.slow', [150]));
      for (const c of calls) await publish(q, c);
      await sleep(60);
      assert.equal(w.stats.active, 2);
      const started = Date.now();
      for (const c of calls) assert.equal((await result(a.backend, c.id)).result, 150);
      assert.ok(Date.now() - started >= 250, 'three rounds of 150 ms at concurrency 2');
    });

    it('warm shutdown finishes running tasks and returns unstarted ones to the queue', async () => {
      const q = `wq-${randomUUID()}`;
      const w = await start(q, 1);
      const running = call('tasks.slow', [200]);
      const queued = [call('tasks.multiply', [1, 1]), call('tasks.multiply', [2, 2])];
      await publish(q, running);
      for (const c of queued) await publish(q, c);
      await sleep(80);
      await w.close();
      assert.equal((await a.backend.get(running.id))?.status, 'SUCCESS');
      for (const c of queued) assert.equal(await a.backend.get(c.id), null);
      assert.equal(await a.broker.queueLength(q), 2);
      await start(q, 1);
      for (const c of queued) assert.equal((await result(a.backend, c.id)).status, 'SUCCESS');
    });
  });
}
