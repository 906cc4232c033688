/**
 * Runs one handler under its time limits. Pure of broker/backend I/O: the worker stores and acks.
 */
import type { Json } from '../protocol/types.ts';
import { SoftTimeLimitExceeded, TimeLimitExceeded } from './errors.ts';
import type { TaskContext, TaskSpec } from './registry.ts';

export type Outcome =
  | { ok: true; value: Json; runtimeMs: number }
  | { ok: false; error: unknown; runtimeMs: number };

export interface Limits {
  /** seconds or null */
  hard: number | null;
  soft: number | null;
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
  abort: AbortController,
  limits: Limits,
): Promise<Outcome> {
  const started = performance.now();
  const timers: NodeJS.Timeout[] = [];
  try {
    const run = Promise.resolve().then(() => spec.handler(...args, ctx));
    if (limits.soft !== null) {
      const soft = limits.soft;
      timers.push(setTimeout(() => abort.abort(new SoftTimeLimitExceeded(soft)), soft * 1000));
    }
    // Any abort but the soft limit ends the run now (hard limit, revoke with terminate, shutdown): an
    // async handler cannot be stopped, so its late outcome is discarded.
    let onAbort: () => void = () => {};
    let stopNow: (reason: unknown) => void = () => {};
    const stopped = new Promise<never>((_, reject) => {
      stopNow = reject;
      onAbort = () => { if (!(abort.signal.reason instanceof SoftTimeLimitExceeded)) reject(abort.signal.reason); };
      abort.signal.addEventListener('abort', onAbort);
    });
    if (limits.hard !== null) {
      const hard = limits.hard;
      // after a soft limit the signal is already aborted (an AbortController fires once): end the run directly
      timers.push(setTimeout(() => {
        const reason = new TimeLimitExceeded(hard);
        if (!abort.signal.aborted) abort.abort(reason);
        stopNow(reason);
      }, hard * 1000));
    }
    run.catch(() => {}); // a handler that fails after being stopped is already accounted for
    let value: unknown;
    try {
      value = await Promise.race([run, stopped]);
    } finally {
      abort.signal.removeEventListener('abort', onAbort);
    }
    return { ok: true, value: (value === undefined ? null : value) as Json, runtimeMs: performance.now() - started };
  } catch (error) {
    return { ok: false, error, runtimeMs: performance.now() - started };
  } finally {
    for (const timer of timers) clearTimeout(timer);
  }
}
