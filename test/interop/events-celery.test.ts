/**
 * Celery events from our Node worker, captured by Celery's own `app.events.Receiver` (Python 5.2.6) on
 * Redis and on RabbitMQ: worker-online, worker-heartbeat, task-received / started / succeeded / failed,
 * worker-offline, with Celery's field names and values; none of the task-* ones before `enable_events`. The receiver keeps only our worker's hostname
 * (the celeryev exchange is shared on RabbitMQ '/').
 */
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { amqplib } from '../../src/brokers/amqp-support.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { controlRequest, PIDBOX_EXCHANGE, REPLY_EXCHANGE } from '../../src/protocol/control.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import type { Json } from '../../src/protocol/types.ts';
import { TaskRegistry, type TaskContext } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger } from '../support/app.ts';
import { celeryGate, PYTHON } from '../support/python.ts';
import { amqpUrl, rabbitGate, redisGate, redisUrl } from '../support/services.ts';

const RECEIVER = fileURLToPath(new URL('../fixtures/python-events/receiver.py', import.meta.url));
const REDIS = redisUrl(1);
const celerySkip = (await celeryGate()) || (await redisGate(1));
const amqpSkip = celerySkip || (await rabbitGate());
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** receiver.py for one hostname; resolves once its event queue consumes. */
async function startReceiver(brokerUrl: string, hostname: string): Promise<{ events: any[]; stop: () => Promise<void>; stderr: () => string }> {
  const env: Record<string, string> = { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CELERY_BROKER_URL: brokerUrl };
  const child: ChildProcess = spawn(PYTHON, [RECEIVER, hostname], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const events: any[] = [];
  let err = '';
  let buffered = '';
  let ready: () => void = () => {};
  const isReady = new Promise<void>((resolve) => { ready = resolve; });
  child.stderr?.on('data', (d: Buffer) => { err += d.toString(); });
  child.stdout?.on('data', (d: Buffer) => {
    buffered += d.toString();
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) {
      if (!line.trim()) continue;
      const parsed = JSON.parse(line);
      if (parsed.ready) ready();
      else events.push(parsed);
    }
  });
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  const stop = async () => {
    child.kill('SIGKILL');
    await exited;
  };
  const timeout = sleep(15_000).then(() => { throw new Error(`receiver.py not ready in 15 s: ${err}`); });
  await Promise.race([isReady, timeout, exited.then(() => { throw new Error(`receiver.py exited: ${err}`); })]);
  return { events, stop, stderr: () => err };
}

async function until(what: string, check: () => boolean, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(50);
  }
}

function eventsSuite(name: string, brokerUrl: string, makeBroker: () => Broker, skip: string | false, dropQueue?: (queue: string) => Promise<void>): void {
  describe(`Celery events from the Node worker on ${name}, read by app.events.Receiver`, { skip }, () => {
    const hostname = `h1-events-${name}.${process.pid}@test`;
    const queue = `h1-events-${name}-${process.pid}`;
    let broker: Broker;
    let backend: RedisBackend;
    let worker: Worker;
    let receiver: Awaited<ReturnType<typeof startReceiver>>;
    const ids = { ok: randomUUID(), fail: randomUUID(), quiet: randomUUID(), refused: randomUUID() };
    const send = (task: string, id: string, args: Json[]) =>
      broker.publish(buildTaskMessage({ task, id, args, kwargs: {}, origin: 'test@host', replyTo: randomUUID() }, new Date()), { queue });

    before(async () => {
      receiver = await startReceiver(brokerUrl, hostname);
      // Redis: kombu PSUBSCRIBEs on its first poll, just after it reports consuming
      await sleep(500);
      broker = makeBroker();
      backend = new RedisBackend({ url: REDIS, logger: silentLogger });
      worker = new Worker({
        broker, backend, queues: [queue], concurrency: 2, prefetchMultiplier: 1, hostname, logger: silentLogger, shutdownTimeout: 1,
        taskEvents: false, version: '0.1.0',
        registry: new TaskRegistry().registerAll({
          'tasks.add': async (x: number, y: number) => { await sleep(5); return x + y; },
          'tasks.fail': () => { throw new TypeError('bad input'); },
          'tasks.refuse': (ctx: TaskContext) => ctx.reject({ reason: 'poison' }),
        }),
      });
      await worker.start();
      // without -E: no task events (amqp-heartbeat-without-E); then Flower's enable_events turns them on
      await send('tasks.add', ids.quiet, [1, 1]);
      assert.equal((await waitForResult(backend, ids.quiet, 10_000))?.status, 'SUCCESS');
      const oid = randomUUID();
      const replies = await broker.gatherReplies(REPLY_EXCHANGE, oid, `${oid}.reply.celery.pidbox`, 500, () =>
        broker.broadcast(controlRequest('enable_events', {}, oid, randomUUID(), new Date(), 1), PIDBOX_EXCHANGE));
      assert.deepEqual(replies.map((r) => JSON.parse(r.body)[hostname]), [{ ok: 'task events enabled' }]);
      await send('tasks.add', ids.ok, [2, 3]);
      await send('tasks.fail', ids.fail, []);
      await send('tasks.refuse', ids.refused, []);
      assert.equal((await waitForResult(backend, ids.ok, 10_000))?.status, 'SUCCESS');
      assert.equal((await waitForResult(backend, ids.fail, 10_000))?.status, 'FAILURE');
      const has = (type: string) => receiver.events.some((e) => e.type === type);
      await until('task-failed, task-rejected and a heartbeat', () => has('task-failed') && has('task-succeeded') && has('task-rejected') && has('worker-heartbeat'));
      await worker.close();
      await until('worker-offline', () => has('worker-offline'), 5000);
    });
    after(async () => {
      await worker?.close();
      await receiver?.stop();
      await broker?.close();
      await backend?.close();
      await dropQueue?.(queue).catch(() => {});
    });

    it('worker-online, worker-heartbeat and worker-offline with Celery fields', () => {
      const worker = receiver.events.filter((e) => e.type.startsWith('worker-'));
      assert.equal(worker[0]?.type, 'worker-online', receiver.events.map((e) => e.type).join());
      assert.equal(worker.at(-1)?.type, 'worker-offline');
      const beat = worker.find((e) => e.type === 'worker-heartbeat');
      assert.ok(beat, 'a heartbeat');
      assert.equal(beat.hostname, hostname);
      assert.equal(beat.pid, process.pid);
      assert.equal(beat.freq, 2);
      assert.equal(beat.sw_ident, 'celery-gateway');
      assert.equal(beat.sw_ver, '0.1.0');
      assert.equal(typeof beat.sw_sys, 'string');
      assert.equal(beat.loadavg.length, 3);
      assert.equal(typeof beat.timestamp, 'number');
      assert.ok(Math.abs(beat.timestamp - Date.now() / 1000) < 60);
      assert.equal(typeof beat.utcoffset, 'number');
      assert.equal(worker.at(-1)?.processed, 4);
    });

    it('no task events before enable_events (worker started without -E)', () => {
      assert.deepEqual(receiver.events.filter((e) => e.uuid === ids.quiet), []);
      assert.ok(receiver.events.filter((e) => e.type.startsWith('worker-')).length >= 3);
    });

    it('task-received, task-started, task-succeeded for a success', () => {
      const mine = receiver.events.filter((e) => e.uuid === ids.ok);
      assert.deepEqual(mine.map((e) => e.type), ['task-received', 'task-started', 'task-succeeded']);
      const [received, started, succeeded] = mine;
      assert.equal(received.name, 'tasks.add');
      assert.equal(received.args, '(2, 3)');
      assert.equal(received.kwargs, '{}');
      assert.equal(received.retries, 0);
      assert.equal(received.root_id, ids.ok);
      assert.equal(received.hostname, hostname);
      assert.equal(started.hostname, hostname);
      assert.equal(succeeded.result, '5');
      assert.ok(succeeded.runtime > 0, String(succeeded.runtime));
      assert.ok(received.clock < started.clock && started.clock < succeeded.clock, 'Lamport clock increases');
    });

    it('task-failed with the exception repr and a traceback', () => {
      const failed = receiver.events.find((e) => e.uuid === ids.fail && e.type === 'task-failed');
      assert.ok(failed, receiver.events.map((e) => e.type).join());
      assert.equal(failed.exception, "TypeError('bad input')");
      assert.match(failed.traceback, /TypeError: bad input/);
    });

    it('task-rejected (requeue false) for a handler that refused its message', () => {
      const mine = receiver.events.filter((e) => e.uuid === ids.refused);
      assert.deepEqual(mine.map((e) => e.type), ['task-received', 'task-started', 'task-rejected']);
      assert.equal(mine[2].requeue, false);
      assert.equal(mine[2].hostname, hostname);
    });
  });
}

eventsSuite('redis', REDIS, () => new RedisBroker({ url: REDIS, logger: silentLogger }), celerySkip);
/** our task queue (and its exchange) on the shared RabbitMQ: removed after the suite */
async function dropAmqpQueue(queue: string): Promise<void> {
  const conn = await amqplib.connect(amqpUrl());
  try {
    const ch = await conn.createChannel();
    await ch.deleteQueue(queue);
    await ch.deleteExchange(queue);
  } finally {
    await conn.close();
  }
}

eventsSuite('amqp', amqpUrl(), () => new AmqpBroker({ url: amqpUrl(), logger: silentLogger }), amqpSkip, dropAmqpQueue);
