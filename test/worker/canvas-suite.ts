/**
 * Workflows end to end on one broker/backend pair: POST /workflows → our Node worker continues the
 * canvas (chain steps, callbacks, chords, built-ins) → GET /workflows/:id. Run on memory and on Redis.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { ResultBackend } from '../../src/backends/backend.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';

export interface Adapters {
  broker: Broker;
  backend: ResultBackend;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const valueError = (message: string) => Object.assign(new Error(message), { name: 'ValueError' });

function registry(): TaskRegistry {
  return new TaskRegistry().registerAll({
    't.add': (x: number, y: number) => x + y,
    't.mul': (x: number, y: number) => x * y,
    't.xsum': (numbers: number[]) => numbers.reduce((a, b) => a + b, 0),
    't.slow': async (ms: number, value: unknown) => { await sleep(ms); return value; },
    't.fail': () => { throw valueError('boom'); },
    't.on_error': (taskId: string) => ({ failed: taskId }),
  });
}

const s = (task: string, ...args: unknown[]) => ({ task, args });

/** Poll GET /workflows/:id until its overall state is final (and `also` holds: a failed workflow is still being marked). */
async function settled(gw: TestGateway, id: string, also: (wf: any) => boolean = () => true, ms = 10_000): Promise<any> {
  const deadline = Date.now() + ms;
  for (;;) {
    const res = await gw.get(`/workflows/${id}`);
    assert.equal(res.status, 200, JSON.stringify(res.json));
    if (['succeeded', 'failed', 'revoked'].includes(res.json.state) && also(res.json)) return res.json;
    if (Date.now() > deadline) assert.fail(`workflow ${id} still ${res.json.state}: ${JSON.stringify(res.json.tree)}`);
    await sleep(20);
  }
}

export function canvasSuite(name: string, make: () => Promise<Adapters>): void {
  describe(`workflows on ${name}`, () => {
    let a: Adapters;
    let gw: TestGateway;
    let worker: Worker;
    const queue = `canvas-${randomUUID()}`;

    const submit = async (spec: unknown): Promise<any> => {
      const res = await gw.post('/workflows', spec);
      assert.equal(res.status, 202, JSON.stringify(res.json));
      return res.json;
    };

    before(async () => {
      a = await make();
      worker = new Worker({
        broker: a.broker, backend: a.backend, registry: registry(), queues: [queue], concurrency: 4, prefetchMultiplier: 2,
        hostname: `canvas.${process.pid}@host`, logger: silentLogger, shutdownTimeout: 2, defaultQueue: queue,
      });
      await worker.start();
      gw = await startGateway({ broker: a.broker, backend: a.backend, env: { CELERY_DEFAULT_QUEUE: queue } });
    });
    after(async () => {
      await worker?.close();
      await gw?.app.close();
      await a.broker.close();
      await a.backend.close();
    });

    it('chain: each step gets the previous result; metas list the next step in children', async () => {
      const sent = await submit({ chain: [s('t.add', 2, 3), s('t.mul', 10), { ...s('t.add', 100, 1), immutable: true }, s('t.add', 1)] });
      const [s1, s2, , s4] = sent.tree.steps.map((n: any) => n.id);
      assert.equal(sent.tree.id, s4);
      const wf = await settled(gw, sent.id);
      assert.equal(wf.state, 'succeeded');
      assert.deepEqual(wf.tree.steps.map((n: any) => n.result), [5, 50, 101, 102]);
      assert.equal(wf.tree.result, 102);
      const m1 = await a.backend.get(s1);
      assert.deepEqual(m1?.children, [[[s2, null], null]]);
      assert.equal((await a.backend.get(s2))?.parent_id, s1);
    });

    it('chord: the body gets the header results in header order, whatever order they finish in', async () => {
      const sent = await submit({ chord: { header: [s('t.slow', 300, 1), s('t.slow', 0, 2), s('t.slow', 50, 3)], body: s('t.xsum') } });
      const wf = await settled(gw, sent.id);
      assert.equal(wf.state, 'succeeded');
      assert.equal(wf.tree.body.result, 6);
      assert.equal(wf.tree.result, 6);
      const bodyMeta = await a.backend.get(sent.tree.body.id);
      assert.equal(bodyMeta?.parent_id, sent.tree.header[0].id, 'published by the member that finished last');
    });

    it('a group inside a chain becomes a chord; a chain as chord body', async () => {
      const sent = await submit({ chain: [s('t.add', 1, 1), { group: [s('t.mul', 2), s('t.mul', 3)] }, s('t.xsum'), s('t.mul', 10)] });
      const wf = await settled(gw, sent.id);
      assert.equal(wf.state, 'succeeded', JSON.stringify(wf.tree));
      assert.deepEqual(wf.tree.steps[1].result, [4, 6]);
      assert.equal(wf.tree.result, 100);
    });

    it('group with link callbacks (several → one group) and map / starmap / chunks built-ins', async () => {
      const sent = await submit({
        group: [
          { ...s('t.add', 2, 3), options: { link: [s('t.mul', 10), s('t.add', 1)] } },
          { map: { task: 't.xsum', items: [[1, 2], [3, 4]] } },
          { starmap: { task: 't.add', items: [[1, 2], [3, 4]] } },
          { chunks: { task: 't.add', items: [[1, 2], [3, 4], [5, 6]], size: 2 } },
        ],
      });
      const wf = await settled(gw, sent.id);
      assert.equal(wf.state, 'succeeded', JSON.stringify(wf.tree));
      assert.deepEqual(wf.tree.result, [5, [3, 7], [3, 7], [[3, 7], [11]]]);
      const [cb1, cb2] = wf.tree.members[0].link;
      assert.deepEqual([cb1.result, cb2.result], [50, 6]);
      const children = (await a.backend.get(sent.tree.members[0].id))?.children as any[];
      assert.equal(children.length, 1, 'the callbacks were published as one group');
      assert.deepEqual(children[0][1].map((c: any) => c[0][0]), [cb1.id, cb2.id]);
    });

    it('a failing step: remaining steps FAILURE, link_error called with the failed id', async () => {
      const sent = await submit({ chain: [s('t.add', 1, 1), { ...s('t.fail'), options: { link_error: s('t.on_error') } }, s('t.add', 1), s('t.add', 2)] });
      const wf = await settled(gw, sent.id, (w) => w.tree.steps[3].state !== 'PENDING');
      assert.equal(wf.state, 'failed');
      const failedId = sent.tree.steps[1].id;
      assert.deepEqual(wf.tree.steps.map((n: any) => n.state), ['SUCCESS', 'FAILURE', 'FAILURE', 'FAILURE']);
      assert.equal(wf.tree.steps[3].error.type, 'ValueError');
      assert.equal(wf.tree.error.message, 'boom');
      const errback = sent.tree.steps[1].link_error[0].id;
      const deadline = Date.now() + 5000;
      while (!(await a.backend.get(errback)) && Date.now() < deadline) await sleep(20);
      assert.deepEqual((await a.backend.get(errback))?.result, { failed: failedId });
    });

    it('a failing chord member fails the body with ChordError', async () => {
      const sent = await submit({ chord: { header: [s('t.add', 1, 1), s('t.fail')], body: { chain: [s('t.xsum'), s('t.mul', 2)] } } });
      const wf = await settled(gw, sent.id, (w) => w.tree.body.state !== 'PENDING');
      assert.equal(wf.state, 'failed');
      assert.equal(wf.tree.body.state, 'FAILURE');
      for (const step of wf.tree.body.steps) {
        assert.equal(step.error.type, 'ChordError');
        assert.equal(step.error.message, `Dependency ${sent.tree.header[1].id} raised ValueError('boom')`);
      }
    });

    it('refuses bad specs with a pointer; unknown workflow is 404', async () => {
      const bad = await gw.post('/workflows', { chain: [s('t.add', 1, 1), { group: [] }] });
      assert.equal(bad.status, 400);
      assert.equal(bad.json.code, 'GW_ERR_BAD_WORKFLOW');
      assert.equal(bad.json.details.pointer, '/chain/1');
      const missing = await gw.get(`/workflows/${randomUUID()}`);
      assert.equal(missing.status, 404);
      assert.equal(missing.json.code, 'GW_ERR_WORKFLOW_NOT_FOUND');
    });

    it('POST /tasks/:name accepts link / link_error', async () => {
      const res = await gw.post('/tasks/t.add', { args: [2, 3], options: { link: s('t.mul', 10) } });
      assert.equal(res.status, 202, JSON.stringify(res.json));
      const done = await gw.get(`/results/${res.json.id}?wait=5`);
      const [[[callbackId]]] = done.json.children;
      const cb = await gw.get(`/results/${callbackId}?wait=5`);
      assert.equal(cb.json.result, 50);
      assert.equal(cb.json.parent_id, res.json.id);
    });
  });
}
