/**
 * waitForResult (src/backends/wait.ts): a poll without a wait is one read and no subscription; with a
 * wait, a result already stored answers from the first read; a result stored while the subscription
 * is being set up is not missed (the read after it catches it); every subscription is released.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import type { ResultMeta, State } from '../../src/protocol/types.ts';

const meta = (taskId: string, status: State, result: number | null = null): ResultMeta =>
  buildMeta({ taskId, status, result, traceback: null, children: [], groupId: null, parentId: null, now: new Date() });

/** The memory backend, counting reads, subscriptions and releases; `beforeSubscribed` runs while a subscription is being set up. */
class CountingBackend extends MemoryBackend {
  reads = 0;
  listens = 0;
  released = 0;
  beforeSubscribed: (() => Promise<void>) | undefined;
  override async get(taskId: string): Promise<ResultMeta | null> {
    this.reads += 1;
    return super.get(taskId);
  }
  override async store(m: ResultMeta): Promise<void> {
    const reads = this.reads;
    await super.store(m); // its own read is not one of waitForResult's
    this.reads = reads;
  }
  override async listen(taskId: string, listener: (meta: ResultMeta) => void): Promise<() => void> {
    this.listens += 1;
    await this.beforeSubscribed?.();
    const stop = await super.listen(taskId, listener);
    return () => { this.released += 1; stop(); };
  }
}

describe('waitForResult', () => {
  it('without a wait: one read, no subscription', async () => {
    const backend = new CountingBackend();
    const id = randomUUID();
    await backend.store(meta(id, 'STARTED'));
    assert.equal((await waitForResult(backend, id, 0))?.status, 'STARTED');
    assert.deepEqual([backend.reads, backend.listens], [1, 0]);
  });

  it('a result already stored answers from the first read, and the subscription made meanwhile is released', async () => {
    const backend = new CountingBackend();
    const id = randomUUID();
    await backend.store(meta(id, 'SUCCESS', 7));
    const got = await waitForResult(backend, id, 5000);
    assert.deepEqual([got?.status, got?.result], ['SUCCESS', 7]);
    assert.equal(backend.reads, 1);
    await new Promise((r) => setImmediate(r));
    assert.deepEqual([backend.listens, backend.released], [1, 1]);
  });

  it('a result stored after the first read but before the subscription holds is caught by the read after it', async () => {
    const backend = new CountingBackend();
    const id = randomUUID();
    // the publish of this store reaches no listener: the subscription is not in place yet
    backend.beforeSubscribed = async () => { await new Promise((r) => setTimeout(r, 20)); await backend.store(meta(id, 'SUCCESS', 3)); };
    const started = Date.now();
    const got = await waitForResult(backend, id, 5000);
    assert.deepEqual([got?.status, got?.result], ['SUCCESS', 3]);
    assert.ok(Date.now() - started < 1000, 'answered at once, not at the end of the wait');
    assert.deepEqual([backend.reads, backend.released], [2, 1]);
  });

  it('a result stored during the wait wakes it; the timeout answers with the latest state', async () => {
    const backend = new CountingBackend();
    const id = randomUUID();
    setTimeout(() => { void backend.store(meta(id, 'SUCCESS', 9)); }, 30);
    assert.equal((await waitForResult(backend, id, 5000))?.result, 9);
    const other = randomUUID();
    setTimeout(() => { void backend.store(meta(other, 'STARTED')); }, 10);
    assert.equal((await waitForResult(backend, other, 100))?.status, 'STARTED');
    assert.equal(backend.released, 2);
  });
});
