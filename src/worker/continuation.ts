/**
 * What the Node worker does around a task's outcome so that canvases continue exactly as under a
 * Python worker (celery/app/trace.py, backends/base.py `mark_as_*`, backends/redis.py
 * `on_chord_part_return`), plus Celery's built-in tasks (celery.map, celery.starmap, celery.chunks,
 * celery.chord, celery.group, celery.chain). I/O only through the Broker and the ResultBackend.
 *
 * After SUCCESS: link callbacks (one group when several), then the next chain step — both published
 * BEFORE the result is stored, so its meta lists them in `children`; after storing, the chord part.
 * After FAILURE: the chord part, FAILURE for every remaining chain step, then the errbacks as a group
 * with `[failed task id]` as arguments.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import type { ResultBackend } from '../backends/backend.ts';
import type { Broker } from '../brokers/broker.ts';
import { asTuple, CanvasRun } from '../canvas/apply.ts';
import { workerCall } from '../canvas/message.ts';
import { pyExceptionRepr } from '../canvas/python.ts';
import {
  chainTasks, chordBody, chordHeader, chordSig, cloneSig, groupSig, groupTasks, kindOf, maybeList, STARMAP_TASK, toSig,
} from '../canvas/signature.ts';
import { buildTaskMessage, celeryOrigin } from '../protocol/message.ts';
import { buildMeta, celeryException } from '../protocol/result-meta.ts';
import { States, type EncodedException, type Json, type JsonObject, type SignatureDict, type TaskMessage } from '../protocol/types.ts';
import type { TaskContext, TaskRegistry, TaskSpec } from './registry.ts';

export interface ContinuationOptions {
  broker: Broker;
  backend: ResultBackend;
  registry: TaskRegistry;
  /** queue for signatures without a queue option (Celery's task_default_queue) */
  defaultQueue: string;
  logger: Logger;
  now: () => Date;
  /** for tests: fixed ids, reply_to and origin */
  newId?: () => string;
  replyTo?: string;
  origin?: string;
}

/** The request fields chord bookkeeping needs (a message's, or a chain element's options). */
interface ChordRequest {
  taskId: string;
  groupId: string | null;
  groupIndex: number | null;
  chord: Json | undefined;
  rootId: string | null;
}

const str = (v: Json | undefined): string | null => (typeof v === 'string' && v !== '' ? v : null);
const PROPAGATE = new Set<string>([States.FAILURE, States.REVOKED]);

/** Every task id a signature would have produced (to fail them when it never runs). */
export function resultIds(sig: SignatureDict): string[] {
  switch (kindOf(sig)) {
    case 'chain': return chainTasks(sig).flatMap(resultIds);
    case 'group': return groupTasks(sig).flatMap(resultIds);
    case 'chord': {
      const body = chordBody(sig);
      return [...groupTasks(chordHeader(sig)).flatMap(resultIds), ...(body ? resultIds(body) : [])];
    }
    default: {
      const id = str(sig.options['task_id']);
      return id ? [id] : [];
    }
  }
}

function notRegistered(name: string): Error {
  return Object.assign(new Error(`Task of kind '${name}' never registered`), {
    name: 'NotRegistered', excType: 'NotRegistered', excModule: 'celery.exceptions', excMessage: [name],
  });
}

export class Continuation {
  /** this worker's reply_to for what it publishes (Celery's thread oid) */
  readonly replyTo: string;
  readonly origin: string;
  readonly #o: ContinuationOptions;
  readonly #newId: () => string;
  readonly #log: Logger;
  /** results published by built-in tasks, by task id: added to their meta's children */
  readonly #trails = new Map<string, Json[]>();
  readonly #builtins: Map<string, TaskSpec>;

  constructor(options: ContinuationOptions) {
    this.#o = options;
    this.#newId = options.newId ?? randomUUID;
    this.replyTo = options.replyTo ?? randomUUID();
    this.origin = options.origin ?? celeryOrigin(process.pid, hostname());
    this.#log = options.logger.child({ component: 'canvas' });
    this.#builtins = this.#createBuiltins();
  }

  /** A Celery built-in task (celery.map, …) when `name` is one. */
  builtin(name: string): TaskSpec | undefined {
    return this.#builtins.get(name);
  }

  #run(current: { id: string; rootId: string | null }): CanvasRun {
    return new CanvasRun({ newId: this.#newId, replyTo: this.replyTo, current });
  }

  #current(message: TaskMessage): { id: string; rootId: string | null } {
    return { id: message.headers.id, rootId: message.headers.root_id };
  }

  /** Carry out a run's actions in order: chord sizes, then messages. */
  async #execute(run: CanvasRun): Promise<void> {
    for (const action of run.actions) {
      if (action.type === 'chord-size') {
        // without chord support (rpc://) the header still runs but the body never will, as in Celery
        if (this.#o.backend.setChordSize) await this.#o.backend.setChordSize(action.groupId, action.size);
        else this.#log.error({ groupId: action.groupId }, `the ${this.#o.backend.kind} result backend cannot hold chords: the chord body will never run`);
        continue;
      }
      const now = this.#o.now();
      const { call, route } = workerCall(action.message, { origin: this.origin, defaultQueue: this.#o.defaultQueue, now });
      await this.#o.broker.publish(buildTaskMessage(call, now), route);
    }
  }

  /**
   * True when a success of this message needs none of the steps below (no callbacks, chain or chord, no
   * trail from a built-in): the worker's fast path for plain tasks, most of them.
   */
  isPlainSuccess(message: TaskMessage): boolean {
    const { embed } = message;
    return !embed.callbacks?.length && !embed.chain?.length && !embed.chord && !this.#trails.has(message.headers.id);
  }

  /** After the handler succeeded, before SUCCESS is stored: callbacks, next chain step. Resolves to `children`. */
  async beforeSuccess(message: TaskMessage, value: Json): Promise<Json[]> {
    const { id } = message.headers;
    const rootId = message.headers.root_id || id;
    const run = this.#run(this.#current(message));
    const callbacks = message.embed.callbacks ?? [];
    const ids = { parent_id: id, root_id: rootId };
    if (callbacks.length > 1) {
      const sigs: SignatureDict[] = [];
      for (const cb of callbacks) {
        if (kindOf(cb) === 'group') run.apply(cloneSig(cb), [value], {}, ids);
        else sigs.push(cloneSig(cb));
      }
      if (sigs.length) run.apply(groupSig(sigs), [value], {}, ids);
    } else if (callbacks.length === 1) {
      run.apply(cloneSig(callbacks[0] as SignatureDict), [value], {}, ids);
    }
    const chain = message.embed.chain?.map(cloneSig) ?? [];
    const next = chain.pop();
    if (next) run.apply(next, [value], {}, { chain: chain as unknown as Json, ...ids });
    await this.#execute(run);
    const builtin = this.#trails.get(id) ?? [];
    this.#trails.delete(id);
    return [...builtin, ...run.trail.map(asTuple)];
  }

  /** After SUCCESS is stored (or skipped by ignore_result): the chord part. */
  async afterSuccess(message: TaskMessage, value: Json): Promise<void> {
    await this.#chordPart(this.#request(message), States.SUCCESS, value);
  }

  /** After REVOKED is stored: the chord part (a revoked member fails the chord). */
  async afterRevoked(message: TaskMessage, exc: EncodedException): Promise<void> {
    await this.#chordPart(this.#request(message), States.REVOKED, exc as unknown as Json);
  }

  /** After FAILURE is stored: chord part, remaining chain steps, errbacks. */
  async afterFailure(message: TaskMessage, exc: EncodedException, traceback: string | null): Promise<void> {
    const { id } = message.headers;
    this.#trails.delete(id);
    const result = exc as unknown as Json;
    await this.#chordPart(this.#request(message), States.FAILURE, result);
    for (const element of message.embed.chain ?? []) {
      const opts = element.options;
      const elementId = str(opts['task_id']);
      // Celery skips complex steps without a task id; we fail what they would have run, or a
      // client waiting on the workflow's last id would wait forever.
      for (const taskId of elementId ? [elementId] : resultIds(element)) {
        await this.#store(taskId, States.FAILURE, result, traceback, elementId ? str(opts['group_id']) : null, elementId ? str(opts['parent_id']) : null);
      }
      if (elementId && 'chord' in opts) {
        const groupIndex = typeof opts['group_index'] === 'number' ? opts['group_index'] : null;
        const req = { taskId: elementId, groupId: str(opts['group_id']), groupIndex, chord: opts['chord'], rootId: str(opts['root_id']) };
        await this.#chordPart(req, States.FAILURE, result);
      }
    }
    const errbacks = message.embed.errbacks ?? [];
    if (errbacks.length) {
      const run = this.#run(this.#current(message));
      run.apply(groupSig(errbacks.map(cloneSig)), [id], {}, { parent_id: id, root_id: message.headers.root_id || id });
      await this.#execute(run);
    }
  }

  #request(message: TaskMessage): ChordRequest {
    const h = message.headers;
    return { taskId: h.id, groupId: h.group, groupIndex: h.group_index, chord: message.embed.chord as unknown as Json, rootId: h.root_id };
  }

  async #store(taskId: string, status: string, result: Json, traceback: string | null, groupId: string | null = null, parentId: string | null = null): Promise<void> {
    await this.#o.backend.store(buildMeta({ taskId, status, result, traceback, groupId, parentId, now: this.#o.now() }));
  }

  /** `on_chord_part_return`: record the part; the member completing the chord publishes the body. */
  async #chordPart(req: ChordRequest, state: string, result: Json): Promise<void> {
    const body = toSig(req.chord);
    if (!req.groupId || !body) return;
    const backend = this.#o.backend;
    if (!backend.chordPartReturn) {
      this.#log.error({ taskId: req.taskId, groupId: req.groupId }, `the ${backend.kind} result backend cannot hold chords: the chord body will never run`);
      return;
    }
    const parts = await backend.chordPartReturn(req.groupId, req.groupIndex, { taskId: req.taskId, state, result });
    if (!parts) return;
    const failed = parts.find((p) => PROPAGATE.has(p.state));
    if (failed) {
      // Celery leaves the .j/.s keys behind in this case (they expire)
      await this.#chordError(body, `Dependency ${failed.taskId} raised ${pyExceptionRepr(failed.result)}`, req);
      return;
    }
    const run = this.#run({ id: req.taskId, rootId: req.rootId });
    try {
      run.apply(body, [parts.map((p) => p.result)]);
    } catch (err) {
      this.#log.error({ err, groupId: req.groupId }, 'chord callback could not be applied');
      await this.#chordError(body, `Callback error: ${(err as Error).name}(${JSON.stringify((err as Error).message)})`, req);
      await backend.clearChord?.(req.groupId);
      return;
    }
    await this.#execute(run); // a broker error propagates: the message is requeued and the part recorded again
    await backend.clearChord?.(req.groupId);
  }

  /** `chord_error_from_stack`: the body's errbacks fire and the body is stored FAILURE (ChordError). */
  async #chordError(body: SignatureDict, message: string, req: ChordRequest): Promise<void> {
    this.#log.warn({ groupId: req.groupId, reason: message }, 'chord failed');
    const exc = celeryException('ChordError', message) as unknown as Json;
    const ids = resultIds(body);
    const callbackId = str(body.options['task_id']) ?? ids[ids.length - 1] ?? null;
    const errbacks = maybeList(body.options['link_error']);
    if (errbacks?.length && callbackId) {
      const run = this.#run({ id: req.taskId, rootId: req.rootId });
      run.apply(groupSig(errbacks.map(cloneSig)), [callbackId], {}, { parent_id: callbackId, root_id: callbackId });
      await this.#execute(run);
    }
    // Celery stores the error under the body signature's own id; a chain body has none, so every
    // task of the body gets it (otherwise a client waiting on the chain's last id would hang).
    for (const id of ids) await this.#store(id, States.FAILURE, exc, null);
  }

  #createBuiltins(): Map<string, TaskSpec> {
    const split = (params: unknown[]): { ctx: TaskContext; args: Json[]; kwargs: JsonObject } => {
      const ctx = params.pop() as TaskContext;
      return { ctx, args: params as Json[], kwargs: ctx.kwargs };
    };
    const each = async (star: boolean, params: unknown[]): Promise<Json[]> => {
      const { ctx, args, kwargs } = split(params);
      const inner = toSig(kwargs['task'] ?? args[0]);
      const it = kwargs['it'] ?? args[1];
      if (!inner || !Array.isArray(it)) throw new TypeError(`${ctx.name} needs task (a signature) and it (a list)`);
      const spec = this.#o.registry.get(inner.task);
      if (!spec) throw notRegistered(inner.task);
      const out: Json[] = [];
      for (const item of it) {
        const itemArgs = star ? (Array.isArray(item) ? item : [item]) : [item];
        const value = await spec.handler(...itemArgs, ctx);
        out.push((value === undefined ? null : value) as Json);
      }
      return out;
    };
    const publishing = async (ctx: TaskContext, apply: (run: CanvasRun) => Json, trail?: Json[]): Promise<Json> => {
      const run = this.#run({ id: ctx.id, rootId: ctx.rootId });
      const value = apply(run);
      await this.#execute(run);
      this.#trails.set(ctx.id, trail ?? run.trail.map(asTuple));
      return value;
    };
    return new Map<string, TaskSpec>([
      ['celery.map', { handler: (...params: unknown[]) => each(false, params) }],
      ['celery.starmap', { handler: (...params: unknown[]) => each(true, params) }],
      ['celery.chunks', {
        handler: (...params: unknown[]) => {
          const { ctx, args, kwargs } = split(params);
          const inner = toSig(kwargs['task'] ?? args[0]);
          const it = kwargs['it'] ?? args[1];
          const n = kwargs['n'] ?? args[2];
          if (!inner || !Array.isArray(it) || !Number.isInteger(n) || (n as number) < 1) throw new TypeError('celery.chunks needs task, it and n');
          const parts: SignatureDict[] = [];
          for (let i = 0; i < it.length; i += n as number) {
            parts.push({ task: STARMAP_TASK, args: [], kwargs: { task: inner as unknown as Json, it: it.slice(i, i + (n as number)) }, options: {}, subtask_type: null, immutable: true });
          }
          return publishing(ctx, (run) => {
            const res = run.apply(groupSig(parts));
            return res ? asTuple(res) : null;
          });
        },
      }],
      ['celery.chord', {
        handler: (...params: unknown[]) => {
          const { ctx, kwargs } = split(params);
          const header = kwargs['header'];
          const body = toSig(kwargs['body']);
          const headerSig = toSig(header);
          const members = Array.isArray(header) ? header.map(toSig).filter((s): s is SignatureDict => s !== null) : headerSig ? (kindOf(headerSig) === 'group' ? groupTasks(headerSig) : [headerSig]) : [];
          if (!body) throw new TypeError('celery.chord needs a body');
          const partial = Array.isArray(kwargs['partial_args']) ? kwargs['partial_args'] : [];
          return publishing(ctx, (run) => {
            const res = run.apply(chordSig(groupSig(members), body), partial);
            return res ? asTuple(res) : null;
          });
        },
      }],
      ['celery.group', {
        handler: (...params: unknown[]) => {
          const { ctx, kwargs } = split(params);
          const tasks = Array.isArray(kwargs['tasks']) ? kwargs['tasks'].map(toSig).filter((s): s is SignatureDict => s !== null) : [];
          const partial = Array.isArray(kwargs['partial_args']) ? kwargs['partial_args'] : [];
          const groupId = str(kwargs['group_id']);
          const result = kwargs['result'] ?? null;
          return publishing(ctx, (run) => {
            for (const task of tasks) run.apply(task, partial, {}, { ...(groupId ? { group_id: groupId } : {}), add_to_parent: false });
            return result;
          }, result === null ? [] : [result]);
        },
      }],
      ['celery.chain', {
        handler: () => {
          throw Object.assign(new Error('chain is not a real task'), { name: 'NotImplementedError' });
        },
      }],
    ]);
  }
}
