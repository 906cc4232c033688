/**
 * `celery-gateway worker --pool threads` (the real CLI) on Redis (db 9): tasks submitted through the
 * gateway run in worker threads; a CPU-bound handler past its hard time limit is stopped for real
 * (TimeLimitExceeded, the thread replaced, the worker still serving), and a revoke with terminate
 * stops a spinning handler (REVOKED).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend } from '../../src/backends/redis.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { RedisState } from '../../src/state/shared-state.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { runCli, type CliProcess } from '../support/cli.ts';
import { redisGate, redisUrl } from '../support/services.ts';

const URL = redisUrl(9);
const skip = await redisGate(9);
const queue = `threads-${randomUUID().slice(0, 8)}`;

describe('worker --pool threads on Redis', { skip }, () => {
  let worker: CliProcess;
  let gw: TestGateway;
  const broker = new RedisBroker({ url: URL, logger: silentLogger });
  const backend = new RedisBackend({ url: URL, logger: silentLogger });
  const state = new RedisState(new Redis(URL));

  before(async () => {
    worker = runCli(['worker', '--tasks', 'test/fixtures/tasks/thread-tasks.ts', '-P', 'threads', '-c', '2', '-Q', queue, '-n', `threads-${queue}@test`],
      { CELERY_BROKER_URL: URL, LOG_LEVEL: 'warn' });
    await worker.waitFor(/ready\./);
    gw = await startGateway({ broker, backend, state });
  });

  after(async () => {
    await gw?.app.close();
    const code = await worker?.stop('SIGTERM');
    assert.equal(code, 0, 'the worker exits 0 on SIGTERM');
    await broker.close();
    await backend.close();
    await state.close();
  });

  const submit = async (task: string, args: unknown[], options: Record<string, unknown> = {}): Promise<string> => {
    const res = await gw.post(`/tasks/${task}`, { args, options: { queue, ...options } });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    return (res.json as { id: string }).id;
  };
  const result = async (id: string): Promise<{ state: string; result: unknown; error: { type: string } | null }> => (await gw.get(`/results/${id}?wait=10`)).json as { state: string; result: unknown; error: { type: string } | null };

  it('runs tasks in worker threads (the banner says so)', async () => {
    assert.match(worker.output(), /concurrency: 2 \(threads\)/);
    const who = await result(await submit('threads.whoami', []));
    assert.equal(who.state, 'SUCCESS');
    assert.ok(typeof who.result === 'number' && who.result > 0, `ran in thread ${String(who.result)}`);
    const sum = await result(await submit('threads.add', [20, 22]));
    assert.deepEqual([sum.state, sum.result], ['SUCCESS', 42]);
  });

  it('a spinning handler past its hard limit is stopped for real; the worker keeps serving', async () => {
    const started = Date.now();
    const id = await submit('threads.spin', [60_000], { time_limit: 0.5 });
    const failed = await result(id);
    assert.equal(failed.state, 'FAILURE');
    assert.equal(failed.error?.type, 'TimeLimitExceeded');
    assert.ok(Date.now() - started < 5000, `stopped after ${Date.now() - started} ms`);
    // both threads serve: two CPU-bound tasks at once finish together
    const t0 = Date.now();
    const [a, b] = await Promise.all([submit('threads.spin', [300]), submit('threads.spin', [300])]).then((ids) => Promise.all(ids.map(result)));
    assert.deepEqual([a?.state, b?.state], ['SUCCESS', 'SUCCESS']);
    assert.ok(Date.now() - t0 < 2000, `two 300 ms spins took ${Date.now() - t0} ms`);
  });

  it('revoke with terminate stops a spinning handler: REVOKED', async () => {
    const id = await submit('threads.spin', [60_000]);
    await new Promise((r) => setTimeout(r, 500)); // let it start
    assert.equal((await gw.post(`/tasks/${id}/revoke`, { terminate: true })).status, 202);
    const revoked = await result(id);
    assert.equal(revoked.state, 'REVOKED');
    assert.deepEqual(await result(await submit('threads.add', [1, 2])).then((r) => r.result), 3);
  });
});
