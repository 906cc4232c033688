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
