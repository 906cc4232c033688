/**
 * Runs one handler under its time limits. Pure of broker/backend I/O: the worker stores and acks.
 */
import type { Json } from '../protocol/types.ts';
import { SoftTimeLimitExceeded, TimeLimitExceeded } from './errors.ts';
import type { TaskContext, TaskSpec } from './registry.ts';
import type { TaskAbort } from './task-abort.ts';

export type Outcome =
  | { ok: true; value: Json; runtimeMs: number }
  | { ok: false; error: unknown; runtimeMs: number };

export interface Limits {
  /** seconds or null */
  hard: number | null;
  soft: number | null;
}

/** Timers that abort `abort` at the soft and hard limits; clear them when the run ends. */
export function limitTimers(abort: TaskAbort, limits: Limits): NodeJS.Timeout[] {
  const timers: NodeJS.Timeout[] = [];
  const { soft, hard } = limits;
  if (soft !== null) timers.push(setTimeout(() => abort.abort(new SoftTimeLimitExceeded(soft)), soft * 1000));
  if (hard !== null) timers.push(setTimeout(() => abort.abort(new TimeLimitExceeded(hard)), hard * 1000));
  return timers;
}

function isThenable(value: unknown): value is PromiseLike<unknown> {
  return value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as { then?: unknown }).then === 'function';
}

/**
 * The handler's promise, or the stop reason if the run is stopped first. Any abort but the soft limit
 * stops it (hard limit, revoke with terminate, shutdown), even after a soft one: an async handler cannot
 * be stopped, so its late outcome is discarded.
 */
function untilStopped(run: PromiseLike<unknown>, abort: TaskAbort): Promise<unknown> {
  const result = Promise.resolve(run);
  result.catch(() => {}); // a handler that fails after being stopped is already accounted for
  const stopped = abort.stopped
    ? Promise.reject(abort.stopReason)
    : new Promise<never>((_, reject) => abort.listen(() => { if (abort.stopped) reject(abort.stopReason); }));
  return Promise.race([result, stopped]);
}

/**
 * Call `spec.handler(...args, ctx)`. The soft limit aborts `abort` (the ctx.signal) with
 * SoftTimeLimitExceeded; the hard limit fails the task with TimeLimitExceeded whatever the handler does
 * (an async handler cannot be stopped: its late result is discarded).
 */
export async function execute(
  spec: TaskSpec,
  args: readonly Json[],
  ctx: TaskContext,
  abort: TaskAbort,
  limits: Limits,
): Promise<Outcome> {
  const started = performance.now();
  const timers = limitTimers(abort, limits);
  try {
    if (abort.stopped) throw abort.stopReason;
    const result: unknown = spec.handler(...args, ctx);
    // a synchronous handler has finished: nothing left to race against the limits
    const value = isThenable(result) ? await untilStopped(result, abort) : result;
    return { ok: true, value: (value === undefined ? null : value) as Json, runtimeMs: performance.now() - started };
  } catch (error) {
    return { ok: false, error, runtimeMs: performance.now() - started };
  } finally {
    abort.listen(undefined);
    for (const timer of timers) clearTimeout(timer);
  }
}
