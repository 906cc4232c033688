/**
 * What every ResultBackend adapter must do, as one suite run against each of them. Each test uses its
 * own random task ids.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import type { Json, ResultMeta, State } from '../../src/protocol/types.ts';

export interface BackendSuiteOptions {
  /** called once at the end with every task id the suite used */
  cleanup?: (taskIds: string[]) => Promise<void>;
}

/** Metas a listener received; `until(n)` resolves once n have arrived. */
class Received {
  readonly metas: ResultMeta[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly listener = (meta: ResultMeta): void => {
    this.metas.push(meta);
    this.#waiters = this.#waiters.filter((w) => (this.metas.length >= w.n ? (w.resolve(), false) : true));
  };

  async until(n: number, timeoutMs = 3000): Promise<ResultMeta[]> {
    if (this.metas.length < n) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ n, resolve })),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`expected ${n} notifications within ${timeoutMs} ms, got ${this.metas.length}`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.metas.slice(0, n);
  }
}

export function backendConformance(name: string, makeBackend: () => Promise<ResultBackend>, opts: BackendSuiteOptions = {}): void {
  describe(`ResultBackend conformance: ${name}`, () => {
    let backend: ResultBackend;
    const ids: string[] = [];
    const newId = (): string => {
      const id = randomUUID();
      ids.push(id);
      return id;
    };
    const meta = (taskId: string, status: State, result: Json): ResultMeta => buildMeta({ taskId, status, result, now: new Date() });

    before(async () => { backend = await makeBackend(); });
    after(async () => {
      await backend.close();
      await opts.cleanup?.(ids);
    });

    it('returns null for an id with nothing stored', async () => {
      assert.equal(await backend.get(newId()), null);
    });

    it('stores and reads back a meta', async () => {
      const id = newId();
      const m = buildMeta({ taskId: id, status: 'SUCCESS', result: { sum: 5, text: 'héllo 🚀', list: [1, null] }, children: [[[randomUUID(), null], null]], parentId: randomUUID(), now: new Date() });
      await backend.store(m);
      const got = await backend.get(id);
      assert.deepEqual(got, m);
      assert.deepEqual(Object.keys(got!), Object.keys(m), 'key order kept');
      assert.equal(await backend.get(newId()), null, 'other ids unaffected');
    });

    it('replaces a non-final state', async () => {
      const id = newId();
      await backend.store(meta(id, 'STARTED', { pid: 1, hostname: 'w@h' }));
      assert.equal((await backend.get(id))?.status, 'STARTED');
      await backend.store(meta(id, 'SUCCESS', 42));
      const got = await backend.get(id);
      assert.equal(got?.status, 'SUCCESS');
      assert.equal(got?.result, 42);
      assert.equal(typeof got?.date_done, 'string');
    });

    it('never overwrites SUCCESS', async () => {
      const id = newId();
      await backend.store(meta(id, 'SUCCESS', 1));
      await backend.store(meta(id, 'FAILURE', { exc_type: 'ValueError', exc_message: ['late'], exc_module: 'builtins' }));
      await backend.store(meta(id, 'STARTED', { pid: 2, hostname: 'w@h' }));
      await backend.store(meta(id, 'SUCCESS', 2));
      const got = await backend.get(id);
      assert.equal(got?.status, 'SUCCESS');
      assert.equal(got?.result, 1);
    });

    it('notifies listeners of each stored meta, and stops after unsubscribe', async () => {
      const id = newId();
      const first = new Received();
      const second = new Received();
      const off1 = await backend.listen(id, first.listener);
      const off2 = await backend.listen(id, second.listener);
      await backend.store(meta(id, 'STARTED', { pid: 1, hostname: 'w@h' }));
      await Promise.all([first.until(1), second.until(1)]);
      off1();
      off1(); // unsubscribing twice is harmless
      await backend.store(meta(id, 'SUCCESS', 7));
      const [started, success] = await second.until(2);
      assert.equal(started?.status, 'STARTED');
      assert.deepEqual(success, await backend.get(id));
      assert.deepEqual(first.metas.map((m) => m.status), ['STARTED'], 'no notification after unsubscribe');
      off2();
    });

    it('delivers nothing once the last listener of a task is gone', async () => {
      const [gone, barrier] = [newId(), newId()];
      const late = new Received();
      const probe = new Received();
      (await backend.listen(gone, late.listener))();
      const off = await backend.listen(barrier, probe.listener);
      await backend.store(meta(gone, 'SUCCESS', 1));
      // the barrier task's notification comes after the other one on any ordered transport
      await backend.store(meta(barrier, 'SUCCESS', 2));
      await probe.until(1);
      assert.equal(late.metas.length, 0);
      assert.equal(probe.metas[0]?.task_id, barrier);
      off();
    });

    it('does not notify about a refused overwrite of SUCCESS', async () => {
      const id = newId();
      await backend.store(meta(id, 'SUCCESS', 1));
      const got = new Received();
      const off = await backend.listen(id, got.listener);
      await backend.store(meta(id, 'FAILURE', { exc_type: 'ValueError', exc_message: ['x'], exc_module: 'builtins' }));
      await backend.store(meta(id, 'SUCCESS', 3)); // also refused; a transport that notified would do so in order
      const barrier = newId();
      const probe = new Received();
      const offProbe = await backend.listen(barrier, probe.listener);
      await backend.store(meta(barrier, 'SUCCESS', 0));
      await probe.until(1);
      assert.equal(got.metas.length, 0);
      off();
      offProbe();
    });

    it('remembers submitted ids', async () => {
      const [a, b, unknown] = [newId(), newId(), newId()];
      await backend.rememberSubmitted([a, b]);
      await backend.rememberSubmitted([]);
      assert.equal(await backend.wasSubmitted(a), true);
      assert.equal(await backend.wasSubmitted(b), true);
      assert.equal(await backend.wasSubmitted(unknown), false);
      assert.equal(await backend.get(a), null, 'submitted is not a result');
    });

    it('pings, and close is idempotent', async () => {
      const b = await makeBackend();
      await b.ping();
      await Promise.all([b.close(), b.close()]);
      await b.close();
    });
  });
}
