import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { asTuple, CanvasRun } from '../../../src/canvas/apply.ts';
import { compileWorkflow } from '../../../src/canvas/compile.ts';
import { pyExceptionRepr, pyJsonDumps, pyRepr } from '../../../src/canvas/python.ts';
import { chainSig, groupSig, kindOf, pipe, taskSig } from '../../../src/canvas/signature.ts';
import { parseWorkflowSpec } from '../../../src/canvas/spec.ts';
import { overallState, viewTree, type WorkflowNode } from '../../../src/canvas/tree.ts';
import type { ResultMeta } from '../../../src/protocol/types.ts';
import { publications } from './fixtures.ts';

let n = 0;
const newId = () => `id${++n}`;
const a = taskSig('a');
const b = taskSig('b');
const c = taskSig('c');

describe('composition (Celery\'s | operator)', () => {
  it('task | task is a chain; chain | group of one unrolls it; group | x is a chord; chord | task grows the body', () => {
    assert.deepEqual((pipe(a, b).kwargs['tasks'] as any[]).map((t) => t.task), ['a', 'b']);
    assert.deepEqual((pipe(chainSig([a]), groupSig([b])).kwargs['tasks'] as any[]).map((t) => t.task), ['a', 'b']);
    const chord = pipe(groupSig([a, b]), c);
    assert.equal(kindOf(chord), 'chord');
    const grown = pipe(chord, taskSig('d'));
    assert.equal(kindOf(grown), 'chord');
    assert.deepEqual(((grown.kwargs['body'] as any).kwargs.tasks as any[]).map((t) => t.task), ['c', 'd']);
    assert.equal(kindOf(pipe(chainSig([a]), chainSig([b, c]))), 'chain');
    assert.equal(kindOf(pipe(chainSig([]), groupSig([a, b]))), 'group', 'chain() | group is the group');
  });

  it('a chain of a task then two groups: the first group becomes a chord whose body is the second', () => {
    const { actions } = compileWorkflow(parseWorkflowSpec({ chain: [{ task: 'a' }, { group: [{ task: 'b' }, { task: 'c' }] }, { group: [{ task: 'd' }, { task: 'e' }] }] }), { newId, replyTo: 'oid' });
    const [first] = publications(actions);
    const [next] = first?.chain ?? [];
    assert.equal(next?.subtask_type, 'chord');
    assert.equal((next?.kwargs['body'] as any).subtask_type, 'group');
  });

  it('a worker applying a chord as a chain step passes the result to the header and the rest of the chain to the body', () => {
    const { actions } = compileWorkflow(parseWorkflowSpec({ chain: [{ task: 'a' }, { group: [{ task: 'b' }, { task: 'c' }] }, { task: 'd' }, { task: 'e' }] }), { newId, replyTo: 'oid' });
    const chordStep = publications(actions)[0]?.chain?.[0];
    assert.ok(chordStep);
    const run = new CanvasRun({ newId, replyTo: 'worker', current: { id: 'A', rootId: 'A' } });
    run.apply(chordStep, [7], {}, { chain: [taskSig('z')] as any, parent_id: 'A', root_id: 'A' });
    const [hb, hc] = publications(run.actions);
    assert.deepEqual([hb?.args, hc?.args, hb?.parentId, hb?.rootId], [[7], [7], 'A', 'A']);
    assert.deepEqual((hb?.chord?.kwargs['tasks'] as any[]).map((s) => s.task), ['d', 'e'], 'd | e became the body');
    assert.deepEqual((hb?.chord?.options['chain'] as any[]).map((s) => s.task), ['z'], 'the body continues the outer chain');
    assert.equal(run.actions.filter((x) => x.type === 'chord-size').length, 1);
    assert.equal(run.trail.length, 1, 'children: the header group');
    assert.equal((asTuple(run.trail[0] as any) as any)[1].length, 2);
  });
});

describe('workflow tree view', () => {
  const tree: WorkflowNode = {
    type: 'chain', id: 't3', steps: [
      { type: 'task', id: 't1', task: 'a', link_error: [{ type: 'task', id: 'e1', task: 'err' }] },
      { type: 'chord', id: 't3', group_id: 'g', header: [{ type: 'task', id: 'h1', task: 'h' }, { type: 'task', id: 'h2', task: 'h' }], body: { type: 'task', id: 't3', task: 'sum' } },
    ],
  };
  const meta = (id: string, status: string, result: unknown = null): [string, ResultMeta] => [id, { status, result, traceback: null, children: [], date_done: null, task_id: id } as ResultMeta];

  it('aggregates states; errbacks do not count', () => {
    assert.equal(overallState(tree, new Map()), 'pending');
    const running = new Map([meta('t1', 'SUCCESS', 1), meta('h1', 'STARTED')]);
    assert.equal(overallState(tree, running), 'running');
    assert.equal(viewTree(tree, running).state, 'STARTED');
    const done = new Map([meta('t1', 'SUCCESS', 1), meta('h1', 'SUCCESS', 2), meta('h2', 'SUCCESS', 3), meta('t3', 'SUCCESS', 5)]);
    assert.equal(overallState(tree, done), 'succeeded');
    const view = viewTree(tree, done) as any;
    assert.deepEqual([view.state, view.result, view.steps[1].result, view.steps[0].link_error[0].state], ['SUCCESS', 5, 5, 'PENDING']);
    const failed = new Map([meta('t1', 'FAILURE', { exc_type: 'ValueError', exc_message: ['boom'], exc_module: 'builtins' })]);
    assert.equal(overallState(tree, failed), 'failed');
    assert.deepEqual((viewTree(tree, failed) as any).error.message, 'boom');
    assert.equal(overallState(tree, new Map([meta('t1', 'REVOKED')])), 'revoked');
  });
});

describe('Python text formats', () => {
  it('json.dumps separators and ensure_ascii, repr of values and exceptions', () => {
    assert.equal(pyJsonDumps([1, 'id', 'SUCCESS', { a: [1.5, null, true], 'é': 'ü' }]), '[1, "id", "SUCCESS", {"a": [1.5, null, true], "\\u00e9": "\\u00fc"}]');
    assert.equal(pyRepr(["it's", 'a"b', 'x\ny', 1e21, false, null]), `["it's", 'a"b', 'x\\ny', 1e+21, False, None]`);
    assert.equal(pyExceptionRepr({ exc_type: 'ValueError', exc_message: ['boom'], exc_module: 'builtins' }), "ValueError('boom')");
    assert.equal(pyExceptionRepr({ exc_type: 'E', exc_message: [], exc_module: 'm' }), 'E()');
    assert.equal(pyExceptionRepr({ exc_type: 'E', exc_message: 'text', exc_module: 'm' }), "E('text')");
  });
});
