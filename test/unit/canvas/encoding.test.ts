/**
 * What a client publishes for a canvas, field by field against Celery 5.2.6's own messages
 * (redis-* and amqp-* fixtures): the spec is given the fixture's ids, everything else must match.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CanvasRun } from '../../../src/canvas/apply.ts';
import { buildSignature, compileWorkflow } from '../../../src/canvas/compile.ts';
import { parseWorkflowSpec } from '../../../src/canvas/spec.ts';
import { assertSameMessage, captured, fixture, ids, noIds, ours, publications } from './fixtures.ts';

const sig = (task: string, args: unknown[] = [], id?: string, extra: Record<string, unknown> = {}) =>
  ({ task, args, ...(id ? { options: { task_id: id, ...extra } } : Object.keys(extra).length ? { options: extra } : {}) });

function compile(spec: unknown, replyTo: string, newId = noIds) {
  return compileWorkflow(parseWorkflowSpec(spec), { newId, replyTo });
}

/** Compare our publications with the captured messages, matched by task id. */
function assertMessages(actions: ReturnType<typeof compile>['actions'], messages: any[], name: string): void {
  const sent = publications(actions).map(ours);
  const expected = messages.map(captured);
  assert.equal(sent.length, expected.length, `${name}: number of messages`);
  for (const exp of expected) {
    const mine = sent.find((m) => m.headers['id'] === exp.headers['id']);
    assert.ok(mine, `${name}: a message with id ${exp.headers['id']}`);
    assertSameMessage(mine, exp, `${name} ${exp.headers['task']}[${exp.headers['id']}]`);
  }
}

for (const broker of ['redis', 'amqp'] as const) {
  describe(`client-side canvas encoding = Celery's (${broker} fixtures)`, () => {
    it('chain: one message, the rest reversed in embed.chain with pre-assigned ids', () => {
      const f = fixture(`${broker}-chain`);
      const first = captured(f.messages[0]);
      const [step3, step2] = (first.body[2] as any).chain;
      const spec = { chain: [sig('tasks.add', [2, 3], first.headers.id), sig('tasks.mul', [10], step2.options.task_id), sig('tasks.add', [1], step3.options.task_id)] };
      const { actions, tree } = compile(spec, first.properties['reply_to']);
      assertMessages(actions, f.messages, `${broker}-chain`);
      assert.equal(tree.id, step3.options.task_id, 'the chain is known by its last step');
    });

    it('group: one message per member with the group header, group_index null, own root_id', () => {
      const f = fixture(`${broker}-group`);
      const msgs = f.messages.map(captured);
      const byArgs = (n: number) => msgs.find((m: any) => m.body[0][0] === n);
      const spec = { group: [sig('tasks.add', [1, 1], byArgs(1).headers.id), sig('tasks.add', [2, 2], byArgs(2).headers.id)], id: msgs[0].headers.group };
      const { actions } = compile(spec, msgs[0].properties['reply_to']);
      assertMessages(actions, f.messages, `${broker}-group`);
      assert.deepEqual(publications(actions).map((m) => m.args), [[1, 1], [2, 2]], 'published in order');
    });

    it('chord: header with group/group_index/embed.chord, chord size stored before the last header message', () => {
      const f = fixture(`${broker}-chord`);
      const msgs = f.messages.map(captured);
      const byIndex = (i: number) => msgs.find((m: any) => m.headers.group_index === i);
      const body = (msgs[0].body[2] as any).chord;
      const spec = {
        chord: { header: [sig('tasks.add', [1, 1], byIndex(0).headers.id), sig('tasks.add', [2, 2], byIndex(1).headers.id)], body: sig('tasks.xsum', [], body.options.task_id) },
        id: msgs[0].headers.group,
      };
      const { actions, tree } = compile(spec, msgs[0].properties['reply_to']);
      assertMessages(actions, f.messages, `${broker}-chord`);
      assert.deepEqual(actions.map((a) => a.type), ['publish', 'chord-size', 'publish']);
      assert.deepEqual(actions[1], { type: 'chord-size', groupId: msgs[0].headers.group, size: 2 });
      assert.equal(tree.id, body.options.task_id);
    });

    it('link / link_error: embed.callbacks and embed.errbacks as plain signatures', () => {
      const f = fixture(`${broker}-link`);
      const msg = captured(f.messages[0]);
      const spec = parseWorkflowSpec({ ...sig('tasks.add', [2, 3], msg.headers.id), options: { task_id: msg.headers.id, link: sig('tasks.mul', [10]), link_error: sig('tasks.on_error') } });
      // Celery's link=sig leaves the callback without an id (workflows pre-assign one, see below)
      const built = buildSignature(spec, { newId: noIds, freezeLinks: false });
      const run = new CanvasRun({ newId: noIds, replyTo: msg.properties['reply_to'] });
      run.apply(built.sig);
      assertMessages(run.actions, f.messages, `${broker}-link`);
    });
  });
}

describe('client-side canvas encoding: redis-only fixtures', () => {
  it('map / starmap: one celery.map / celery.starmap message; chunks: a group of starmaps', () => {
    const f = fixture('redis-map-starmap-chunks');
    const [mapMsg, starmapMsg, chunk1, chunk2] = f.pushed_messages.map(captured);
    const replyTo = mapMsg.properties['reply_to'];
    const map = compile({ map: { task: 'tasks.xsum', items: [[1, 2], [3, 4]], options: { task_id: mapMsg.headers.id } } }, replyTo);
    assertMessages(map.actions, [f.pushed_messages[0]], 'map');
    const starmap = compile({ starmap: { task: 'tasks.add', items: [[1, 2], [3, 4]], options: { task_id: starmapMsg.headers.id } } }, replyTo);
    assertMessages(starmap.actions, [f.pushed_messages[1]], 'starmap');
    const chunks = compile({ chunks: { task: 'tasks.add', items: [[1, 2], [3, 4], [5, 6]], size: 2 }, id: chunk1.headers.group }, replyTo, ids(chunk1.headers.id, chunk2.headers.id));
    assertMessages(chunks.actions, f.pushed_messages.slice(2), 'chunks');
    assert.deepEqual(chunks.tree, {
      type: 'chunks', id: chunk1.headers.group, task: 'tasks.add',
      chunks: [{ type: 'starmap', id: chunk1.headers.id, task: 'tasks.add' }, { type: 'starmap', id: chunk2.headers.id, task: 'tasks.add' }],
    });
  });

  it('a group followed by tasks in a chain becomes a chord whose body is a celery.chain signature', () => {
    const f = fixture('redis-chain-in-chord-body');
    const msgs = f.messages.map(captured);
    const byIndex = (i: number) => msgs.find((m: any) => m.headers.group_index === i);
    const [xsum, mul] = (msgs[0].body[2] as any).chord.kwargs.tasks;
    const spec = {
      chain: [
        { group: [sig('tasks.add', [1, 1], byIndex(0).headers.id), sig('tasks.add', [2, 2], byIndex(1).headers.id)], id: msgs[0].headers.group },
        sig('tasks.xsum', [], xsum.options.task_id),
        sig('tasks.mul', [3], mul.options.task_id),
      ],
    };
    const { actions, tree } = compile(spec, msgs[0].properties['reply_to']);
    assertMessages(actions, f.messages, 'chain-in-chord-body');
    assert.deepEqual(actions.map((a) => a.type), ['publish', 'chord-size', 'publish']);
    assert.equal(tree.id, mul.options.task_id, 'the workflow ends with the last body step');
  });

  it('a chord header member that is a chain carries the chord on its last step only', () => {
    const { actions } = compile({ chord: { header: [{ chain: [sig('a', [1], 'a1'), sig('b', [], 'b1')] }, sig('c', [], 'c1')], body: sig('d', [], 'd1') }, id: 'g1' }, 'oid');
    const [first, c] = publications(actions);
    assert.equal(first?.id, 'a1');
    assert.equal(first?.group, null, 'the first step of a header chain is not in the group');
    const last = first?.chain?.[0];
    assert.deepEqual([last?.options['task_id'], last?.options['group_id'], last?.options['group_index'], (last?.options['chord'] as any)?.options.task_id], ['b1', 'g1', 0, 'd1']);
    assert.deepEqual([c?.group, c?.groupIndex, c?.chord?.options['task_id']], ['g1', 1, 'd1']);
    assert.deepEqual(actions.find((a) => a.type === 'chord-size'), { type: 'chord-size', groupId: 'g1', size: 2 });
  });

  it('workflow links get pre-assigned ids, reported in the tree', () => {
    const { actions, tree } = compile({ ...sig('tasks.add', [2, 3], 't1'), options: { task_id: 't1', link: [sig('tasks.mul', [10])], link_error: sig('tasks.on_error') } }, 'oid', ids('l1', 'e1'));
    const [m] = publications(actions);
    assert.equal(m?.callbacks?.[0]?.options['task_id'], 'l1');
    assert.equal(m?.errbacks?.[0]?.options['task_id'], 'e1');
    assert.deepEqual(tree, { type: 'task', id: 't1', task: 'tasks.add', link: [{ type: 'task', id: 'l1', task: 'tasks.mul' }], link_error: [{ type: 'task', id: 'e1', task: 'tasks.on_error' }] });
  });
});
