/**
 * Celery signatures in their dict form (§2) and the composition rules of Celery 5.2.6's canvas
 * (`celery/canvas.py`): which dict is a chain, group or chord, how `a | b` combines them (a group
 * followed by anything becomes a chord, a chord followed by a task grows its body…). Pure.
 */
import type { Json, JsonObject, SignatureDict } from '../protocol/types.ts';

export type SigKind = 'task' | 'chain' | 'group' | 'chord';

export const CHAIN_TASK = 'celery.chain';
export const GROUP_TASK = 'celery.group';
export const CHORD_TASK = 'celery.chord';
export const MAP_TASK = 'celery.map';
export const STARMAP_TASK = 'celery.starmap';
export const CHUNKS_TASK = 'celery.chunks';

export function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Celery's `Signature.from_dict` dispatch: by `subtask_type` only (a map is a plain signature). */
export function kindOf(sig: SignatureDict): SigKind {
  switch (sig.subtask_type) {
    case 'chain': return 'chain';
    case 'group': return 'group';
    case 'chord': return 'chord';
    default: return 'task';
  }
}

/** A plain signature as `app.signature(name, args, kwargs, options)` builds it. */
export function taskSig(task: string, args: Json[] = [], kwargs: JsonObject = {}, options: JsonObject = {}, immutable = false): SignatureDict {
  return { task, args, kwargs, options, subtask_type: null, immutable };
}

export function chainSig(tasks: SignatureDict[], options: JsonObject = {}): SignatureDict {
  return { task: CHAIN_TASK, args: [], kwargs: { tasks: tasks as unknown as Json }, options, subtask_type: 'chain', immutable: false };
}

export function groupSig(tasks: SignatureDict[], options: JsonObject = {}): SignatureDict {
  return { task: GROUP_TASK, args: [], kwargs: { tasks: tasks as unknown as Json }, options, subtask_type: 'group', immutable: false };
}

/** `chord(header, body)`: kwargs `{kwargs, header, body}` as `_chord.__init__` orders them. */
export function chordSig(header: SignatureDict, body: SignatureDict, options: JsonObject = {}): SignatureDict {
  return {
    task: CHORD_TASK, args: [], kwargs: { kwargs: {}, header: header as unknown as Json, body: body as unknown as Json },
    options, subtask_type: 'chord', immutable: false,
  };
}

/** `task.map(it)` / `task.starmap(it)`: one `celery.map`/`celery.starmap` signature, immutable. */
export function mapSig(kind: 'map' | 'starmap', task: string, items: Json[], options: JsonObject = {}): SignatureDict {
  return {
    task: kind === 'map' ? MAP_TASK : STARMAP_TASK, args: [], kwargs: { task: taskSig(task) as unknown as Json, it: items },
    options, subtask_type: null, immutable: true,
  };
}

/** A signature dict from JSON, with the defaults `Signature.from_dict` gives; null when it is not one. */
export function toSig(value: Json | undefined): SignatureDict | null {
  if (!isObject(value) || typeof value['task'] !== 'string') return null;
  const { task, args = [], kwargs = {}, options = {}, subtask_type = null, immutable = false, ...rest } = value;
  return {
    ...rest,
    task,
    args: Array.isArray(args) ? args : [],
    kwargs: isObject(kwargs) ? kwargs : {},
    options: isObject(options) ? options : {},
    subtask_type: typeof subtask_type === 'string' ? subtask_type : null,
    immutable: immutable === true,
  };
}

function sigList(value: Json | undefined): SignatureDict[] {
  if (!Array.isArray(value)) return [];
  return value.map(toSig).filter((s): s is SignatureDict => s !== null);
}

/** Replace a sig's kwargs key with parsed signatures (so later mutation happens in place). */
function ensureList(sig: SignatureDict, key: string): SignatureDict[] {
  const list = sigList(sig.kwargs[key]);
  sig.kwargs[key] = list as unknown as Json;
  return list;
}

export function chainTasks(sig: SignatureDict): SignatureDict[] {
  return ensureList(sig, 'tasks');
}

export function groupTasks(sig: SignatureDict): SignatureDict[] {
  return ensureList(sig, 'tasks');
}

/** The chord header as a group signature (`chord.freeze` turns a list into a group, in place). */
export function chordHeader(sig: SignatureDict): SignatureDict {
  const raw = sig.kwargs['header'];
  const asSig = toSig(raw);
  const header = asSig && kindOf(asSig) === 'group' ? asSig : groupSig(Array.isArray(raw) ? sigList(raw) : asSig ? [asSig] : []);
  sig.kwargs['header'] = header as unknown as Json;
  return header;
}

export function chordBody(sig: SignatureDict): SignatureDict | null {
  const body = toSig(sig.kwargs['body']);
  if (body) sig.kwargs['body'] = body as unknown as Json;
  return body;
}

export function setChordBody(sig: SignatureDict, body: SignatureDict): void {
  sig.kwargs['body'] = body as unknown as Json;
}

/** Deep copy (Celery clones with deepcopy of options and cloned members). */
export function cloneSig(sig: SignatureDict): SignatureDict {
  return structuredClone(sig);
}

/** `maybe_list`: null stays null, a single signature becomes a list of one. */
export function maybeList(value: Json | undefined): SignatureDict[] | null {
  if (value === undefined || value === null) return null;
  if (Array.isArray(value)) return sigList(value);
  const sig = toSig(value);
  return sig ? [sig] : null;
}

/** `Signature.append_to_list_option`: add unless an equal signature is already there. */
export function appendToListOption(sig: SignatureDict, key: string, value: SignatureDict): void {
  const current = sig.options[key];
  const items: Json[] = Array.isArray(current) ? current : current === undefined || current === null ? [] : [current];
  const text = JSON.stringify(value);
  if (!items.some((item) => JSON.stringify(item) === text)) items.push(value as unknown as Json);
  sig.options[key] = items;
}

export function extendListOption(sig: SignatureDict, key: string, values: SignatureDict[]): void {
  const current = sig.options[key];
  const items: Json[] = Array.isArray(current) ? current : current === undefined || current === null ? [] : [current];
  items.push(...(values as unknown as Json[]));
  sig.options[key] = items;
}

/** `maybe_unroll_group`: a group of one member is that member. */
export function maybeUnrollGroup(sig: SignatureDict): SignatureDict {
  const tasks = groupTasks(sig);
  return tasks.length === 1 ? (tasks[0] as SignatureDict) : sig;
}

/** `_chain.unchain_tasks`: clones of the steps, each given the chain's link_error callbacks. */
function unchainTasks(chain: SignatureDict): SignatureDict[] {
  const tasks = chainTasks(chain).map(cloneSig);
  for (const errback of maybeList(chain.options['link_error']) ?? []) {
    for (const task of tasks) appendToListOption(task, 'link_error', errback);
  }
  return tasks;
}

/**
 * `a | b` exactly as Celery 5.2.6 evaluates it (`Signature.__or__`, `_chain.__or__`, `group.__or__`,
 * `_chord.__or__`). `chain(a, b, c)` is `reduce(|, [a, b, c], chain())` in Celery, so this also
 * defines what a chain of several nodes becomes.
 */
export function pipe(a: SignatureDict, b: SignatureDict): SignatureDict {
  switch (kindOf(a)) {
    case 'chain': return chainOr(a, b);
    // group() | anything -> chord
    case 'group': return chordSig(a, b);
    case 'chord': {
      const kb = kindOf(b);
      if (kb !== 'group' && kb !== 'chain') {
        // chord | task -> attach to the body
        const sig = cloneSig(a);
        setChordBody(sig, pipe(chordBody(sig) as SignatureDict, b));
        return sig;
      }
      return taskOr(a, b);
    }
    default: return taskOr(a, b);
  }
}

function taskOr(a: SignatureDict, b: SignatureDict): SignatureDict {
  switch (kindOf(b)) {
    case 'chain': return chainSig([a, ...unchainTasks(b)]);
    case 'group': return chainSig([a, maybeUnrollGroup(b)]);
    default: return chainSig([a, b]);
  }
}

function chainOr(c: SignatureDict, b: SignatureDict): SignatureDict {
  const kb = kindOf(b);
  if (kb === 'group') {
    const other = maybeUnrollGroup(b);
    const tasks = unchainTasks(c);
    return tasks.length === 0 ? other : chainSig([...tasks, other]);
  }
  if (kb === 'chain') return chainSig([...unchainTasks(c), ...unchainTasks(b)]);
  const tasks = chainTasks(c);
  const last = tasks[tasks.length - 1];
  if (last && kindOf(last) === 'group') {
    // CHAIN [last item is group] | TASK -> chord
    const sig = cloneSig(c);
    const steps = chainTasks(sig);
    steps[steps.length - 1] = chordSig(steps[steps.length - 1] as SignatureDict, b);
    return sig;
  }
  if (last && kindOf(last) === 'chord') {
    // CHAIN [last item is chord] -> chain with chord body
    const sig = cloneSig(c);
    const steps = chainTasks(sig);
    const chord = steps[steps.length - 1] as SignatureDict;
    setChordBody(chord, pipe(chordBody(chord) as SignatureDict, b));
    return sig;
  }
  return chainSig([...unchainTasks(c), b]);
}
