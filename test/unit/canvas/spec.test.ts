import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseLinkOption, parseWorkflowSpec } from '../../../src/canvas/spec.ts';

const t = (task = 'tasks.add', args: unknown[] = [1, 2]) => ({ task, args });

/** The pointer (and field) of the GW_ERR_BAD_WORKFLOW a spec gets. */
function refused(spec: unknown, limits?: { maxNodes: number; maxDepth: number }): { pointer: string; field?: string; message: string } {
  try {
    parseWorkflowSpec(spec, limits);
  } catch (err: any) {
    assert.equal(err.code, 'GW_ERR_BAD_WORKFLOW', err.message);
    assert.equal(err.statusCode, 400);
    return { pointer: err.details.pointer, field: err.details.field, message: err.message };
  }
  assert.fail(`accepted ${JSON.stringify(spec)}`);
}

describe('workflow spec validation', () => {
  it('accepts every node type, nested', () => {
    const spec = parseWorkflowSpec({
      chain: [
        { ...t(), options: { queue: 'q', countdown: 1, link: t('tasks.mul'), link_error: [t('tasks.err')] }, immutable: true },
        { group: [t(), { chain: [t(), t()] }], id: 'g-1' },
        { chord: { header: [t(), { map: { task: 'tasks.xsum', items: [[1], [2]] } }], body: { chain: [t(), t()] } } },
        { starmap: { task: 'tasks.add', items: [[1, 2]] } },
        { chunks: { task: 'tasks.add', items: [[1, 2], [3, 4]], size: 1 } },
      ],
    });
    assert.equal(spec.type, 'chain');
    const first = spec.type === 'chain' ? spec.steps[0] : undefined;
    assert.equal(first?.type === 'task' && first.link[0]?.pointer, '/chain/0/options/link');
    assert.equal(first?.type === 'task' && first.linkError[0]?.pointer, '/chain/0/options/link_error/0');
  });

  it('points at the offending node', () => {
    assert.deepEqual(refused({ chain: [] }), { pointer: '', field: 'chain', message: 'chain must not be empty (at /)' });
    assert.equal(refused({ chain: [t(), { group: [] }] }).pointer, '/chain/1');
    assert.equal(refused({ group: [t(), { spawn: [] }] }).pointer, '/group/1');
    assert.match(refused({ group: [t(), { spawn: [] }] }).message, /unknown node type/);
    assert.deepEqual(refused({ chord: { header: [], body: t() } }), { pointer: '', field: 'chord.header', message: 'chord.header must be a non-empty array of nodes (at /)' });
    assert.equal(refused({ chord: { header: [t()], body: { task: 'tasks.x', args: 5 } } }).pointer, '/chord/body');
    assert.equal(refused({ chord: { header: [t()], body: { task: 'tasks.x', args: 5 } } }).field, 'args');
    assert.equal(refused({ group: [t(), { task: 'tasks.x', kwargs: [] }] }).field, 'kwargs');
    assert.equal(refused({ chain: [{ task: 'not a name!' }] }).pointer, '/chain/0');
    assert.equal(refused({ task: 'a', options: { link: { task: 'b', args: 'x' } } }).pointer, '/options/link');
    assert.equal(refused({ task: 'a', options: { link: [t(), { chain: [] }] } }).pointer, '/options/link/1');
    assert.equal(refused({ task: 'a/b~c' }).pointer, '');
    assert.equal(refused({ group: [{ 'a/b': 1 }] }).pointer, '/group/0');
    assert.equal(refused({ chunks: { task: 'a', items: [1], size: 1 } }).field, 'chunks.items');
    assert.equal(refused({ chunks: { task: 'a', items: [[1]], size: 0 } }).field, 'chunks.size');
    assert.equal(refused({ starmap: { task: 'a', items: [[1], 2] } }).field, 'starmap.items');
    assert.equal(refused(5).pointer, '');
    assert.match(refused({ task: 'a', chain: [] }).message, /ambiguous/);
  });

  it('checks options, their types and combinations', () => {
    assert.equal(refused({ task: 'a', options: { nope: 1 } }).field, 'options');
    assert.match(refused({ task: 'a', options: { priority: 'high' } }).message, /options.priority/);
    assert.match(refused({ task: 'a', options: { expires: '2030-01-01T00:00:00Z' } }).message, /options.expires/);
    assert.match(refused({ task: 'a', options: { countdown: 1, eta: '2030-01-01T00:00:00Z' } }).message, /exclusive/);
    assert.match(refused({ task: 'a', options: { eta: 'tomorrow' } }).message, /ISO 8601/);
    assert.equal(refused({ chain: [{ task: 'a', options: { task_id: 'x' } }, { task: 'b', options: { task_id: 'x' } }] }).pointer, '/chain/1');
    assert.match(refused({ map: { task: 'a', items: [], options: { link: t() } } }).message, /unknown option "link"/);
  });

  it('enforces the node and depth limits', () => {
    const wide = { group: Array.from({ length: 5 }, () => t()) };
    assert.doesNotThrow(() => parseWorkflowSpec(wide, { maxNodes: 6, maxDepth: 32 }));
    assert.equal(refused(wide, { maxNodes: 5, maxDepth: 32 }).pointer, '/group/4');
    let deep: unknown = t();
    for (let i = 0; i < 4; i += 1) deep = { chain: [deep] };
    assert.doesNotThrow(() => parseWorkflowSpec(deep, { maxNodes: 100, maxDepth: 5 }));
    assert.equal(refused(deep, { maxNodes: 100, maxDepth: 4 }).pointer, '/chain/0/chain/0/chain/0/chain/0');
    assert.equal(refused({ chunks: { task: 'a', items: Array.from({ length: 10 }, () => [1]), size: 1 } }, { maxNodes: 10, maxDepth: 5 }).pointer, '');
    assert.equal(refused({ group: Array.from({ length: 1001 }, () => t()) }).pointer, '/group/999', 'default: 1000 nodes');
  });

  it('validates link / link_error of POST /tasks with pointers into the body', () => {
    assert.equal(parseLinkOption(t(), 'link').length, 1);
    assert.equal(parseLinkOption([t(), t()], 'link_error').length, 2);
    assert.deepEqual(parseLinkOption(undefined, 'link'), []);
    assert.throws(() => parseLinkOption([t(), { task: 5 }], 'link'), (err: any) => err.details.pointer === '/options/link/1');
  });
});
