/**
 * What applying a signature publishes: a port of Celery 5.2.6's `Signature.apply_async` /
 * `freeze` for tasks, chains (`_chain.run`, `prepare_steps`), groups (`group.apply_async`,
 * `_freeze_group_tasks`) and chords (`_chord.run`), plus `app.send_task`'s id rules. Pure: it only
 * records actions (messages to publish, chord sizes to store) for the caller to carry out, in order.
 * Used by the gateway (POST /workflows, no current task) and by the worker (callbacks, chain steps,
 * chord bodies, with the finished task as `current`).
 */
import type { Json, JsonObject, SignatureDict } from '../protocol/types.ts';
import {
  appendToListOption, chainTasks, chordBody, chordHeader, chordSig, cloneSig, extendListOption, groupTasks, isObject,
  kindOf, maybeList, maybeUnrollGroup,
} from './signature.ts';

/** A task result as Celery links them (`AsyncResult` with `parent`, `GroupResult` with `results`). */
export interface ResultRef {
  id: string;
  parent: ResultRef | null;
  /** present for a GroupResult */
  results?: ResultRef[];
}

/** `result.as_tuple()`: what a meta's `children` holds. */
export function asTuple(ref: ResultRef): Json {
  const head: Json = [ref.id, ref.parent ? asTuple(ref.parent) : null];
  return [head, ref.results ? ref.results.map(asTuple) : null];
}

/** One task message, with everything `send_task` resolved; `options` keeps the routing/timing ones. */
export interface MessageSpec {
  task: string;
  id: string;
  args: Json[];
  kwargs: JsonObject;
  /** apply_async options not consumed here: queue, routing_key, exchange, priority, countdown, eta, expires, time limits, ignore_result… */
  options: JsonObject;
  rootId: string | null;
  parentId: string | null;
  group: string | null;
  groupIndex: number | null;
  chord: SignatureDict | null;
  chain: SignatureDict[] | null;
  callbacks: SignatureDict[] | null;
  errbacks: SignatureDict[] | null;
  replyTo: string;
}

export type CanvasAction =
  | { type: 'publish'; message: MessageSpec }
  /** store the chord size (`celery-taskset-meta-<gid>.s`) before publishing the next message */
  | { type: 'chord-size'; groupId: string; size: number };

export interface CanvasEnv {
  newId: () => string;
  /** the publisher's reply_to (Celery's thread oid), written into frozen signatures */
  replyTo: string;
  /** the task a worker is running (Celery's `current_worker_task`): fills root_id/parent_id */
  current?: { id: string; rootId: string | null } | undefined;
}

interface FreezeOptions {
  id?: string | null | undefined;
  groupId?: string | null | undefined;
  chord?: SignatureDict | null | undefined;
  rootId?: string | null | undefined;
  parentId?: string | null | undefined;
  groupIndex?: number | null | undefined;
}

const str = (v: Json | undefined): string | null => (typeof v === 'string' && v !== '' ? v : null);
const nonEmpty = (o: JsonObject): boolean => Object.keys(o).length > 0;

function dropNull(options: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [k, v] of Object.entries(options)) if (v !== null && v !== undefined) out[k] = v;
  return out;
}

function without(options: JsonObject, ...keys: string[]): JsonObject {
  const out = { ...options };
  for (const key of keys) delete out[key];
  return out;
}

/** `Signature._merge`: partial args are prepended unless immutable; group_id is never overridden. */
function merge(sig: SignatureDict, args: Json[], kwargs: JsonObject, options: JsonObject): [Json[], JsonObject, JsonObject] {
  const opts: JsonObject = { ...sig.options };
  for (const [k, v] of Object.entries(options)) if (!(k === 'group_id' && k in sig.options)) opts[k] = v;
  if (sig.immutable) return [sig.args, sig.kwargs, opts];
  return [args.length ? [...args, ...sig.args] : sig.args, nonEmpty(kwargs) ? { ...sig.kwargs, ...kwargs } : sig.kwargs, opts];
}

/** `Signature.clone(args, kwargs, **opts)`: a deep copy with partial args merged. */
function cloneWith(sig: SignatureDict, args: Json[] = [], kwargs: JsonObject = {}, options: JsonObject = {}): SignatureDict {
  const copy = cloneSig(sig);
  if (!args.length && !nonEmpty(kwargs) && !nonEmpty(options)) return copy;
  const [a, k, o] = merge(copy, args, kwargs, options);
  return { ...copy, args: a, kwargs: k, options: o };
}

/** `_chord._descend`: how many completions a header member contributes to the chord size. */
export function chordContribution(sig: SignatureDict): number {
  switch (kindOf(sig)) {
    case 'group': return groupTasks(sig).reduce((n, t) => n + chordContribution(t), 0);
    case 'chain': {
      for (const step of [...chainTasks(sig)].reverse()) {
        const size = chordContribution(step);
        if (size > 0) return size;
      }
      return 0;
    }
    case 'chord': {
      const body = chordBody(sig);
      return body ? chordContribution(body) : 0;
    }
    default: return 1;
  }
}

/** One application context: records the actions, and (in a worker) the results Celery adds to `children`. */
export class CanvasRun {
  readonly actions: CanvasAction[] = [];
  /** results published with add_to_parent, in order: the current task's `children` */
  readonly trail: ResultRef[] = [];
  readonly #env: CanvasEnv;

  constructor(env: CanvasEnv) {
    this.#env = env;
  }

  /** `sig.apply_async(args, kwargs, **options)` */
  apply(sig: SignatureDict, args: Json[] = [], kwargs: JsonObject = {}, options: JsonObject = {}): ResultRef | null {
    switch (kindOf(sig)) {
      case 'chain': return this.#applyChain(sig, args, kwargs, options);
      case 'group': return this.#applyGroup(sig, args, options);
      case 'chord': return this.#applyChord(sig, args, kwargs, options);
      default: {
        const opts = dropNull(options);
        const [a, k, o] = args.length || nonEmpty(kwargs) || nonEmpty(opts) ? merge(sig, args, kwargs, opts) : [sig.args, sig.kwargs, sig.options];
        return this.#sendTask(sig.task, a, k, o);
      }
    }
  }

  /** `sig.freeze(...)`: assign ids (in place) and return the result the signature will produce. */
  freeze(sig: SignatureDict, f: FreezeOptions = {}): ResultRef | null {
    switch (kindOf(sig)) {
      case 'chain': {
        const [, results] = this.#prepareSteps(sig.args, {}, chainTasks(sig), f.rootId ?? null, f.parentId ?? null, null, f.id ?? null, f.groupId ?? null, f.chord ?? null, f.groupIndex ?? null, false);
        return results[0] ?? null;
      }
      case 'group': return this.#freezeGroupTasks(sig, f);
      case 'chord': {
        const header = chordHeader(sig);
        const body = chordBody(sig);
        const headerResult = this.#freezeGroupTasks(header, { parentId: f.parentId, rootId: f.rootId, chord: body });
        if (!body) return headerResult;
        const bodyResult = this.freeze(body, { id: f.id, rootId: f.rootId, chord: f.chord, groupId: f.groupId, groupIndex: f.groupIndex });
        for (let node = bodyResult; node; node = node.parent) {
          if (node.parent === null) {
            node.parent = headerResult;
            break;
          }
        }
        return bodyResult;
      }
      default: {
        const opts = sig.options;
        const id = str(opts['task_id']) ?? f.id ?? this.#env.newId();
        opts['task_id'] = id;
        if (f.rootId) opts['root_id'] = f.rootId;
        if (f.parentId) opts['parent_id'] = f.parentId;
        if (!('reply_to' in opts)) opts['reply_to'] = this.#env.replyTo;
        if (f.groupId && !('group_id' in opts)) opts['group_id'] = f.groupId;
        if (f.chord) opts['chord'] = f.chord as unknown as Json;
        if (f.groupIndex !== null && f.groupIndex !== undefined) opts['group_index'] = f.groupIndex;
        return { id, parent: null };
      }
    }
  }

  /** `app.send_task`: one message; in a worker, missing root/parent ids come from the current task. */
  #sendTask(task: string, args: Json[], kwargs: JsonObject, options: JsonObject): ResultRef {
    const id = str(options['task_id']) ?? this.#env.newId();
    let rootId = str(options['root_id']);
    let parentId = str(options['parent_id']);
    const current = this.#env.current;
    if ((!rootId || !parentId) && current) {
      rootId ??= current.rootId || current.id;
      parentId ??= current.id;
    }
    const groupIndex = options['group_index'];
    const chord = isObject(options['chord']) ? (structuredClone(options['chord']) as unknown as SignatureDict) : null;
    const chain = Array.isArray(options['chain']) ? (structuredClone(options['chain']) as unknown as SignatureDict[]) : null;
    const message: MessageSpec = {
      task, id,
      args: structuredClone(args),
      kwargs: structuredClone(kwargs),
      options: without(options, 'task_id', 'root_id', 'parent_id', 'group_id', 'group_index', 'chord', 'chain', 'link', 'link_error', 'reply_to', 'add_to_parent', 'producer', 'publisher', 'route_name'),
      rootId, parentId,
      group: str(options['group_id']),
      groupIndex: typeof groupIndex === 'number' && Number.isInteger(groupIndex) ? groupIndex : null,
      chord, chain,
      callbacks: structuredClone(maybeList(options['link'])),
      errbacks: structuredClone(maybeList(options['link_error'])),
      replyTo: str(options['reply_to']) ?? this.#env.replyTo,
    };
    this.actions.push({ type: 'publish', message });
    const result: ResultRef = { id, parent: null };
    if (options['add_to_parent'] !== false && current) this.trail.push(result);
    return result;
  }

  /** `_chain.apply_async` + `_chain.run` */
  #applyChain(sig: SignatureDict, args: Json[], kwargs: JsonObject, options: JsonObject): ResultRef | null {
    const o = { ...sig.options, ...options };
    const partial = args.length && !sig.immutable ? [...args, ...sig.args] : sig.args;
    const [tasks, results] = this.#prepareSteps(
      partial, kwargs, chainTasks(sig), str(o['root_id']), str(o['parent_id']), o['link_error'] ?? null, str(o['task_id']),
      str(o['group_id']), isObject(o['chord']) ? (o['chord'] as unknown as SignatureDict) : null,
      typeof o['group_index'] === 'number' ? o['group_index'] : null, true,
    );
    if (!results.length) return null;
    const link = maybeList(o['link']);
    if (link) extendListOption(tasks[0] as SignatureDict, 'link', link);
    const first = tasks.pop() as SignatureDict;
    const rest = without(o, 'group_id', 'chord', 'task_id', 'link', 'link_error', 'publisher', 'producer', 'root_id', 'parent_id', 'group_index');
    const previous = rest['chain'];
    rest['chain'] = (Array.isArray(previous) ? [...previous, ...tasks] : tasks) as unknown as Json;
    const applied = this.apply(first, [], {}, rest);
    return tasks.length === 0 ? applied : (results[0] as ResultRef);
  }

  /** `_chain.prepare_steps`: freeze every step (reversed), upgrading `group | task` to a chord. */
  #prepareSteps(
    args: Json[], kwargs: JsonObject, tasks: SignatureDict[], rootId: string | null, parentId: string | null, linkError: Json | null,
    lastTaskId: string | null, groupId: string | null, chordBodySig: SignatureDict | null, groupIndex: number | null, clone: boolean,
  ): [SignatureDict[], ResultRef[]] {
    const steps = [...tasks];
    const outTasks: SignatureDict[] = [];
    const results: ResultRef[] = [];
    let prevTask: SignatureDict | null = null;
    let prevRes: ResultRef | null = null;
    let i = 0;
    while (steps.length) {
      let task = steps.pop() as SignatureDict;
      const isFirst = steps.length === 0;
      const isLast = i === 0;
      if (kindOf(task) === 'group') task = maybeUnrollGroup(task);
      if (clone) task = isFirst ? cloneWith(task, args, kwargs) : cloneSig(task);
      else if (isFirst) task.args = [...args, ...task.args];
      if (kindOf(task) === 'chain') {
        steps.push(...chainTasks(task));
        continue;
      }
      if (kindOf(task) === 'group' && prevTask && prevRes) {
        outTasks.pop();
        results.pop();
        task = chordSig(task, prevTask, prevRes.results ? { root_id: rootId } : { task_id: prevRes.id, root_id: rootId });
      }
      const res = (isLast
        ? this.freeze(task, { id: lastTaskId, rootId, groupId, chord: chordBodySig, groupIndex })
        : this.freeze(task, { rootId })) ?? { id: '', parent: null };
      i += 1;
      if (prevRes && !prevRes.parent) prevRes.parent = res;
      for (const errback of maybeList(linkError ?? undefined) ?? []) appendToListOption(task, 'link_error', errback);
      outTasks.push(task);
      results.push(res);
      prevTask = task;
      prevRes = res;
      if (kindOf(task) === 'chord') {
        let node = res;
        while (node.parent) node = node.parent;
        prevRes = node;
      }
    }
    void parentId; // Celery passes it to prepare_steps but never uses it
    return [outTasks, results];
  }

  /** `group._freeze_group_tasks` (group.freeze): ids for the group and each (unrolled, cloned) member. */
  #freezeGroupTasks(sig: SignatureDict, f: FreezeOptions): ResultRef {
    const opts = sig.options;
    const gid = str(opts['task_id']) ?? f.groupId ?? this.#env.newId();
    opts['task_id'] = gid;
    if (f.groupId) opts['group_id'] = f.groupId;
    if (f.chord) opts['chord'] = f.chord as unknown as Json;
    if (f.groupIndex !== null && f.groupIndex !== undefined) opts['group_index'] = f.groupIndex;
    if (!('root_id' in opts)) opts['root_id'] = f.rootId ?? null;
    if (!('parent_id' in opts)) opts['parent_id'] = f.parentId ?? null;
    const rootId = str(opts['root_id']);
    const parentId = str(opts['parent_id']);
    const stack = [...groupTasks(sig)];
    const members: SignatureDict[] = [];
    const results: ResultRef[] = [];
    while (stack.length) {
      const task = cloneSig(stack.shift() as SignatureDict);
      if (kindOf(task) === 'group') {
        stack.unshift(...[...groupTasks(task)].reverse()); // deque.extendleft reverses, as in Celery
        continue;
      }
      members.push(task);
      const res = this.freeze(task, { groupId: f.groupId, chord: f.chord, rootId, parentId, groupIndex: results.length });
      results.push(res ?? { id: '', parent: null });
    }
    sig.kwargs['tasks'] = members as unknown as Json;
    return { id: gid, parent: null, results };
  }

  /** `group._prepared`: members cloned, nested groups unrolled, each frozen into the group. */
  #prepared(tasks: SignatureDict[], groupId: string, rootId: string | null, out: { sig: SignatureDict; res: ResultRef }[]): void {
    for (const member of tasks) {
      const task = cloneSig(member);
      if (kindOf(task) === 'group') {
        this.#prepared(groupTasks(task), groupId, rootId, out);
        continue;
      }
      out.push({ sig: task, res: this.freeze(task, { groupId, rootId }) ?? { id: '', parent: null } });
    }
  }

  /** `group.apply_async`: one message per member; the chord size is stored before the last one. */
  #applyGroup(sig: SignatureDict, args: Json[], options: JsonObject): ResultRef | null {
    if (options['link'] !== undefined && options['link'] !== null) throw new TypeError('Cannot add link to group: use a chord');
    if (options['link_error'] !== undefined && options['link_error'] !== null) throw new TypeError('Cannot add link to group: do that on individual tasks');
    const addToParent = options['add_to_parent'] !== false;
    if (!groupTasks(sig).length) return this.freeze(sig);
    const opts = without({ ...sig.options, ...options }, 'add_to_parent', 'producer', 'link', 'link_error');
    const gid = str(opts['task_id']) ?? this.#env.newId();
    delete opts['task_id'];
    opts['group_id'] = gid;
    const prepared: { sig: SignatureDict; res: ResultRef }[] = [];
    this.#prepared(groupTasks(sig), gid, str(opts['root_id']), prepared);
    const chordParam = isObject(opts['chord']) ? opts['chord'] : null;
    delete opts['chord'];
    let size = 0;
    prepared.forEach(({ sig: member }, index) => {
      const chordObj = chordParam ?? (isObject(member.options['chord']) ? member.options['chord'] : null);
      size += chordContribution(member);
      if (chordObj && index === prepared.length - 1) this.actions.push({ type: 'chord-size', groupId: gid, size });
      this.apply(member, args, {}, { ...opts, add_to_parent: false, chord: chordObj });
    });
    let result: ResultRef = { id: gid, parent: null, results: prepared.map((p) => p.res) };
    if (result.results?.length === 1 && result.results[0]?.results) result = result.results[0];
    if (addToParent && this.#env.current) this.trail.push(result);
    return result;
  }

  /** `_chord.apply_async` + `_chord.run`: freeze the body, publish the header; the body waits. */
  #applyChord(sig: SignatureDict, args: Json[], kwargs: JsonObject, options: JsonObject): ResultRef | null {
    const partial = args.length && !sig.immutable ? [...args, ...sig.args] : sig.args;
    const opts = without(options, 'task_id', 'producer', 'publisher', 'connection', 'router', 'result_cls');
    const givenBody = isObject(kwargs['body']) ? (kwargs['body'] as unknown as SignatureDict) : chordBody(sig);
    if (!givenBody) throw new TypeError('chord without a body');
    const body = cloneWith(givenBody, [], {}, opts);
    const header = cloneSig(chordHeader(sig));
    const merged = { ...sig.options, ...opts };
    const taskId = str(options['task_id']) ?? str(merged['task_id']);
    delete merged['task_id'];

    // _chord.run
    const gid = str(header.options['task_id']) ?? this.#env.newId();
    const rootId = str(body.options['root_id']);
    const runOptions = without({ ...sig.options, ...merged }, 'task_id', 'interval', 'countdown', 'max_retries', 'eager');
    if (nonEmpty(runOptions)) Object.assign(body.options, runOptions);
    const bodyResult = this.freeze(body, { id: taskId, rootId });
    const headerOptions = without(runOptions, 'chain', 'chord', 'task_id');
    this.#freezeGroupTasks(header, { groupId: gid, chord: body, rootId });
    let headerResult: ResultRef | null;
    if (groupTasks(header).length) {
      headerResult = this.#applyGroup(header, partial, { ...headerOptions, task_id: gid });
    } else {
      this.apply(body, [[]]);
      headerResult = { id: gid, parent: null, results: [] };
    }
    if (bodyResult) bodyResult.parent = headerResult;
    return bodyResult;
  }
}
