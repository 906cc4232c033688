/**
 * Task handlers registered by Celery task name, and the loader for a module of them.
 */
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.ts';
import type { Json, JsonObject, TaskHeaders } from '../protocol/types.ts';
import { parseRate } from './rate-limit.ts';
import { Ignore, Reject, type RejectOptions } from './errors.ts';
import { Retry, type RetryOptions, type RetryPolicy } from './retry.ts';

/** What a handler receives after its positional arguments. */
export interface TaskContext {
  readonly id: string;
  readonly name: string;
  readonly kwargs: JsonObject;
  readonly retries: number;
  readonly rootId: string | null;
  readonly parentId: string | null;
  readonly groupId: string | null;
  /** the full protocol v2 headers */
  readonly headers: TaskHeaders;
  /** this worker's node name */
  readonly hostname: string;
  /** true when the broker delivered this message before (e.g. after a worker crash) */
  readonly redelivered: boolean;
  /** aborted on soft time limit, hard time limit and worker shutdown; `signal.reason` says which */
  readonly signal: AbortSignal;
  /** a logger scoped to this task */
  readonly log: Logger;
  /**
   * Ask to be run again later (Celery's `self.retry`): throws, so `throw ctx.retry(…)` or just call it.
   * Past maxRetries the task fails with `exc` (or MaxRetriesExceededError).
   */
  retry(options?: RetryOptions): never;
  /**
   * Refuse the message (Celery's `raise Reject(reason, requeue)`): throws. Nothing is stored; with late
   * ack the message is rejected (`requeue: true` puts it back on its queue) and task-rejected is sent.
   */
  reject(options?: RejectOptions): never;
  /**
   * End the run without an outcome (Celery's `raise Ignore()`): throws; the message is acked and nothing
   * is stored, so a state set with updateState (e.g. a custom final state) stays what pollers see.
   */
  ignore(): never;
  /**
   * Store a state of this task while it runs (Celery's `self.update_state(state=..., meta=...)`), e.g.
   * `ctx.updateState('PROGRESS', { current: 3, total: 10 })`: GET /results and a Python AsyncResult show
   * it until the outcome replaces it. `meta` must be JSON (throws otherwise). Best effort: resolves
   * once stored, or once the failure to store it is logged.
   */
  updateState(state: string, meta?: unknown): Promise<void>;
}

/** The TaskContext methods that end a run by throwing: the same in the main thread and in a pool thread. */
export const contextExits: Pick<TaskContext, 'retry' | 'reject' | 'ignore'> = {
  retry: (options) => { throw new Retry(options); },
  reject: (options) => { throw new Reject(options); },
  ignore: () => { throw new Ignore(); },
};

/** A custom state's meta as JSON (throws a TypeError for what JSON cannot hold, e.g. a BigInt). */
export function stateMeta(state: unknown, meta: unknown): Json {
  if (typeof state !== 'string' || state === '') throw new TypeError('updateState needs a state name, e.g. "PROGRESS"');
  return meta === undefined ? null : JSON.parse(JSON.stringify(meta) ?? 'null') as Json;
}

/**
 * A handler: `(arg0, arg1, …, ctx) => result | Promise<result>`. The positional arguments come first,
 * the TaskContext last (a handler with rest parameters finds it as the last element). The result must
 * be JSON-serializable; `undefined` is stored as null.
 * (Declared through a method so handlers with specific parameter types are accepted.)
 */
export type TaskHandler = { run(...args: unknown[]): unknown }['run'];

/** Per-task options, as Celery's task decorator takes them. */
export interface TaskSpec extends RetryPolicy {
  handler: TaskHandler;
  /** don't store SUCCESS (Celery's ignore_result); failures are still stored */
  ignoreResult?: boolean;
  /** store STARTED before running (Celery's track_started); default true */
  trackStarted?: boolean;
  /** hard time limit in seconds, when the message has none */
  timeLimit?: number;
  /** soft time limit in seconds, when the message has none */
  softTimeLimit?: number;
  /**
   * Celery's rate_limit, enforced per worker: `"10/s"`, `"100/m"`, `"1000/h"` (a bare number is per
   * second). A limited task waits (its message held, unacked) without delaying other tasks.
   */
  rateLimit?: string | number;
  /**
   * The queue this task's messages are published to (Celery's `queue=`): a worker started without
   * `-Q` consumes the default queue plus the queues its tasks declare. Routing a submission there is
   * the gateway's CELERY_TASK_ROUTES.
   */
  queue?: string;
  /**
   * Ack after the outcome is stored (default true: a crash runs the task again). false: ack when the
   * task starts, like Celery's default acks_late=False (a crash mid-run loses it).
   */
  acksLate?: boolean;
}

export type TaskDefinition = TaskHandler | TaskSpec;
export type TaskModule = Record<string, TaskDefinition>;

/** Identity helper that type-checks a task module. */
export function defineTasks<T extends TaskModule>(tasks: T): T {
  return tasks;
}

const NAME = /^[A-Za-z_][A-Za-z0-9_.:-]{0,254}$/;

export class TaskRegistry {
  readonly #tasks = new Map<string, TaskSpec>();

  register(name: string, definition: TaskDefinition): this {
    if (!NAME.test(name)) throw new GatewayError('GW_ERR_CONFIG', `invalid task name ${JSON.stringify(name)}: use a dotted name such as "proj.tasks.add"`);
    const spec = typeof definition === 'function' ? { handler: definition } : definition;
    if (typeof spec?.handler !== 'function') throw new GatewayError('GW_ERR_CONFIG', `task ${name}: expected a function or { handler: function, … }`);
    try {
      parseRate(spec.rateLimit);
    } catch (err) {
      throw new GatewayError('GW_ERR_CONFIG', `task ${name}: ${(err as Error).message}`);
    }
    if (spec.queue !== undefined && !/^[\w.:@-]{1,200}$/.test(spec.queue)) throw new GatewayError('GW_ERR_CONFIG', `task ${name}: invalid queue ${JSON.stringify(spec.queue)}`);
    this.#tasks.set(name, spec);
    return this;
  }

  registerAll(tasks: TaskModule): this {
    for (const [name, definition] of Object.entries(tasks)) this.register(name, definition);
    return this;
  }

  get(name: string): TaskSpec | undefined {
    return this.#tasks.get(name);
  }

  names(): string[] {
    return [...this.#tasks.keys()].sort();
  }

  /** the queues tasks declared with `queue`, sorted, without duplicates */
  queues(): string[] {
    return [...new Set([...this.#tasks.values()].flatMap((spec) => (spec.queue ? [spec.queue] : [])))].sort();
  }

  get size(): number {
    return this.#tasks.size;
  }
}

/** Load a JS or TS module whose default export (or `tasks` export) maps task names to handlers. */
export async function loadTaskModule(path: string): Promise<TaskRegistry> {
  const url = pathToFileURL(resolve(path)).href;
  let mod: { default?: unknown; tasks?: unknown };
  try {
    mod = (await import(url)) as { default?: unknown; tasks?: unknown };
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `cannot load tasks module ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
  const tasks = mod.default ?? mod.tasks;
  if (!tasks || typeof tasks !== 'object') {
    throw new GatewayError('GW_ERR_CONFIG', `tasks module ${path} must export default { "task.name": handler, … }`);
  }
  const registry = new TaskRegistry().registerAll(tasks as TaskModule);
  if (registry.size === 0) throw new GatewayError('GW_ERR_CONFIG', `tasks module ${path} registers no task`);
  return registry;
}
