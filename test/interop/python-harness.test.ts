// Smoke test for test/support/python.ts: a real Celery 5.2.6 worker + the real client.py on Redis db 12.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import {
  celeryGate,
  redisGate,
  runCeleryClient,
  startCeleryWorker,
  type CeleryWorker,
} from '../support/python.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/12';
const urls = { brokerUrl: REDIS_URL, backendUrl: REDIS_URL };
const skip = (await celeryGate()) || (await redisGate(REDIS_URL));

describe('python Celery harness (real worker + client.py on Redis)', { skip }, () => {
  const queue = `pyharness-${process.pid}-${Date.now().toString(36)}`;
  let worker: CeleryWorker | undefined;

  before(async () => {
    worker = await startCeleryWorker({ ...urls, queues: [queue], concurrency: 1 });
  });

  after(async () => {
    await worker?.stop();
    const redis = new Redis(REDIS_URL, { lazyConnect: true, maxRetriesPerRequest: 1 });
    try {
      await redis.connect();
      await redis.del(queue, `_kombu.binding.${queue}`);
    } finally {
      redis.disconnect();
    }
  });

  it('runs tasks.add on the real worker', async () => {
    const r = await runCeleryClient(['send', 'tasks.add', '2', '3', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 0, `client failed:\n${r.stdout}\n${r.stderr}\nworker:\n${worker?.logs()}`);
    assert.equal(r.json.state, 'SUCCESS');
    assert.equal(r.json.result, 5);
    assert.match(r.json.id, /^[0-9a-f-]{36}$/);
  });

  it('reports tasks.fail as FAILURE with ValueError', async () => {
    const r = await runCeleryClient(['send', 'tasks.fail', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 1, `unexpected exit:\n${r.stdout}\n${r.stderr}`);
    assert.equal(r.json.state, 'FAILURE');
    assert.equal(r.json.exception.type, 'ValueError');
    assert.deepEqual(r.json.exception.message, ['boom']);
  });

  it('keeps the worker log', () => {
    assert.match(worker!.logs(), new RegExp(`${worker!.nodeName} ready\\.`));
    assert.match(worker!.logs(), /tasks\.add/);
  });
});
