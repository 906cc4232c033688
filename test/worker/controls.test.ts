/**
 * Worker controls: Celery events (worker-* always, task-* with -E or enable_events), per-task rate limits
 * (token bucket, other tasks not delayed, `rate_limit` command), `time_limit` and `shutdown` commands,
 * the poison size cap, and acksLate on the memory broker and the real Redis (db 1).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { RedisBackend } from '../../src/backends/redis.ts';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { controlRequest, PIDBOX_EXCHANGE, REPLY_EXCHANGE } from '../../src/protocol/control.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import type { Json, JsonObject, ResultMeta } from '../../src/protocol/types.ts';
import { TaskRegistry, type TaskContext, type TaskModule } from '../../src/worker/registry.ts';
import { Worker, type WorkerOptions } from '../../src/worker/worker.ts';
import { silentLogger } from '../support/app.ts';
import { redisGate, redisUrl } from '../support/services.ts';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function until(check: () => Promise<boolean>, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    assert.ok(Date.now() < deadline, 'timed out');
    await sleep(10);
  }
}
let HOST = '';

function publish(broker: Broker, queue: string, task: string, args: Json[] = [], id = randomUUID()): Promise<string> {
  const message = buildTaskMessage({ task, id, args, kwargs: {}, origin: 'test@host', replyTo: randomUUID() }, new Date());
  return broker.publish(message, { queue }).then(() => id);
}

async function result(backend: ResultBackend, id: string, ms = 5000): Promise<ResultMeta> {
  const meta = await waitForResult(backend, id, ms);
  assert.ok(meta, `a result for ${id}`);
  return meta;
}

/** One remote-control command, as `app.control.<method>(…, reply=True)` sends it; the replies. */
async function control(broker: Broker, method: string, args: JsonObject): Promise<Json[]> {
  const oid = randomUUID();
  const ticket = randomUUID();
  const replies = await broker.gatherReplies(REPLY_EXCHANGE, oid, `${oid}.reply.celery.pidbox`, 300, () =>
    broker.broadcast(controlRequest(method, args, oid, ticket, new Date(), 1), PIDBOX_EXCHANGE));
  return replies.map((r) => (JSON.parse(r.body) as JsonObject)[HOST] ?? null);
}

const workers: Worker[] = [];

/** A worker with its own node name (HOST, which control() addresses); closed after the file at the latest. */
function makeWorker(broker: Broker, backend: ResultBackend, queue: string, tasks: TaskModule, extra: Partial<WorkerOptions> = {}): Worker {
  HOST = `h1-${queue}.${process.pid}@test`;
  const w = new Worker({
    broker, backend, registry: new TaskRegistry().registerAll(tasks), queues: [queue], concurrency: 4, prefetchMultiplier: 4,
    hostname: HOST, logger: silentLogger, shutdownTimeout: 2, ...extra,
  });
  workers.push(w);
  return w;
}

describe('worker controls on memory', () => {
  let broker: MemoryBroker;
  let backend: MemoryBackend;
  before(() => {
    broker = new MemoryBroker();
    backend = new MemoryBackend({ submittedTtlSec: 3600 });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await broker.close();
  });

  it('sends worker-online, heartbeats and worker-offline always; task events only once enabled', async () => {
    const events: JsonObject[] = [];
    const stop = await broker.listenBroadcast('celeryev', 'h1-ev', (m) => { events.push(JSON.parse(m.body) as JsonObject); });
    const queue = 'h1-events';
    const w = makeWorker(broker, backend, queue, {
      'tasks.add': (x: number, y: number) => x + y,
      'tasks.fail': () => { throw new TypeError('too big'); },
      'tasks.flaky': (ctx: TaskContext) => (ctx.retries === 0 ? ctx.retry({ countdown: 0.05, exc: new Error('transient') }) : ctx.retries),
    }, { heartbeatFreq: 0.1 });
    await w.start();
    await result(backend, await publish(broker, queue, 'tasks.add', [1, 2]));
    await sleep(250);
    const types = () => events.map((e) => e['type']);
    assert.equal(types()[0], 'worker-online');
    assert.ok(types().filter((t) => t === 'worker-heartbeat').length >= 2, types().join());
    assert.ok(!types().some((t) => String(t).startsWith('task-')), `no task events without -E: ${types().join()}`);
    const beat = events.find((e) => e['type'] === 'worker-heartbeat') as JsonObject;
    assert.equal(beat['hostname'], HOST);
    assert.equal(beat['pid'], process.pid);
    assert.equal(beat['sw_ident'], 'celery-gateway');
    assert.equal((beat['loadavg'] as number[]).length, 3);
    assert.equal(beat['processed'], 1);

    assert.deepEqual(await control(broker, 'enable_events', {}), [{ ok: 'task events enabled' }]);
    assert.deepEqual(await control(broker, 'enable_events', {}), [{ ok: 'task events already enabled' }]);
    const okId = await publish(broker, queue, 'tasks.add', [2, 3]);
    const failId = await publish(broker, queue, 'tasks.fail');
    await result(backend, okId);
    await result(backend, failId);
    await sleep(50);
    const of = (id: string) => events.filter((e) => e['uuid'] === id);
    assert.deepEqual(of(okId).map((e) => e['type']), ['task-received', 'task-started', 'task-succeeded']);
    const [received, , succeeded] = of(okId) as [JsonObject, JsonObject, JsonObject];
    assert.equal(received['name'], 'tasks.add');
    assert.equal(received['args'], '(2, 3)');
    assert.equal(succeeded['result'], '5');
    assert.ok((succeeded['runtime'] as number) >= 0);
    const failed = of(failId).at(-1) as JsonObject;
    assert.equal(failed['type'], 'task-failed');
    assert.equal(failed['exception'], "TypeError('too big')");
    // Lamport clock: strictly increasing
    const clocks = events.map((e) => e['clock'] as number);
    assert.deepEqual(clocks, [...clocks].sort((a, b) => a - b));
    assert.equal(new Set(clocks).size, clocks.length);

    // retried, then succeeded; an expired one is revoked without running
    const flakyId = await publish(broker, queue, 'tasks.flaky');
    await until(async () => (await backend.get(flakyId))?.status === 'SUCCESS');
    await sleep(50);
    assert.deepEqual(of(flakyId).map((e) => e['type']), ['task-received', 'task-started', 'task-retried', 'task-received', 'task-started', 'task-succeeded']);
    assert.equal(of(flakyId)[2]?.['exception'], "Error('transient')");
    const expiredId = randomUUID();
    await broker.publish(buildTaskMessage({ task: 'tasks.add', id: expiredId, args: [1, 1], kwargs: {}, origin: 'test@host', replyTo: randomUUID(), expires: new Date(Date.now() - 1000) }, new Date()), { queue });
    assert.equal((await result(backend, expiredId)).status, 'REVOKED');
    await sleep(50);
    assert.deepEqual(of(expiredId).map((e) => e['type']), ['task-received', 'task-revoked']);
    assert.deepEqual([of(expiredId)[1]?.['expired'], of(expiredId)[1]?.['terminated']], [true, false]);

    // the `heartbeat` command (a Receiver's wakeup) gets a heartbeat at once
    const beats = events.filter((e) => e['type'] === 'worker-heartbeat').length;
    await broker.broadcast(controlRequest('heartbeat', {}, 'x', 'y', new Date(), 1), PIDBOX_EXCHANGE);
    await sleep(30);
    assert.ok(events.filter((e) => e['type'] === 'worker-heartbeat').length > beats);

    assert.deepEqual(await control(broker, 'disable_events', {}), [{ ok: 'task events disabled' }]);
    const quietId = await publish(broker, queue, 'tasks.add', [1, 1]);
    await result(backend, quietId);
    await sleep(50);
    assert.deepEqual(of(quietId), []);
    await w.close();
    await sleep(20);
    assert.equal(events.at(-1)?.['type'], 'worker-offline');
    await stop();
  });

  it('a rate-limited task is bounded by its rate; other tasks are not delayed; rate_limit changes it', async () => {
    const queue = 'h1-rate';
    const w = makeWorker(broker, backend, queue, {
      'tasks.limited': { handler: () => Date.now(), rateLimit: '5/s' },
      'tasks.free': () => Date.now(),
    });
    await w.start();
    const t0 = Date.now();
    // more limited tasks than the prefetch bound (4 × 4): held ones must not starve the others
    const limited = await Promise.all(Array.from({ length: 30 }, () => publish(broker, queue, 'tasks.limited')));
    const free = await Promise.all(Array.from({ length: 20 }, () => publish(broker, queue, 'tasks.free')));
    const freeDone = await Promise.all(free.map((id) => result(backend, id)));
    const freeLatest = Math.max(...freeDone.map((m) => m.result as number)) - t0;
    assert.ok(freeLatest < 400, `unlimited tasks ran at once, behind 30 limited ones (${freeLatest} ms)`);
    await sleep(1000 - (Date.now() - t0));
    const doneAfter1s = (await Promise.all(limited.map((id) => backend.get(id)))).filter((m) => m?.status === 'SUCCESS').length;
    // 5/s with a bucket of 1: one at once, then one per 200 ms: 5 or 6 within the first second
    assert.ok(doneAfter1s >= 4 && doneAfter1s <= 6, `limited tasks done after 1 s: ${doneAfter1s}`);
    const times = (await Promise.all(limited.slice(0, doneAfter1s).map((id) => result(backend, id)))).map((m) => m.result as number).sort((a, b) => a - b);
    for (let i = 1; i < times.length; i += 1) assert.ok((times[i] as number) - (times[i - 1] as number) >= 150, `spacing ${times.join(',')}`);

    assert.deepEqual(await control(broker, 'rate_limit', { task_name: 'tasks.limited', rate_limit: '1000/s' }), [{ ok: 'new rate limit set successfully' }]);
    const t1 = Date.now();
    await Promise.all(limited.map((id) => result(backend, id, 2000)));
    assert.ok(Date.now() - t1 < 500, `the rest ran at the new rate (${Date.now() - t1} ms)`);
    assert.deepEqual(await control(broker, 'rate_limit', { task_name: 'tasks.nope', rate_limit: '1/s' }), [{ error: 'unknown task' }]);
    assert.deepEqual(await control(broker, 'rate_limit', { task_name: 'tasks.free', rate_limit: 'fast' }).then((r) => Object.keys(r[0] as object)), ['error']);
    assert.deepEqual(await control(broker, 'rate_limit', { task_name: 'tasks.limited', rate_limit: '' }), [{ ok: 'rate limit disabled successfully' }]);
    await w.close();
  });

  it('time_limit sets limits for tasks whose message has none (hard still ends a run after soft); shutdown closes the worker', async () => {
    const queue = 'h1-time';
    const reasons: string[] = [];
    const w = makeWorker(broker, backend, queue, {
      'tasks.hang': (ctx: TaskContext) => new Promise((resolve) => ctx.signal.addEventListener('abort', () => setTimeout(resolve, 5000))),
    }, { onShutdown: (reason) => { reasons.push(reason); void w.close(); } });
    await w.start();
    assert.deepEqual(await control(broker, 'time_limit', { task_name: 'tasks.hang', hard: 0.3, soft: 0.1 }), [{ ok: 'time limits set successfully' }]);
    assert.deepEqual(await control(broker, 'time_limit', { task_name: 'tasks.nope', hard: 1 }), [{ error: 'unknown task' }]);
    const t0 = Date.now();
    const meta = await result(backend, await publish(broker, queue, 'tasks.hang'), 3000);
    assert.equal(meta.status, 'FAILURE');
    assert.equal((meta.result as JsonObject)['exc_type'], 'TimeLimitExceeded');
    assert.ok(Date.now() - t0 < 2000);
    assert.deepEqual(await control(broker, 'shutdown', {}), []);
    await sleep(50);
    assert.deepEqual(reasons, ['Got shutdown from remote']);
    assert.deepEqual(await control(broker, 'ping', {}), [], 'no longer answering');
  });

  it('a message over the size cap is rejected unparsed; the next one runs', async () => {
    const queue = 'h1-size';
    const w = makeWorker(broker, backend, queue, { 'tasks.echo': (s: string) => s.length }, { maxMessageBytes: 4096 });
    await w.start();
    const big = await publish(broker, queue, 'tasks.echo', ['x'.repeat(5000)]);
    const small = await publish(broker, queue, 'tasks.echo', ['y'.repeat(1000)]);
    assert.equal((await result(backend, small)).result, 1000);
    assert.equal(await backend.get(big), null, 'nothing stored for the rejected message');
    assert.equal(await broker.queueLength(queue), 0, 'not requeued');
    await w.close();
  });
});

const redisSkip = await redisGate(1);

describe('worker controls on Redis (db 1)', { skip: redisSkip }, () => {
  const url = redisUrl(1);
  let broker: RedisBroker;
  let backend: RedisBackend;
  let redis: Redis;
  before(async () => {
    redis = new Redis(url);
    await redis.flushdb();
    broker = new RedisBroker({ url, logger: silentLogger });
    backend = new RedisBackend({ url, logger: silentLogger });
  });
  after(async () => {
    await Promise.all(workers.map((w) => w.close()));
    await broker?.close();
    await backend?.close();
    redis?.disconnect();
  });

  /** Whether the message of a running task is still in kombu's `unacked` hash (i.e. not acked yet). */
  async function unackedWhileRunning(acksLate: boolean | undefined): Promise<{ duringRun: number; after: number; status: string }> {
    const queue = `h1-acks-${String(acksLate)}`;
    let release: () => void = () => {};
    let started: () => void = () => {};
    const running = new Promise<void>((resolve) => { started = resolve; });
    const w = makeWorker(broker, backend, queue, {
      'tasks.block': { handler: () => { started(); return new Promise<string>((resolve) => { release = () => resolve('done'); }); }, ...(acksLate === undefined ? {} : { acksLate }) },
    });
    await w.start();
    const id = await publish(broker, queue, 'tasks.block');
    await running;
    await sleep(50);
    const duringRun = await redis.hlen('unacked');
    release();
    const meta = await result(backend, id);
    await sleep(50);
    const afterRun = await redis.hlen('unacked');
    await w.close();
    return { duringRun, after: afterRun, status: meta.status };
  }

  it('acksLate (default true): the message stays unacked while the task runs', async () => {
    assert.deepEqual(await unackedWhileRunning(undefined), { duringRun: 1, after: 0, status: 'SUCCESS' });
  });

  it('acksLate false: the message is acked before the handler runs (as Celery by default)', async () => {
    assert.deepEqual(await unackedWhileRunning(false), { duringRun: 0, after: 0, status: 'SUCCESS' });
  });

  it('a message over the size cap is rejected (gone from the queue and from unacked); the next one runs', async () => {
    const queue = 'h1-size-redis';
    const w = makeWorker(broker, backend, queue, { 'tasks.echo': (s: string) => s.length }, { maxMessageBytes: 64 * 1024 });
    await w.start();
    const big = await publish(broker, queue, 'tasks.echo', ['x'.repeat(100 * 1024)]);
    const small = await publish(broker, queue, 'tasks.echo', ['y']);
    assert.equal((await result(backend, small)).result, 1);
    await sleep(50);
    assert.equal(await backend.get(big), null);
    assert.equal(await redis.llen(queue), 0);
    assert.equal(await redis.hlen('unacked'), 0);
    await w.close();
  });
});
