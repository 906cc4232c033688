/**
 * What the main thread and a `--pool threads` thread say to each other. Errors cross the thread
 * boundary as plain data (name, message, stack and Celery's exc* fields) and come back as Errors with
 * the same name, so `autoretryFor` by error name and the stored exception type work as in the async pool.
 */
import type { Json, JsonObject, TaskHeaders } from '../protocol/types.ts';
import { Ignore, Reject, type RejectOptions } from './errors.ts';
import { Retry, type RetryOptions } from './retry.ts';

/** The serialisable part of a TaskContext. */
export interface ThreadContext {
  id: string;
  name: string;
  kwargs: JsonObject;
  retries: number;
  rootId: string | null;
  parentId: string | null;
  groupId: string | null;
  headers: TaskHeaders;
  hostname: string;
  redelivered: boolean;
}

export interface RunRequest {
  type: 'run';
  name: string;
  args: readonly Json[];
  ctx: ThreadContext;
}

export interface SerializedError {
  name: string;
  message: string;
  stack?: string;
  excType?: string;
  excModule?: string;
  excMessage?: unknown[];
  /** set when the handler asked for a retry (ctx.retry) */
  retry?: { countdown?: number; eta?: Date; maxRetries?: number; exc?: SerializedError };
  /** set when the handler refused its message (ctx.reject) */
  reject?: RejectOptions;
  /** set when the handler ended without an outcome (ctx.ignore) */
  ignore?: true;
}

export type ThreadReply =
  | { type: 'ready' }
  | { type: 'load-failed'; error: SerializedError }
  | { type: 'done'; ok: true; value: Json; runtimeMs: number }
  | { type: 'done'; ok: false; error: SerializedError; runtimeMs: number }
  /** ctx.updateState in a thread: stored by the main thread, the run goes on */
  | { type: 'state'; state: string; meta: Json };

export function serializeError(err: unknown): SerializedError {
  if (err instanceof Retry) {
    const { countdown, eta, maxRetries, exc } = err.options;
    return {
      name: err.name, message: err.message,
      retry: {
        ...(countdown !== undefined ? { countdown } : {}), ...(eta !== undefined ? { eta } : {}),
        ...(maxRetries !== undefined ? { maxRetries } : {}), ...(exc !== undefined ? { exc: serializeError(exc) } : {}),
      },
    };
  }
  if (err instanceof Ignore) return { name: err.name, message: err.message, ignore: true };
  if (err instanceof Reject) {
    const { requeue, reason } = err.options;
    return { name: err.name, message: err.message, reject: { ...(requeue !== undefined ? { requeue } : {}), ...(reason !== undefined ? { reason } : {}) } };
  }
  if (!(err instanceof Error)) return { name: 'Error', message: typeof err === 'string' ? err : JSON.stringify(err) ?? String(err) };
  const like = err as Error & { excType?: unknown; excModule?: unknown; excMessage?: unknown };
  const out: SerializedError = { name: err.name, message: err.message };
  if (typeof err.stack === 'string') out.stack = err.stack;
  if (typeof like.excType === 'string') out.excType = like.excType;
  if (typeof like.excModule === 'string') out.excModule = like.excModule;
  if (Array.isArray(like.excMessage)) out.excMessage = JSON.parse(JSON.stringify(like.excMessage)) as unknown[];
  return out;
}

export function deserializeError(data: SerializedError): Error {
  if (data.retry) {
    const { exc, ...rest } = data.retry;
    const options: RetryOptions = { ...rest, ...(exc ? { exc: deserializeError(exc) } : {}) };
    return new Retry(options);
  }
  if (data.reject) return new Reject(data.reject);
  if (data.ignore) return new Ignore();
  const err = new Error(data.message) as Error & Record<string, unknown>;
  Object.defineProperty(err, 'name', { value: data.name, enumerable: false, configurable: true, writable: true });
  if (data.stack !== undefined) err.stack = data.stack;
  if (data.excType !== undefined) err['excType'] = data.excType;
  if (data.excModule !== undefined) err['excModule'] = data.excModule;
  if (data.excMessage !== undefined) err['excMessage'] = data.excMessage;
  return err;
}
