/**
 * A validated workflow spec → Celery signatures with every id assigned up front (so the answer can
 * name each node), composed the way Celery composes them (`chain(a, group, b)` is `a | group | b`,
 * i.e. a chord), then applied as a Celery client applies them. Pure.
 */
import type { Json, JsonObject, SignatureDict } from '../protocol/types.ts';
import { CanvasRun, type CanvasAction, type CanvasEnv } from './apply.ts';
import { chainSig, chainTasks, chordSig, groupSig, kindOf, mapSig, pipe, taskSig } from './signature.ts';
import type { SpecNode, TaskNode } from './spec.ts';
import type { WorkflowNode } from './tree.ts';

export interface Built {
  sig: SignatureDict;
  tree: WorkflowNode;
}

export interface BuildOptions {
  newId: () => string;
  /**
   * Give link / link_error signatures a task id up front (workflows do, so their state can be
   * shown). Celery's own `link=sig` leaves them without one: the worker picks an id when it applies them.
   */
  freezeLinks: boolean;
}

/** `it` split in slices of `n` (Celery's `utils.functional.chunks`). */
function slices<T>(items: T[], n: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += n) out.push(items.slice(i, i + n));
  return out;
}

function linkSigs(nodes: SpecNode[], o: BuildOptions): { sigs: SignatureDict[]; trees: WorkflowNode[] } {
  const built = nodes.map((n) => buildSignature(n, o));
  return { sigs: built.map((b) => b.sig), trees: built.map((b) => b.tree) };
}

function buildTask(node: TaskNode, o: BuildOptions): Built {
  const { task_id: given, ...rest } = node.options;
  const options: JsonObject = {};
  const id = typeof given === 'string' ? given : o.freezeLinks ? o.newId() : null;
  if (id) options['task_id'] = id;
  Object.assign(options, rest);
  const tree: WorkflowNode & { type: 'task' } = { type: 'task', id: id ?? '', task: node.task };
  if (node.link.length) {
    const { sigs, trees } = linkSigs(node.link, o);
    options['link'] = sigs as unknown as Json;
    tree.link = trees;
  }
  if (node.linkError.length) {
    const { sigs, trees } = linkSigs(node.linkError, o);
    options['link_error'] = sigs as unknown as Json;
    tree.link_error = trees;
  }
  return { sig: taskSig(node.task, node.args, node.kwargs, options, node.immutable), tree };
}

/**
 * `acc | next`. Celery clones the whole chain at every `|`; when nothing is upgraded (a plain step
 * after a plain step) appending to our own fresh chain is the same, without the quadratic copying.
 */
function append(acc: SignatureDict, next: SignatureDict): SignatureDict {
  if (kindOf(acc) === 'chain' && kindOf(next) === 'task') {
    const steps = chainTasks(acc);
    const last = steps[steps.length - 1];
    if (last && kindOf(last) === 'task') {
      steps.push(next);
      return acc;
    }
  }
  return pipe(acc, next);
}

/** A spec node → its signature (ids pre-assigned) and its id tree, in the shape of the spec. */
export function buildSignature(node: SpecNode, o: BuildOptions): Built {
  switch (node.type) {
    case 'task': return buildTask(node, o);
    case 'map':
    case 'starmap': {
      const { task_id: given, ...rest } = node.options;
      const id = typeof given === 'string' ? given : o.newId();
      return { sig: mapSig(node.type, node.task, node.items, { task_id: id, ...rest }), tree: { type: node.type, id, task: node.task } };
    }
    case 'chunks': {
      const gid = node.id ?? o.newId();
      const parts = slices(node.items, node.size).map((part) => {
        const id = o.newId();
        return { sig: mapSig('starmap', node.task, part, { task_id: id, ...node.options }), tree: { type: 'starmap' as const, id, task: node.task } };
      });
      return { sig: groupSig(parts.map((p) => p.sig), { task_id: gid }), tree: { type: 'chunks', id: gid, task: node.task, chunks: parts.map((p) => p.tree) } };
    }
    case 'group': {
      const gid = node.id ?? o.newId();
      const members = node.members.map((m) => buildSignature(m, o));
      return { sig: groupSig(members.map((m) => m.sig), { task_id: gid }), tree: { type: 'group', id: gid, members: members.map((m) => m.tree) } };
    }
    case 'chord': {
      const gid = node.id ?? o.newId();
      const header = node.header.map((h) => buildSignature(h, o));
      const body = buildSignature(node.body, o);
      return {
        sig: chordSig(groupSig(header.map((h) => h.sig), { task_id: gid }), body.sig),
        tree: { type: 'chord', id: body.tree.id, group_id: gid, header: header.map((h) => h.tree), body: body.tree },
      };
    }
    case 'chain': {
      const steps = node.steps.map((s) => buildSignature(s, o));
      // Celery: chain(x) keeps one step; chain(a, b, …) is reduce(|, steps, chain())
      const sig = steps.length === 1 ? chainSig([(steps[0] as Built).sig]) : steps.reduce<SignatureDict>((acc, s) => append(acc, s.sig), chainSig([]));
      return { sig, tree: { type: 'chain', id: (steps[steps.length - 1] as Built).tree.id, steps: steps.map((s) => s.tree) } };
    }
  }
}

export interface CompiledWorkflow {
  sig: SignatureDict;
  tree: WorkflowNode;
  /** in order: publish messages, store chord sizes */
  actions: CanvasAction[];
}

/** Build and apply a workflow as a Celery client would (`sig.apply_async()`). */
export function compileWorkflow(spec: SpecNode, env: CanvasEnv): CompiledWorkflow {
  const { sig, tree } = buildSignature(spec, { newId: env.newId, freezeLinks: true });
  const run = new CanvasRun({ newId: env.newId, replyTo: env.replyTo });
  run.apply(sig);
  return { sig, tree, actions: run.actions };
}

