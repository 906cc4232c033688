/**
 * What our worker publishes to continue a canvas, field by field against what a Celery 5.2.6 worker
 * published (redis-chain-executed, redis-link-executed, result-chord, amqp-chain-step-from-worker),
 * and the metas' `children`. Runs the real Continuation on a capturing broker and the memory backend.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../../src/backends/memory.ts';
import type { Broker, Route } from '../../../src/brokers/broker.ts';
import { parseTaskMessage } from '../../../src/protocol/message.ts';
import type { EncodedException, Json, RawMessage, TaskMessage } from '../../../src/protocol/types.ts';
import { TaskRegistry, type TaskContext } from '../../../src/worker/registry.ts';
import { Continuation } from '../../../src/worker/continuation.ts';
import { silentLogger } from '../../support/app.ts';
import { assertSameMessage, captured, fixture, ids, noIds, ORIGIN, type Captured } from './fixtures.ts';

type Obj = Record<string, any>;

class CaptureBroker {
  readonly kind = 'capture';
  readonly displayUrl = 'capture://';
  readonly sent: Captured[] = [];
  async publish(message: RawMessage, route: Route): Promise<void> {
    this.sent.push({ headers: message.headers, properties: message.properties as Obj, body: JSON.parse(message.body) as Json[], queue: route.queue });
  }
}

function setup(opts: { newId?: () => string; replyTo?: string } = {}) {
  const broker = new CaptureBroker();
  const backend = new MemoryBackend();
  const canvas = new Continuation({
    broker: broker as unknown as Broker, backend, registry: new TaskRegistry(), defaultQueue: 'celery', logger: silentLogger,
    now: () => new Date('2026-11-23T20:45:08Z'), origin: ORIGIN, newId: opts.newId ?? noIds, ...(opts.replyTo ? { replyTo: opts.replyTo } : {}),
  });
  return { broker, backend, canvas };
}

/** A captured message as the worker would receive it. */
function received(c: Captured): TaskMessage {
  return parseTaskMessage({ headers: c.headers, properties: c.properties, contentType: 'application/json', contentEncoding: 'utf-8', body: JSON.stringify(c.body) });
}

const boom: EncodedException = { exc_type: 'ValueError', exc_message: ['boom'], exc_module: 'builtins' };

describe('worker-side continuation = a Celery worker (fixtures)', () => {
  it('chain: each step publishes the next one ([retval] + args, parent/root ids, rest of embed.chain) and lists it in children', async () => {
    const f = fixture('redis-chain-executed');
    const [step1, step2, step3] = f.pushed_messages.map(captured) as [Captured, Captured, Captured];
    const { broker, canvas } = setup();
    const children1 = await canvas.beforeSuccess(received(step1), 5);
    const children2 = await canvas.beforeSuccess(received(step2), 50);
    assert.equal(broker.sent.length, 2);
    assertSameMessage(broker.sent[0] as Captured, step2, 'step 2');
    assertSameMessage(broker.sent[1] as Captured, step3, 'step 3');
    assert.deepEqual(children1, f.result_metas[step1.headers.id].children);
    assert.deepEqual(children2, f.result_metas[step2.headers.id].children);
    assert.deepEqual(await canvas.beforeSuccess(received(step3), 51), [], 'the last step publishes nothing');
  });

  it('chain step routed by its own options (amqp-chain-step-from-worker: queue "hold")', async () => {
    const f = fixture('amqp-chain-step-from-worker');
    const step2 = captured(f.messages[0]);
    const [step3] = (step2.body[2] as Obj).chain;
    const step2Sig = { task: 'tasks.mul', args: [10], kwargs: {}, options: { queue: 'hold', task_id: step2.headers.id, reply_to: step2.properties['reply_to'] }, subtask_type: null, immutable: false };
    const first = received({ ...step2, headers: { ...step2.headers, task: 'tasks.add', id: f.first_task_id, parent_id: null }, body: [[2, 3], {}, { chain: [step3, step2Sig] }] });
    const { broker, canvas } = setup();
    await canvas.beforeSuccess(first, 5);
    assertSameMessage(broker.sent[0] as Captured, step2, 'step 2');
  });

  it('link: the callback gets [retval] + args and the worker\'s reply_to; link_error: errbacks as a group with [failed id]', async () => {
    const f = fixture('redis-link-executed');
    const [parent, callback, failing, errback] = f.pushed_messages.map(captured) as [Captured, Captured, Captured, Captured];
    const { broker, canvas } = setup({ replyTo: callback.properties['reply_to'], newId: ids(callback.headers.id, errback.headers.group, errback.headers.id) });
    const children = await canvas.beforeSuccess(received(parent), 5);
    assertSameMessage(broker.sent[0] as Captured, callback, 'callback');
    assert.deepEqual(children, f.result_meta_parent.children);
    await canvas.afterFailure(received(failing), boom, 'Traceback…');
    assertSameMessage(broker.sent[1] as Captured, errback, 'errback');
  });

  it('chord: each member records its part; the last publishes the body with the results in header order', async () => {
    const f = fixture('result-chord');
    const [h0, h1, h2, body] = f.pushed_messages.map(captured) as [Captured, Captured, Captured, Captured];
    const { broker, backend, canvas } = setup();
    await backend.setChordSize(f.group_id, 3);
    // completion order differs from header order: results must still come out as [2, 4, 6]
    for (const [msg, value] of [[h2, 6], [h0, 2], [h1, 4]] as const) {
      assert.deepEqual(await canvas.beforeSuccess(received(msg), value), [], 'header members have no children');
      await canvas.afterSuccess(received(msg), value);
    }
    assert.equal(broker.sent.length, 1);
    const expected = { ...body, headers: { ...body.headers, root_id: h1.headers.id, parent_id: h1.headers.id } };
    assertSameMessage(broker.sent[0] as Captured, expected, 'chord body');
    assert.equal(await backend.chordPartReturn(f.group_id, 0, { taskId: 'late', state: 'SUCCESS', result: 1 }), null, 'the chord keys are gone');
  });

  it('chord: a failed member fails the body with ChordError and fires the body\'s errbacks', async () => {
    const f = fixture('result-chord');
    const [h0, h1] = f.pushed_messages.map(captured) as [Captured, Captured];
    const bodySig = (h0.body[2] as Obj).chord;
    bodySig.options.link_error = [{ task: 'tasks.on_error', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false }];
    const withErrback = (c: Captured): Captured => ({ ...c, body: [c.body[0] as Json, {}, { ...(c.body[2] as Obj), chord: bodySig }] });
    const { broker, backend, canvas } = setup({ newId: ids('errgroup', 'errback') });
    await backend.setChordSize(f.group_id, 2);
    await canvas.afterFailure(received(withErrback(h0)), boom, null);
    await canvas.afterSuccess(received(withErrback(h1)), 4);
    const meta = await backend.get(f.body_task_id);
    assert.equal(meta?.status, 'FAILURE');
    assert.deepEqual(meta?.result, { exc_type: 'ChordError', exc_message: [`Dependency ${h0.headers.id} raised ValueError('boom')`], exc_module: 'celery.exceptions' });
    assert.equal(broker.sent.length, 1);
    const eb = broker.sent[0] as Captured;
    assert.deepEqual([eb.headers['task'], eb.body[0], eb.headers['group'], eb.headers['parent_id']], ['tasks.on_error', [f.body_task_id], 'errgroup', f.body_task_id]);
  });

  it('failure: every remaining chain step is stored FAILURE', async () => {
    const f = fixture('redis-chain-executed');
    const step1 = captured(f.pushed_messages[0]);
    const { backend, canvas } = setup();
    await canvas.afterFailure(received(step1), boom, 'tb');
    for (const id of f.task_ids_in_order.slice(1)) {
      const meta = await backend.get(id);
      assert.deepEqual([meta?.status, meta?.result, meta?.traceback], ['FAILURE', boom, 'tb'], id);
    }
  });

  it('built-ins: celery.chunks publishes a group of starmaps, celery.chord runs a chord, celery.chain refuses', async () => {
    const { broker, backend, canvas } = setup({ newId: ids('g1', 's1', 's2', 'g2') });
    const ctx = (kwargs: Obj) => ({ id: 'parent', rootId: 'root', kwargs, name: 'x' }) as unknown as TaskContext;
    const add = { task: 'tasks.add', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false };
    const chunks = await canvas.builtin('celery.chunks')?.handler(ctx({ task: add, it: [[1, 2], [3, 4], [5, 6]], n: 2 }));
    assert.deepEqual(broker.sent.map((m) => [m.headers['task'], m.headers['group'], (m.body[1] as Obj)['it']]), [['celery.starmap', 'g1', [[1, 2], [3, 4]]], ['celery.starmap', 'g1', [[5, 6]]]]);
    assert.deepEqual(chunks, [['g1', null], [[['s1', null], null], [['s2', null], null]]]);
    const self = received({ headers: { task: 'celery.chunks', id: 'parent', root_id: 'root' }, properties: {}, body: [[], {}, {}], queue: 'celery' });
    assert.deepEqual(await canvas.beforeSuccess(self, chunks as Json), [chunks], 'the group is the task\'s child');
    broker.sent.length = 0;
    const header = [{ ...add, args: [1, 1], options: { task_id: 'h1' } }, { ...add, args: [2, 2], options: { task_id: 'h2' } }];
    await canvas.builtin('celery.chord')?.handler(ctx({ header, body: { ...add, task: 'tasks.xsum', options: { task_id: 'b1' } } }));
    assert.deepEqual(broker.sent.map((m) => [m.headers['id'], m.headers['group'], m.headers['group_index'], m.headers['parent_id']]), [['h1', 'g2', 0, 'parent'], ['h2', 'g2', 1, 'parent']]);
    assert.equal(await backend.chordPartReturn('g2', 0, { taskId: 'h1', state: 'SUCCESS', result: 2 }), null, 'size stored: one part is not enough');
    assert.throws(() => canvas.builtin('celery.chain')?.handler(ctx({})), /chain is not a real task/);
  });
});
