/**
 * The `--pool threads` pool on its own: handlers run in worker threads, errors and retries come back
 * intact, CPU-bound work leaves the main event loop free, and a hard time limit, a terminate or a
 * crashing thread stop the handler for real and the pool replaces the thread.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { threadId as mainThreadId } from 'node:worker_threads';
import type { Json } from '../../src/protocol/types.ts';
import { TaskRevoked, TimeLimitExceeded } from '../../src/worker/errors.ts';
import type { Limits, Outcome } from '../../src/worker/executor.ts';
import type { TaskContext } from '../../src/worker/registry.ts';
import { Retry } from '../../src/worker/retry.ts';
import { Ignore, Reject } from '../../src/worker/errors.ts';
import { TaskAbort } from '../../src/worker/task-abort.ts';
import { ThreadPool, WorkerLostError } from '../../src/worker/thread-pool.ts';
import { silentLogger } from '../support/app.ts';

const MODULE = new URL('../fixtures/tasks/thread-tasks.ts', import.meta.url).pathname;
const NO_LIMITS: Limits = { hard: null, soft: null };

/** the states each task id asked to store through ctx.updateState */
const states = new Map<string, [string, unknown][]>();

function context(name: string, id = `id-${Math.random().toString(36).slice(2)}`): TaskContext {
  return {
    id, name, kwargs: { k: 1 }, retries: 2, rootId: null, parentId: null, groupId: null,
    headers: { lang: 'py', task: name, id, retries: 2 } as unknown as TaskContext['headers'],
    hostname: 'node@test', redelivered: false, signal: new TaskAbort().signal, log: silentLogger,
    retry: () => { throw new Error('not here'); },
    reject: () => { throw new Error('not here'); },
    ignore: () => { throw new Error('not here'); },
    updateState: async (state, meta) => { states.set(id, [...(states.get(id) ?? []), [state, meta]]); },
  };
}

describe('ThreadPool', () => {
  const pool = new ThreadPool({ modulePath: MODULE, size: 2, logger: silentLogger, logLevel: 'silent' });
  const run = (name: string, args: Json[] = [], limits = NO_LIMITS, abort = new TaskAbort()): Promise<Outcome> =>
    pool.run(name, args, context(name), abort, limits);

  before(() => pool.start());
  after(() => pool.close());

  it('runs handlers in worker threads with their arguments and context', async () => {
    const who = await run('threads.whoami');
    assert.ok(who.ok && typeof who.value === 'number' && who.value !== mainThreadId, 'ran off the main thread');
    assert.deepEqual(await run('threads.add', [2, 3]).then((o) => o.ok && o.value), 5);
    const ctx = await pool.run('threads.ctx', [], context('threads.ctx', 'the-id'), new TaskAbort(), NO_LIMITS);
    assert.deepEqual(ctx.ok && ctx.value, { id: 'the-id', name: 'threads.ctx', kwargs: { k: 1 }, retries: 2, hostname: 'node@test' });
  });

  it('errors keep their name, retries come back as Retry, rejections as Reject, ignore as Ignore', async () => {
    const failed = await run('threads.fail');
    assert.ok(!failed.ok);
    assert.equal((failed.error as Error).name, 'ValueError');
    assert.equal((failed.error as Error).message, 'bad value');
    assert.match((failed.error as Error).stack ?? '', /thread-tasks\.ts/);
    const retried = await run('threads.retry');
    assert.ok(!retried.ok && retried.error instanceof Retry);
    assert.deepEqual((retried.error as Retry).options, { countdown: 7, maxRetries: 5 });
    const rejected = await run('threads.reject');
    assert.ok(!rejected.ok && rejected.error instanceof Reject);
    assert.deepEqual((rejected.error as Reject).options, { requeue: true, reason: 'not on this worker' });
    const ignored = await run('threads.ignore');
    assert.ok(!ignored.ok && ignored.error instanceof Ignore);
  });

  it('ctx.updateState in a thread reaches the main thread as JSON, in order, before the outcome', async () => {
    const out = await pool.run('threads.progress', [3], context('threads.progress', 'progress-id'), new TaskAbort(), NO_LIMITS);
    assert.deepEqual(out.ok && out.value, 'done');
    assert.deepEqual(states.get('progress-id'), [['PROGRESS', { current: 1, total: 3 }], ['PROGRESS', { current: 2, total: 3 }], ['PROGRESS', { current: 3, total: 3 }]]);
    // meta that is not JSON fails the run at once, in the thread
    const bad = await run('threads.progress_bigint');
    assert.ok(!bad.ok && (bad.error as Error).name === 'TypeError', String(!bad.ok && bad.error));
  });

  it('CPU-bound handlers leave the main event loop free', async () => {
    let ticks = 0;
    const timer = setInterval(() => ticks++, 20);
    const [a, b] = await Promise.all([run('threads.spin', [400]), run('threads.spin', [400])]);
    clearInterval(timer);
    assert.ok(a.ok && b.ok);
    assert.ok(ticks >= 10, `the main loop ticked ${ticks} times during 400 ms of CPU work`);
  });

  it('the hard limit terminates a spinning thread at once, and a fresh thread takes its place', async () => {
    const before = pool.threadIds;
    const started = Date.now();
    const out = await run('threads.spin', [10_000], { hard: 0.3, soft: null });
    assert.ok(!out.ok && out.error instanceof TimeLimitExceeded, 'failed with TimeLimitExceeded');
    assert.ok(Date.now() - started < 2000, `stopped after ${Date.now() - started} ms`);
    await new Promise((r) => setTimeout(r, 300));
    assert.equal(pool.threadIds.length, 2, 'the pool is back to its size');
    assert.notDeepEqual(pool.threadIds.sort(), before.sort(), 'one thread was replaced');
    assert.deepEqual(await run('threads.add', [1, 1]).then((o) => o.ok && o.value), 2, 'still serving');
  });

  it('the soft limit aborts ctx.signal inside the thread; the handler may clean up', async () => {
    const out = await run('threads.soft', [], { hard: 5, soft: 0.1 });
    assert.deepEqual(out.ok && out.value, 'cleaned up after SoftTimeLimitExceeded');
  });

  it('the hard limit still stops a handler that ignored an earlier soft limit', async () => {
    const started = Date.now();
    const out = await run('threads.spin', [10_000], { hard: 0.5, soft: 0.2 });
    assert.ok(!out.ok && out.error instanceof TimeLimitExceeded, String(!out.ok && out.error));
    assert.ok(Date.now() - started < 2500, `stopped after ${Date.now() - started} ms`);
  });

  it('terminate (revoke) stops a running handler; a thread that exits is lost and replaced', async () => {
    const abort = new TaskAbort();
    setTimeout(() => abort.abort(new TaskRevoked('x')), 100);
    const revoked = await run('threads.spin', [10_000], NO_LIMITS, abort);
    assert.ok(!revoked.ok && revoked.error instanceof TaskRevoked);
    const lost = await run('threads.exit');
    assert.ok(!lost.ok && lost.error instanceof WorkerLostError, String(!lost.ok && lost.error));
    await new Promise((r) => setTimeout(r, 300));
    const results = await Promise.all([run('threads.add', [1, 2]), run('threads.add', [3, 4])]);
    assert.deepEqual(results.map((o) => o.ok && o.value), [3, 7], 'both threads serve again');
  });

  it('a module that cannot load in a thread is a start-up error', async () => {
    const dir = await mkdtemp(join(process.cwd(), '.tmp-threads-'));
    try {
      const bad = join(dir, 'bad.ts');
      await writeFile(bad, 'throw new Error("boom at import");\n');
      const broken = new ThreadPool({ modulePath: bad, size: 1, logger: silentLogger });
      await assert.rejects(broken.start(), /boom at import/);
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
