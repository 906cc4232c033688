/**
 * A canvas MessageSpec → what the producer (gateway) or the broker (worker) publishes. Pure.
 */
import type { Route } from '../brokers/broker.ts';
import type { TaskCall } from '../protocol/message.ts';
import { argsRepr, REPR_MAXSIZE, saferepr } from '../protocol/repr.ts';
import { parseIsoDate } from '../protocol/time.ts';
import type { Json, JsonObject } from '../protocol/types.ts';
import { resolveOptions, type TaskOptions } from '../task-options.ts';
import type { MessageSpec } from './apply.ts';
import { isObject, MAP_TASK, STARMAP_TASK } from './signature.ts';
import { toTaskOptions } from './spec.ts';

/**
 * `kwargsrepr` of a celery.map / celery.starmap message as a Python client writes it: the inner
 * signature's args print as a tuple, starmap items as tuples (exact for values of ordinary size;
 * larger ones fall back to the generic repr).
 */
export function mapKwargsRepr(task: string, kwargs: JsonObject): string | undefined {
  if (task !== MAP_TASK && task !== STARMAP_TASK) return undefined;
  const inner = kwargs['task'];
  const it = kwargs['it'];
  if (!isObject(inner) || !Array.isArray(it) || Object.keys(kwargs).length !== 2) return undefined;
  const args = Array.isArray(inner['args']) ? inner['args'] : [];
  const parts = Object.entries(inner).map(([k, v]) => `${saferepr(k)}: ${k === 'args' ? argsRepr(args) : saferepr(v as Json)}`);
  const items = task === STARMAP_TASK ? `[${it.map((item) => (Array.isArray(item) ? argsRepr(item) : saferepr(item))).join(', ')}]` : saferepr(it);
  const repr = `{'task': {${parts.join(', ')}}, 'it': ${items}}`;
  return repr.length <= REPR_MAXSIZE ? repr : undefined;
}

/** The embed and id fields of a call (everything but the options the producer resolves). */
export function callExtras(m: MessageSpec): Partial<TaskCall> {
  const extra: Partial<TaskCall> = {
    rootId: m.rootId,
    parentId: m.parentId,
    group: m.group,
    groupIndex: m.groupIndex,
    replyTo: m.replyTo,
    embed: { callbacks: m.callbacks, errbacks: m.errbacks, chain: m.chain, chord: m.chord },
  };
  const kwargsrepr = mapKwargsRepr(m.task, m.kwargs);
  if (kwargsrepr !== undefined) extra.kwargsrepr = kwargsrepr;
  return extra;
}

/** The options of a message as the gateway's producer takes them (already validated). */
export function producerOptions(m: MessageSpec): TaskOptions {
  return { ...toTaskOptions(m.options), task_id: m.id };
}

/**
 * A worker-side publication: whatever options a (Python) signature carries are applied the way
 * Celery's send_task would, never refused — countdown wins over eta, an expiry already past is kept
 * (the receiving worker revokes the task), time limits are passed on as given.
 */
export function workerCall(m: MessageSpec, ctx: { origin: string; defaultQueue: string; now: Date }): { call: TaskCall; route: Route } {
  const options = toTaskOptions(m.options);
  const { expires, time_limit: hard, soft_time_limit: soft, ...rest } = options;
  if (rest.countdown !== undefined) delete rest.eta;
  let resolved;
  try {
    resolved = resolveOptions(rest, ctx.defaultQueue, ctx.now);
  } catch {
    const fallback: TaskOptions = {};
    if (rest.queue !== undefined) fallback.queue = rest.queue;
    resolved = resolveOptions(fallback, ctx.defaultQueue, ctx.now);
  }
  let expiresAt: Date | null = null;
  if (typeof expires === 'number') expiresAt = new Date(ctx.now.getTime() + expires * 1000);
  else if (typeof expires === 'string') expiresAt = parseIsoDate(expires);
  const call: TaskCall = {
    task: m.task,
    id: m.id,
    args: m.args,
    kwargs: m.kwargs,
    eta: resolved.eta,
    expires: expiresAt,
    timeLimit: [hard ?? null, soft ?? null],
    ignoreResult: resolved.ignoreResult,
    origin: ctx.origin,
    replyTo: m.replyTo,
    priority: resolved.priority ?? 0,
    ...callExtras(m),
  };
  return { call, route: resolved.route };
}
