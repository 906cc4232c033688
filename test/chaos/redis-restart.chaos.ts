/**
 * Chaos: kill -9 and restart the Redis server (broker and result backend) under a stream of
 * submissions (~200/s) with a Node worker attached.
 *
 * The private redis-server (port 6390) runs with `--appendonly yes --appendfsync always`: Redis answers a
 * write only after it is in the AOF, so SIGKILL loses nothing Redis acknowledged. That is the honest
 * setting for "no 202 lost": a 202 means Redis acknowledged the LPUSH, and what Redis keeps across a crash
 * after that is Redis' own durability setting (without persistence a restart empties every queue, for
 * Celery as for us; nothing a client can do about it).
 *
 * Asserted: every 202's task ends SUCCESS (stored by the worker, which resumes on its own), every other
 * answer is a 503 with a 503 code from the catalogue, there are 503s while Redis is down, and the gateway
 * accepts again within a few seconds of Redis being back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { binaryGate, sleep, startPrivateRedis, type PrivateRedis } from '../support/private-servers.ts';
import { checkOutage, startSubmissionStream, waitForSuccess } from './stream.ts';

const PORT = 6390;
/** submissions per second */
const RATE = 200;
const skip = await binaryGate('redis-server', 'apt-get install redis-server');

describe('chaos: Redis killed and restarted under a stream of submissions', { skip }, () => {
  let redis: PrivateRedis;
  const queue = `h3-rr-${randomUUID()}`;
  let gw: TestGateway;
  let worker: Worker;
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    redis = await startPrivateRedis(PORT);
    const broker = new RedisBroker({ url: redis.url(), visibilityTimeoutSec: 5, logger: silentLogger });
    const backend = new RedisBackend({ url: redis.url(), logger: silentLogger });
    gw = await startGateway({ broker, backend });
    closers.push(() => gw.close());
    // the worker has its own connections, as a separate process would
    const wBroker = new RedisBroker({ url: redis.url(), visibilityTimeoutSec: 5, logger: silentLogger });
    const wBackend = new RedisBackend({ url: redis.url(), logger: silentLogger });
    worker = new Worker({
      broker: wBroker, backend: wBackend, queues: [queue], concurrency: 16, prefetchMultiplier: 4,
      hostname: `h3-rr.${process.pid}@host`, logger: silentLogger, shutdownTimeout: 2, remoteControl: false,
      registry: new TaskRegistry().registerAll({ 'tasks.add': (x: number, y: number) => x + y }),
    });
    await worker.start();
    closers.push(async () => { await worker.close(); await wBroker.close(); await wBackend.close(); });
  });
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await redis?.destroy();
  });

  it('no 202 lost, 503s while down, recovery within seconds, the worker finishes every accepted task', async (t) => {
    const load = startSubmissionStream(gw, queue, RATE);
    const { answers } = load;

    await sleep(2000);
    const killedAt = Date.now();
    await redis.kill();
    await sleep(2000);
    const restartAt = Date.now();
    await redis.start();
    const upAt = Date.now();
    await sleep(3000);
    await load.stop();

    const { accepted, refused, refusedWhileDown, recoveryMs } = checkOutage(answers, { faultAt: killedAt, downFrom: killedAt, upAt }, 5000, 'Redis');

    // every accepted task runs: nothing Redis acknowledged was lost, and the worker resumed on its own
    const backend = new RedisBackend({ url: redis.url(), logger: silentLogger });
    closers.push(() => backend.close());
    const missing = await waitForSuccess(backend, accepted.map((a) => a.id!));
    const finishedAt = Date.now();
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${accepted.length} accepted tasks never got SUCCESS`);
    const codes = [...new Set(refused.map((a) => a.code))];
    t.diagnostic(`redis restart: ${answers.length} submissions, ${accepted.length} accepted, ${refused.length} refused (${codes.join(', ')}), ` +
      `(${Math.round((answers.length * 1000) / (Math.max(...answers.map((a) => a.sentAt)) - Math.min(...answers.map((a) => a.sentAt))))}/s), ${refusedWhileDown} refused while down (${upAt - killedAt} ms down, restart took ${upAt - restartAt} ms), ` +
      `first 202 ${recoveryMs} ms after Redis was back, all accepted tasks SUCCESS ${finishedAt - upAt} ms after it`);
    assert.equal(await (gw.broker as RedisBroker).queueLength(queue), 0, 'the queue is drained');
  });
});
