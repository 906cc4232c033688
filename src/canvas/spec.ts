/**
 * The JSON workflow spec of POST /workflows, validated into typed nodes. Every refusal is a
 * GW_ERR_BAD_WORKFLOW whose `details.pointer` is the RFC 6901 pointer of the offending node (and
 * `details.field` the member at fault, when there is one). Pure.
 *
 *   signature  {task, args?, kwargs?, options?, immutable?}   options: apply_async's, plus link / link_error
 *   chain      {chain: [node, …]}
 *   group      {group: [node, …], id?}
 *   chord      {chord: {header: [node, …], body: node}, id?}
 *   map        {map: {task, items, options?}}        starmap {starmap: {task, items: [[…], …], options?}}
 *   chunks     {chunks: {task, items: [[…], …], size, options?}, id?}
 */
import { GatewayError, isGatewayError } from '../errors.ts';
import type { Json, JsonObject } from '../protocol/types.ts';
import { resolveOptions, type TaskOptions } from '../task-options.ts';
import { isObject } from './signature.ts';

export interface WorkflowLimits {
  /** most nodes in one spec (every signature, chain, group, chord, map and chunk counts) */
  maxNodes: number;
  /** deepest nesting */
  maxDepth: number;
}

export const DEFAULT_WORKFLOW_LIMITS: WorkflowLimits = { maxNodes: 1000, maxDepth: 32 };

interface Base {
  pointer: string;
}
export interface TaskNode extends Base {
  type: 'task';
  task: string;
  args: Json[];
  kwargs: JsonObject;
  /** apply_async options without link / link_error */
  options: JsonObject;
  immutable: boolean;
  link: SpecNode[];
  linkError: SpecNode[];
}
export interface ChainNode extends Base { type: 'chain'; steps: SpecNode[] }
export interface GroupNode extends Base { type: 'group'; id: string | null; members: SpecNode[] }
export interface ChordNode extends Base { type: 'chord'; id: string | null; header: SpecNode[]; body: SpecNode }
export interface MapNode extends Base { type: 'map' | 'starmap'; task: string; items: Json[]; options: JsonObject }
export interface ChunksNode extends Base { type: 'chunks'; id: string | null; task: string; items: Json[][]; size: number; options: JsonObject }
export type SpecNode = TaskNode | ChainNode | GroupNode | ChordNode | MapNode | ChunksNode;

const TASK_NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$/;
const TASK_ID = /^[A-Za-z0-9_.:@+=-]{1,255}$/;
const QUEUE = /^[A-Za-z0-9_.:@#*-]{1,200}$/;
const EXCHANGE = /^[A-Za-z0-9_.:@-]{0,200}$/;
const NODE_KEYS = ['task', 'chain', 'group', 'chord', 'map', 'starmap', 'chunks'] as const;

export function badWorkflow(message: string, pointer: string, extra: Record<string, unknown> = {}): GatewayError {
  return new GatewayError('GW_ERR_BAD_WORKFLOW', `${message} (at ${pointer || '/'})`, { details: { pointer, ...extra } });
}

const escape = (token: string | number): string => String(token).replace(/~/g, '~0').replace(/\//g, '~1');
const at = (pointer: string, ...tokens: (string | number)[]): string => pointer + tokens.map((t) => `/${escape(t)}`).join('');

type OptionCheck = (v: Json) => string | null;
const num = (min: number, max: number, exclusiveMin = false): OptionCheck => (v) =>
  typeof v === 'number' && Number.isFinite(v) && (exclusiveMin ? v > min : v >= min) && v <= max ? null : `a number ${exclusiveMin ? '>' : '≥'} ${min} and ≤ ${max}`;
const pattern = (re: RegExp): OptionCheck => (v) => (typeof v === 'string' && re.test(v) ? null : `a string matching ${re.source}`);

/** apply_async options a workflow signature may carry (link / link_error are handled apart). */
const OPTION_CHECKS: Record<string, OptionCheck> = {
  task_id: pattern(TASK_ID),
  queue: pattern(QUEUE),
  exchange: pattern(EXCHANGE),
  routing_key: pattern(QUEUE),
  priority: (v) => (Number.isInteger(v) && (v as number) >= 0 && (v as number) <= 255 ? null : 'an integer from 0 to 255'),
  countdown: num(0, 315360000),
  eta: (v) => (typeof v === 'string' && v.length <= 64 ? null : 'an ISO 8601 string'),
  // seconds only: a step published later by a (Python) worker cannot take an absolute time here
  expires: num(0, 315360000, true),
  time_limit: num(0, 1e9, true),
  soft_time_limit: num(0, 1e9, true),
  ignore_result: (v) => (typeof v === 'boolean' ? null : 'a boolean'),
};

class Validator {
  #nodes = 0;
  readonly #ids = new Set<string>();
  readonly #limits: WorkflowLimits;
  readonly #now: Date;

  constructor(limits: WorkflowLimits, now: Date) {
    this.#limits = limits;
    this.#now = now;
  }

  #count(pointer: string, n = 1): void {
    this.#nodes += n;
    if (this.#nodes > this.#limits.maxNodes) {
      throw badWorkflow(`the workflow has more than ${this.#limits.maxNodes} nodes`, pointer, { limit: 'maxNodes', max: this.#limits.maxNodes });
    }
  }

  #id(value: Json | undefined, pointer: string, field: string): string | null {
    if (value === undefined || value === null) return null;
    if (typeof value !== 'string' || !TASK_ID.test(value)) throw badWorkflow(`${field} must be a string matching ${TASK_ID.source}`, pointer, { field });
    if (this.#ids.has(value)) throw badWorkflow(`id ${JSON.stringify(value)} is used twice in the workflow`, pointer, { field });
    this.#ids.add(value);
    return value;
  }

  node(value: Json | undefined, pointer: string, depth: number): SpecNode {
    if (depth > this.#limits.maxDepth) {
      throw badWorkflow(`the workflow nests deeper than ${this.#limits.maxDepth} levels`, pointer, { limit: 'maxDepth', max: this.#limits.maxDepth });
    }
    if (!isObject(value)) throw badWorkflow('a workflow node must be an object', pointer);
    const kinds = NODE_KEYS.filter((k) => k in value);
    if (kinds.length !== 1) {
      throw badWorkflow(kinds.length === 0
        ? `unknown node type: expected one of the keys ${NODE_KEYS.join(', ')}, got ${JSON.stringify(Object.keys(value))}`
        : `ambiguous node: it has ${kinds.join(' and ')}`, pointer);
    }
    this.#count(pointer);
    const kind = kinds[0] as (typeof NODE_KEYS)[number];
    const allowed = kind === 'task' ? ['task', 'args', 'kwargs', 'options', 'immutable'] : kind === 'chain' ? ['chain'] : [kind, 'id'];
    const unknown = Object.keys(value).filter((k) => !allowed.includes(k));
    if (unknown.length) throw badWorkflow(`unknown member ${JSON.stringify(unknown[0])} in a ${kind} node`, pointer, { field: unknown[0] });
    switch (kind) {
      case 'task': return this.#task(value, pointer, depth);
      case 'chain': return { type: 'chain', pointer, steps: this.#list(value['chain'], pointer, 'chain', depth) };
      case 'group': {
        const id = this.#id(value['id'], pointer, 'id');
        return { type: 'group', pointer, id, members: this.#list(value['group'], pointer, 'group', depth) };
      }
      case 'chord': return this.#chord(value, pointer, depth);
      case 'chunks': return this.#chunks(value, pointer);
      default: return this.#map(kind, value, pointer);
    }
  }

  #list(value: Json | undefined, pointer: string, field: string, depth: number): SpecNode[] {
    if (!Array.isArray(value)) throw badWorkflow(`${field} must be an array of nodes`, pointer, { field });
    if (value.length === 0) throw badWorkflow(`${field} must not be empty`, pointer, { field });
    return value.map((item, i) => this.node(item, at(pointer, field, i), depth + 1));
  }

  #taskName(value: Json | undefined, pointer: string, field = 'task'): string {
    if (typeof value !== 'string' || !TASK_NAME.test(value)) throw badWorkflow(`${field} must be a Celery task name such as "proj.tasks.add"`, pointer, { field });
    return value;
  }

  #options(value: Json | undefined, pointer: string, allow: { id: boolean; links: boolean }): JsonObject {
    if (value === undefined) return {};
    if (!isObject(value)) throw badWorkflow('options must be an object', pointer, { field: 'options' });
    const out: JsonObject = {};
    for (const [key, v] of Object.entries(value)) {
      if ((key === 'link' || key === 'link_error') && allow.links) continue;
      const check = OPTION_CHECKS[key];
      if (!check || (key === 'task_id' && !allow.id)) throw badWorkflow(`unknown option ${JSON.stringify(key)}`, pointer, { field: 'options', option: key });
      const problem = check(v);
      if (problem) throw badWorkflow(`options.${key} must be ${problem}`, pointer, { field: 'options', option: key });
      if (key === 'task_id') this.#id(v, pointer, 'options.task_id');
      out[key] = v;
    }
    try {
      resolveOptions(toTaskOptions(out), 'celery', this.#now);
    } catch (err) {
      if (isGatewayError(err)) throw badWorkflow(err.message, pointer, { field: 'options', ...(err.details ?? {}) });
      throw err;
    }
    return out;
  }

  #links(value: Json | undefined, pointer: string, field: string, depth: number): SpecNode[] {
    if (value === undefined || value === null) return [];
    const items = Array.isArray(value) ? value : [value];
    const base = at(pointer, 'options', field);
    return items.map((item, i) => this.node(item, Array.isArray(value) ? at(base, i) : base, depth + 1));
  }

  #task(value: JsonObject, pointer: string, depth: number): TaskNode {
    const task = this.#taskName(value['task'], pointer);
    const { args = [], kwargs = {}, immutable = false } = value;
    if (!Array.isArray(args)) throw badWorkflow('args must be an array', pointer, { field: 'args' });
    if (!isObject(kwargs)) throw badWorkflow('kwargs must be an object', pointer, { field: 'kwargs' });
    if (typeof immutable !== 'boolean') throw badWorkflow('immutable must be a boolean', pointer, { field: 'immutable' });
    const options = this.#options(value['options'], pointer, { id: true, links: true });
    const raw = isObject(value['options']) ? value['options'] : {};
    return {
      type: 'task', pointer, task, args, kwargs, options, immutable,
      link: this.#links(raw['link'], pointer, 'link', depth),
      linkError: this.#links(raw['link_error'], pointer, 'link_error', depth),
    };
  }

  #chord(value: JsonObject, pointer: string, depth: number): ChordNode {
    const id = this.#id(value['id'], pointer, 'id');
    const spec = value['chord'];
    if (!isObject(spec)) throw badWorkflow('chord must be an object {header: [...], body: node}', pointer, { field: 'chord' });
    const extra = Object.keys(spec).find((k) => k !== 'header' && k !== 'body');
    if (extra) throw badWorkflow(`unknown member chord.${extra}`, pointer, { field: `chord.${extra}` });
    const header = spec['header'];
    if (!Array.isArray(header) || header.length === 0) throw badWorkflow('chord.header must be a non-empty array of nodes', pointer, { field: 'chord.header' });
    if (spec['body'] === undefined) throw badWorkflow('chord.body is required', pointer, { field: 'chord.body' });
    const chordPointer = at(pointer, 'chord');
    return {
      type: 'chord', pointer, id,
      header: header.map((item, i) => this.node(item, at(chordPointer, 'header', i), depth + 1)),
      body: this.node(spec['body'], at(chordPointer, 'body'), depth + 1),
    };
  }

  #mapLike(spec: Json | undefined, pointer: string, field: string, allowed: string[]): JsonObject {
    if (!isObject(spec)) throw badWorkflow(`${field} must be an object`, pointer, { field });
    const extra = Object.keys(spec).find((k) => !allowed.includes(k));
    if (extra) throw badWorkflow(`unknown member ${field}.${extra}`, pointer, { field: `${field}.${extra}` });
    if (!Array.isArray(spec['items'])) throw badWorkflow(`${field}.items must be an array`, pointer, { field: `${field}.items` });
    return spec;
  }

  #tuples(items: Json[], pointer: string, field: string): Json[][] {
    const bad = items.findIndex((item) => !Array.isArray(item));
    if (bad !== -1) throw badWorkflow(`${field}.items[${bad}] must be an array of arguments`, pointer, { field: `${field}.items` });
    return items as Json[][];
  }

  #map(kind: 'map' | 'starmap', value: JsonObject, pointer: string): MapNode {
    const spec = this.#mapLike(value[kind], pointer, kind, ['task', 'items', 'options']);
    const task = this.#taskName(spec['task'], pointer, `${kind}.task`);
    const items = spec['items'] as Json[];
    if (kind === 'starmap') this.#tuples(items, pointer, kind);
    return { type: kind, pointer, task, items, options: this.#options(spec['options'], pointer, { id: true, links: false }) };
  }

  #chunks(value: JsonObject, pointer: string): ChunksNode {
    const id = this.#id(value['id'], pointer, 'id');
    const spec = this.#mapLike(value['chunks'], pointer, 'chunks', ['task', 'items', 'size', 'options']);
    const task = this.#taskName(spec['task'], pointer, 'chunks.task');
    const items = this.#tuples(spec['items'] as Json[], pointer, 'chunks');
    const size = spec['size'];
    if (!Number.isInteger(size) || (size as number) < 1) throw badWorkflow('chunks.size must be a positive integer', pointer, { field: 'chunks.size' });
    if (items.length === 0) throw badWorkflow('chunks.items must not be empty', pointer, { field: 'chunks.items' });
    this.#count(pointer, Math.ceil(items.length / (size as number)));
    return { type: 'chunks', pointer, id, task, items, size: size as number, options: this.#options(spec['options'], pointer, { id: false, links: false }) };
  }
}

/** The typed TaskOptions of a (validated or received) options object; other keys are ignored. */
export function toTaskOptions(options: JsonObject): TaskOptions {
  const out: TaskOptions = {};
  const s = (k: string): string | undefined => (typeof options[k] === 'string' ? (options[k] as string) : undefined);
  const n = (k: string): number | undefined => (typeof options[k] === 'number' && Number.isFinite(options[k]) ? (options[k] as number) : undefined);
  const set = <K extends keyof TaskOptions>(key: K, value: TaskOptions[K] | undefined): void => {
    if (value !== undefined) out[key] = value;
  };
  set('queue', s('queue'));
  set('exchange', s('exchange'));
  set('routing_key', s('routing_key'));
  const priority = n('priority');
  set('priority', priority !== undefined && Number.isInteger(priority) ? priority : undefined);
  set('countdown', n('countdown'));
  set('eta', s('eta'));
  set('expires', n('expires') ?? s('expires'));
  set('time_limit', n('time_limit'));
  set('soft_time_limit', n('soft_time_limit'));
  if (typeof options['ignore_result'] === 'boolean') out.ignore_result = options['ignore_result'];
  return out;
}

/** Validate a workflow spec; throws GW_ERR_BAD_WORKFLOW with `details.pointer`. */
export function parseWorkflowSpec(value: unknown, limits: WorkflowLimits = DEFAULT_WORKFLOW_LIMITS, now = new Date()): SpecNode {
  return new Validator(limits, now).node(value as Json, '', 1);
}

/**
 * Validate `link` / `link_error` of POST /tasks/:name (a signature or a list of them; any node type),
 * pointers relative to the request body.
 */
export function parseLinkOption(value: unknown, field: 'link' | 'link_error', limits: WorkflowLimits = DEFAULT_WORKFLOW_LIMITS, now = new Date()): SpecNode[] {
  if (value === undefined || value === null) return [];
  const v = new Validator(limits, now);
  const base = `/options/${field}`;
  return Array.isArray(value) ? value.map((item, i) => v.node(item as Json, `${base}/${i}`, 1)) : [v.node(value as Json, base, 1)];
}
