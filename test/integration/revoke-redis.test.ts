/**
 * The durable revoked set on Redis: a task revoked through the gateway while no worker runs is discarded
 * (REVOKED "revoked") by a celery-gateway worker started afterwards; its handler never runs. A revoke the
 * running worker did not get on the pidbox reaches it through its RevokedCache's refresh.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../src/backends/redis.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { RevokedCache, RevokedSet } from '../../src/state/revoked.ts';
import { RedisState } from '../../src/state/shared-state.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { redisGate, redisUrl } from '../support/services.ts';

const DB = 3;
const url = redisUrl(DB);

describe('revoke on Redis', { skip: await redisGate(DB) }, () => {
  it('reaches a worker that was offline when the revoke was sent', async () => {
    const queue = `revoke-${randomUUID()}`;
    const broker = new RedisBroker({ url, logger: silentLogger });
    const backend = new RedisBackend({ url, logger: silentLogger });
    const state = new RedisState(new Redis(url));
    const workerState = new RedisState(new Redis(url));
    const cache = new RevokedCache(workerState, 60, { refreshMs: 100 });
    const ran: string[] = [];
    const gw = await startGateway({ broker, backend, state });
    let worker: Worker | undefined;
    try {
      const revokedTask = await gw.post('/tasks/tasks.record', { args: ['revoked'], options: { queue } });
      const keptTask = await gw.post('/tasks/tasks.record', { args: ['kept'], options: { queue } });
      assert.equal((await gw.post(`/tasks/${revokedTask.json.id}/revoke`, {})).status, 202);
      const registry = new TaskRegistry().register('tasks.record', (value: string) => { ran.push(value); return value; });
      // a worker that starts now, as after a restart
      await cache.start();
      assert.equal(cache.isRevoked(revokedTask.json.id), true, 'the index was loaded at start');
      worker = new Worker({
        broker, backend, registry, queues: [queue], concurrency: 2, prefetchMultiplier: 1, hostname: 'revoke-test@host',
        logger: silentLogger, shutdownTimeout: 1, revoked: cache,
      });
      await worker.start();
      const meta = await waitForResult(backend, revokedTask.json.id, 5000);
      assert.equal(meta?.status, 'REVOKED');
      assert.deepEqual(meta?.result, { exc_type: 'TaskRevokedError', exc_message: ['revoked'], exc_module: 'celery.exceptions' });
      assert.equal((await waitForResult(backend, keptTask.json.id, 5000))?.result, 'kept');
      assert.deepEqual(ran, ['kept']);

      // revoked while the worker runs, without a pidbox broadcast (as if its listener was reconnecting):
      // the cache's refresh brings it, and a task with that id published afterwards is discarded
      const lateId = randomUUID();
      await new RevokedSet(state, 60).add(lateId, { terminate: false, signal: 'SIGTERM' });
      const until = Date.now() + 3000;
      while (!cache.isRevoked(lateId) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
      assert.equal(cache.isRevoked(lateId), true, 'seen by the refresh');
      const late = await gw.post('/tasks/tasks.record', { args: ['late'], options: { queue, task_id: lateId } });
      assert.equal(late.status, 202);
      assert.equal((await waitForResult(backend, lateId, 5000))?.status, 'REVOKED');
      assert.deepEqual(ran, ['kept'], 'the late-revoked task never ran');
    } finally {
      cache.close();
      await worker?.close();
      await gw.close();
      await state.close();
      await workerState.close();
    }
  });
});
