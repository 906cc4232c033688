/**
 * At-least-once with late ack: `kill -9` of a worker process in the middle of a run loses no task, on
 * Redis (kombu's visibility-timeout restore) and on RabbitMQ (redelivery of unacked messages). And a long
 * ETA on Redis runs once, although it is held longer than the visibility timeout (celery#4400).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../src/backends/redis.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger } from '../support/app.ts';
import { runCli } from '../support/cli.ts';
import { amqpUrl, rabbitGate, redisGate, redisUrl } from '../support/services.ts';

const DB = 2;
const REDIS = redisUrl(DB);
const TASKS = 600;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function killMidRun(brokerUrl: string, broker: Broker): Promise<{ beforeKill: number }> {
  const queue = `crash-${randomUUID().slice(0, 8)}`;
  const redis = new Redis(REDIS);
  const ids = Array.from({ length: TASKS }, () => randomUUID());
  const keys = ids.map((id) => `celery-task-meta-${id}`);
  /** tasks finished: SUCCESS stored (a STARTED left by the killed worker does not count) */
  const done = async () => (await redis.mget(...keys)).filter((m) => m !== null && (JSON.parse(m) as { status: string }).status === 'SUCCESS').length;
  await Promise.all(ids.map((id, i) => broker.publish(buildTaskMessage({ task: 'crash.work', id, args: [i], kwargs: {}, origin: 'test', replyTo: 'x' }, new Date()), { queue })));
  const env = { CELERY_BROKER_URL: brokerUrl, CELERY_RESULT_BACKEND: REDIS, CELERY_VISIBILITY_TIMEOUT: '2', LOG_LEVEL: 'warn' };
  const args = ['worker', '--tasks', 'test/fixtures/tasks/crash-tasks.ts', '-Q', queue, '-c', '10'];
  const first = runCli([...args, '-n', 'crash-1@test'], env);
  let second: ReturnType<typeof runCli> | undefined;
  try {
    await first.waitFor(/crash-1@test ready\./);
    let finished = 0;
    for (let i = 0; i < 400 && finished < TASKS / 4; i += 1) { await sleep(25); finished = await done(); }
    assert.ok(finished > 0 && finished < TASKS, `killed mid-run (${finished} of ${TASKS} done)`);
    first.child.kill('SIGKILL');
    await first.stop();
    second = runCli([...args, '-n', 'crash-2@test'], env);
    await second.waitFor(/crash-2@test ready\./);
    let all = 0;
    for (let i = 0; i < 600 && all < TASKS; i += 1) { await sleep(50); all = await done(); }
    assert.equal(all, TASKS, `every task has a result after the crash (${all} of ${TASKS})`);
    const metas = await redis.mget(...keys);
    assert.ok(metas.every((m) => m !== null && JSON.parse(m).status === 'SUCCESS'), 'all SUCCESS');
    return { beforeKill: finished };
  } finally {
    await second?.stop();
    await redis.del(...keys);
    redis.disconnect();
  }
}

const redisSkip = await redisGate(DB);
const rabbitSkip = await rabbitGate();

describe('crash safety', () => {
  it('Redis: kill -9 of a worker mid-run loses no task (restored after the visibility timeout)', { skip: redisSkip }, async () => {
    const broker = new RedisBroker({ url: REDIS, logger: silentLogger });
    try {
      await killMidRun(REDIS, broker);
    } finally {
      await broker.close();
    }
  });

  it('RabbitMQ: kill -9 of a worker mid-run loses no task (unacked messages redelivered)', { skip: rabbitSkip }, async () => {
    const broker = new AmqpBroker({ url: amqpUrl(), logger: silentLogger });
    try {
      await killMidRun(amqpUrl(), broker);
    } finally {
      await broker.close();
    }
  });

  it('Redis: an ETA held longer than the visibility timeout runs once', { skip: redisSkip }, async () => {
    const broker = new RedisBroker({ url: REDIS, logger: silentLogger, visibilityTimeoutSec: 1 });
    const backend = new RedisBackend({ url: REDIS, logger: silentLogger });
    const queue = `eta-${randomUUID().slice(0, 8)}`;
    let runs = 0;
    const registry = new TaskRegistry().register('eta.once', () => { runs += 1; return runs; });
    const worker = new Worker({ broker, backend, registry, queues: [queue], concurrency: 2, prefetchMultiplier: 2, hostname: 'eta@test', logger: silentLogger, shutdownTimeout: 1 });
    try {
      await worker.start();
      const id = randomUUID();
      await broker.publish(buildTaskMessage({ task: 'eta.once', id, args: [], kwargs: {}, eta: new Date(Date.now() + 3500), origin: 'test', replyTo: 'x' }, new Date()), { queue });
      const meta = await waitForResult(backend, id, 8000);
      assert.equal(meta?.status, 'SUCCESS');
      await sleep(1500); // a duplicate delivery would run now
      assert.equal(runs, 1, 'held 3.5 s with a 1 s visibility timeout, run once');
    } finally {
      await worker.close();
      await broker.close();
      await backend.close();
    }
  });
});
