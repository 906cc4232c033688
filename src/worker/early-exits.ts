/**
 * A handler ending its run without an outcome, as Celery's `Reject` and `Ignore` exceptions.
 *
 * `Reject`: a handler refuses its message. The worker stores no result and continues no
 * canvas; it rejects the message (requeue: back to its queue; else dropped, or dead-lettered on a
 * RabbitMQ queue with a dead-letter exchange) and sends task-rejected. As in Celery, that only happens
 * while the message is still unacknowledged, i.e. with late ack (a task with acksLate: false was acked
 * when it started: the rejection then only ends the run).
 */
export interface RejectOptions {
  /** put the message back on its queue (default false) */
  requeue?: boolean;
  /** why, for the log */
  reason?: string;
}

/** Thrown by `ctx.reject()`. */
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
