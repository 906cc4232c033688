/**
 * Control-flow errors of the worker, checked with instanceof. Each carries the Python exception it is
 * stored as (excType / excModule), so a Python client raises the class it knows.
 */

/** The soft time limit passed: the handler's AbortSignal is aborted with this reason. */
export class SoftTimeLimitExceeded extends Error {
  override readonly name = 'SoftTimeLimitExceeded';
  readonly excType = 'SoftTimeLimitExceeded';
  readonly excModule = 'billiard.exceptions';
  readonly excMessage: [string];
  constructor(seconds: number) {
    super(`SoftTimeLimitExceeded(${seconds})`);
    this.excMessage = [`SoftTimeLimitExceeded(${seconds})`];
  }
}

/** The hard time limit passed: the task is failed and its late result discarded. */
export class TimeLimitExceeded extends Error {
  override readonly name = 'TimeLimitExceeded';
  readonly excType = 'TimeLimitExceeded';
  readonly excModule = 'billiard.exceptions';
  readonly excMessage: [number];
  constructor(seconds: number) {
    super(`TimeLimitExceeded(${seconds})`);
    this.excMessage = [seconds];
  }
}

/** The worker is shutting down and stopped waiting for the handler: the message goes back to the queue. */
export class WorkerShutdown extends Error {
  override readonly name = 'WorkerShutdown';
  constructor() {
    super('worker shutting down');
  }
}

/** Revoked with terminate while running: the handler's AbortSignal fires with this reason. */
export class TaskRevoked extends Error {
  override readonly name = 'TaskRevokedError';
  readonly excType = 'TaskRevokedError';
  readonly excModule = 'celery.exceptions';
  readonly excMessage = ['terminated'];
  constructor(taskId: string) {
    super(`task ${taskId} revoked (terminate)`);
  }
}

/** What `ctx.reject()` takes. */
export interface RejectOptions {
  /** put the message back on its queue (default false) */
  requeue?: boolean;
  /** why, for the log */
  reason?: string;
}

/**
 * Thrown by `ctx.reject()`, Celery's `Reject`: the handler refuses its message. The worker stores no
 * result and continues no canvas; it rejects the message (requeue: back to its queue; else dropped, or
 * dead-lettered on a RabbitMQ queue with a dead-letter exchange) and sends task-rejected. As in Celery,
 * only while the message is unacknowledged (late ack): a task with acksLate: false was acked when it
 * started, and the rejection then only ends the run.
 */
export class Reject extends Error {
  override readonly name = 'Reject';
  readonly excType = 'Reject';
  readonly excModule = 'celery.exceptions';
  constructor(readonly options: RejectOptions = {}) {
    super(options.reason ?? 'Reject');
  }
}

/**
 * Thrown by `ctx.ignore()`, Celery's `Ignore`: the worker acks the message and stores nothing (a state
 * the handler stored with ctx.updateState stays), sends no task event and continues no canvas.
 */
export class Ignore extends Error {
  override readonly name = 'Ignore';
  readonly excType = 'Ignore';
  readonly excModule = 'celery.exceptions';
  constructor() {
    super('Ignore');
  }
}
