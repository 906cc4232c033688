/**
 * Celery's retries: `ctx.retry()` and `autoretryFor` decide whether a failed run is published again
 * (same id, `retries + 1`, an eta, `parent_id` = its own id) and stored as RETRY, or fails for good.
 * Pure: the clock and the random source are parameters.
 */
import type { EncodedException, RawMessage, TaskHeaders } from '../protocol/types.ts';
import { isoWithOffset } from '../protocol/time.ts';

/** Celery's default_retry_delay, seconds */
export const DEFAULT_RETRY_DELAY = 180;
/** Celery's default max_retries */
export const DEFAULT_MAX_RETRIES = 3;

export interface RetryOptions {
  /** seconds from now (default: the task's retry delay, 180 s) */
  countdown?: number;
  /** run no earlier than this */
  eta?: Date;
  /** the error to record with RETRY, and to fail with past the limit */
  exc?: unknown;
  /** overrides the task's maxRetries for this call */
  maxRetries?: number;
}

/** Thrown by `ctx.retry()`; the worker turns it into a republished message. */
export class Retry extends Error {
  override readonly name = 'Retry';
  readonly excType = 'Retry';
  readonly excModule = 'celery.exceptions';
  constructor(readonly options: RetryOptions = {}) {
    super(options.exc instanceof Error ? `Retry: ${options.exc.message}` : 'Retry');
  }
}

/** Retry settings a task declares (Celery's autoretry_for, retry_backoff, …). */
export interface RetryPolicy {
  /** default 3 */
  maxRetries?: number;
  /** retry automatically on these errors: classes, or error names */
  autoretryFor?: readonly (string | (abstract new (...args: never[]) => Error))[];
  /** exponential backoff: true = factor 1 s, a number = factor in seconds */
  retryBackoff?: boolean | number;
  /** cap of the backoff, seconds (default 600) */
  retryBackoffMax?: number;
  /** full jitter on the backoff (default true) */
  retryJitter?: boolean;
  /** countdown when neither backoff nor the call gives one (default 180 s) */
  retryDelay?: number;
}

export type RetryDecision =
  | { retry: true; eta: Date; exc: unknown }
  /** past the limit: fail with `exc` (or `exceeded` when the retry named no error) */
  | { retry: false; exc: unknown; exceeded?: EncodedException };

function matches(error: unknown, kinds: RetryPolicy['autoretryFor']): boolean {
  if (!kinds || !(error instanceof Error)) return false;
  return kinds.some((kind) => (typeof kind === 'string' ? error.name === kind : error instanceof kind));
}

/** Celery's get_exponential_backoff_interval. */
export function backoffSeconds(policy: RetryPolicy, retries: number, random: () => number): number {
  const factor = policy.retryBackoff === true ? 1 : Number(policy.retryBackoff);
  const countdown = Math.min(policy.retryBackoffMax ?? 600, factor * 2 ** retries);
  return policy.retryJitter === false ? countdown : Math.floor(random() * (countdown + 1));
}

/** What to do with a failed run; null when it is a plain failure (no retry asked for). */
export function decideRetry(error: unknown, headers: TaskHeaders, policy: RetryPolicy, now: Date, random: () => number = Math.random): RetryDecision | null {
  const asked = error instanceof Retry ? error.options : matches(error, policy.autoretryFor) ? { exc: error } : null;
  if (!asked) return null;
  const exc = asked.exc ?? (error instanceof Retry ? undefined : error);
  const max = asked.maxRetries ?? policy.maxRetries ?? DEFAULT_MAX_RETRIES;
  if (headers.retries >= max) {
    if (exc !== undefined) return { retry: false, exc };
    return {
      retry: false,
      exc: error,
      exceeded: { exc_type: 'MaxRetriesExceededError', exc_message: [`Can't retry ${headers.task}[${headers.id}] args:${headers.argsrepr} kwargs:${headers.kwargsrepr}`], exc_module: 'celery.exceptions' },
    };
  }
  let seconds = asked.countdown;
  if (seconds === undefined && asked.eta === undefined) {
    seconds = policy.retryBackoff ? backoffSeconds(policy, headers.retries, random) : policy.retryDelay ?? DEFAULT_RETRY_DELAY;
  }
  const eta = asked.eta ?? new Date(now.getTime() + (seconds ?? 0) * 1000);
  return { retry: true, eta, exc: exc ?? error };
}

/** The message a retry publishes: the same call, `retries + 1`, the eta, `parent_id` = its own id. */
export function retryMessage(raw: RawMessage, headers: TaskHeaders, eta: Date): RawMessage {
  return {
    ...raw,
    headers: { ...raw.headers, retries: headers.retries + 1, eta: isoWithOffset(eta), parent_id: headers.id },
  };
}
