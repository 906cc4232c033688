/**
 * A workflow's tree of ids (what POST /workflows answers and the backend keeps) and its view with
 * states and results (GET /workflows/:id). Pure: metas are looked up by the caller.
 */
import { describeError, type ErrorDescription } from '../protocol/result-meta.ts';
import { States, type Json, type ResultMeta } from '../protocol/types.ts';

export type WorkflowNode =
  | { type: 'task'; id: string; task: string; link?: WorkflowNode[]; link_error?: WorkflowNode[] }
  | { type: 'map' | 'starmap'; id: string; task: string }
  | { type: 'chain'; id: string; steps: WorkflowNode[] }
  | { type: 'group'; id: string; members: WorkflowNode[] }
  | { type: 'chord'; id: string; group_id: string; header: WorkflowNode[]; body: WorkflowNode }
  | { type: 'chunks'; id: string; task: string; chunks: WorkflowNode[] };

/** A node as GET /workflows/:id shows it: the tree node plus state, result and error. */
export type NodeView = { [key: string]: Json | NodeView | NodeView[] | ErrorDescription | null | undefined } & {
  type: string;
  id: string;
  state: string;
  result: Json;
  error: ErrorDescription | null;
};

export type OverallState = 'pending' | 'running' | 'succeeded' | 'failed' | 'revoked';

function forEachLeaf(node: WorkflowNode, fn: (node: WorkflowNode, errback: boolean) => void, errback = false): void {
  switch (node.type) {
    case 'task':
      fn(node, errback);
      for (const l of node.link ?? []) forEachLeaf(l, fn, errback);
      for (const l of node.link_error ?? []) forEachLeaf(l, fn, true);
      return;
    case 'map':
    case 'starmap':
      fn(node, errback);
      return;
    case 'chain': for (const s of node.steps) forEachLeaf(s, fn, errback); return;
    case 'group': for (const m of node.members) forEachLeaf(m, fn, errback); return;
    case 'chunks': for (const c of node.chunks) forEachLeaf(c, fn, errback); return;
    case 'chord':
      for (const h of node.header) forEachLeaf(h, fn, errback);
      forEachLeaf(node.body, fn, errback);
  }
}

/** Every task id of the tree (each one has, or will have, a result meta). */
export function taskIds(tree: WorkflowNode): string[] {
  const ids: string[] = [];
  forEachLeaf(tree, (node) => ids.push(node.id));
  return ids;
}

const FAILED = new Set<string>([States.FAILURE]);

function leafView(node: WorkflowNode & { task: string }, meta: ResultMeta | null): NodeView {
  const state = meta?.status ?? States.PENDING;
  const error = meta && state !== States.SUCCESS ? describeError(meta.result, meta.traceback) : null;
  return { type: node.type, id: node.id, task: node.task, state, result: state === States.SUCCESS ? (meta?.result ?? null) : null, error };
}

/** The state of a composite from its parts, Celery-style names. */
function combine(parts: NodeView[], result: () => Json): Pick<NodeView, 'state' | 'result' | 'error'> {
  const failed = parts.find((p) => FAILED.has(p.state));
  if (failed) return { state: States.FAILURE, result: null, error: failed.error };
  const revoked = parts.find((p) => p.state === States.REVOKED);
  if (revoked) return { state: States.REVOKED, result: null, error: revoked.error };
  if (parts.every((p) => p.state === States.SUCCESS)) return { state: States.SUCCESS, result: result(), error: null };
  if (parts.every((p) => p.state === States.PENDING)) return { state: States.PENDING, result: null, error: null };
  return { state: States.STARTED, result: null, error: null };
}

/** The tree with each node's state, result and error; `metas` maps task id → meta (null = PENDING). */
export function viewTree(node: WorkflowNode, metas: ReadonlyMap<string, ResultMeta | null>): NodeView {
  const meta = (id: string): ResultMeta | null => metas.get(id) ?? null;
  switch (node.type) {
    case 'task': {
      const view = leafView(node, meta(node.id));
      if (node.link?.length) view['link'] = node.link.map((l) => viewTree(l, metas));
      if (node.link_error?.length) view['link_error'] = node.link_error.map((l) => viewTree(l, metas));
      return view;
    }
    case 'map':
    case 'starmap':
      return leafView(node, meta(node.id));
    case 'chain': {
      const steps = node.steps.map((s) => viewTree(s, metas));
      return { type: 'chain', id: node.id, ...combine(steps, () => steps[steps.length - 1]?.result ?? null), steps };
    }
    case 'group': {
      const members = node.members.map((m) => viewTree(m, metas));
      return { type: 'group', id: node.id, ...combine(members, () => members.map((m) => m.result)), members };
    }
    case 'chunks': {
      const chunks = node.chunks.map((c) => viewTree(c, metas));
      return { type: 'chunks', id: node.id, task: node.task, ...combine(chunks, () => chunks.map((c) => c.result)), chunks };
    }
    case 'chord': {
      const header = node.header.map((h) => viewTree(h, metas));
      const body = viewTree(node.body, metas);
      return { type: 'chord', id: node.id, group_id: node.group_id, ...combine([...header, body], () => body.result), header, body };
    }
  }
}

/** The workflow's overall state over every task but the errbacks (which only run on failure). */
export function overallState(tree: WorkflowNode, metas: ReadonlyMap<string, ResultMeta | null>): OverallState {
  const states: string[] = [];
  forEachLeaf(tree, (node, errback) => {
    if (!errback) states.push(metas.get(node.id)?.status ?? States.PENDING);
  });
  if (states.some((s) => FAILED.has(s))) return 'failed';
  if (states.some((s) => s === States.REVOKED)) return 'revoked';
  if (states.every((s) => s === States.SUCCESS)) return 'succeeded';
  if (states.every((s) => s === States.PENDING)) return 'pending';
  return 'running';
}

/** A stored tree read back (from JSON); null when it does not look like one. */
export function asWorkflowNode(value: unknown): WorkflowNode | null {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return null;
  const v = value as { type?: unknown; id?: unknown };
  return typeof v.type === 'string' && typeof v.id === 'string' ? (value as WorkflowNode) : null;
}
