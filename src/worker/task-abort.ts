/**
 * How a running task is told to stop. The handler's `ctx.signal` is made only if the handler reads it
 * (an AbortSignal with a listener costs ~5 us per task, a tenth of a no-op task's whole cost), and
 * unlike an AbortController it escalates: after the soft limit has aborted the signal, a hard limit,
 * a revoke with terminate or a shutdown still stops the run.
 */
import { SoftTimeLimitExceeded } from './errors.ts';

export class TaskAbort {
  #controller: AbortController | undefined;
  #aborted = false;
  #reason: unknown;
  #stopped = false;
  #stopReason: unknown;
  #listener: ((reason: unknown) => void) | undefined;

  /** the handler's signal: aborted with the first reason (SoftTimeLimitExceeded, TaskRevoked, …) */
  get signal(): AbortSignal {
    if (!this.#controller) {
      this.#controller = new AbortController();
      if (this.#aborted) this.#controller.abort(this.#reason);
    }
    return this.#controller.signal;
  }

  get aborted(): boolean {
    return this.#aborted;
  }

  /** why the run must end (anything but the soft limit), or undefined while it may go on */
  get stopReason(): unknown {
    return this.#stopReason;
  }

  get stopped(): boolean {
    return this.#stopped;
  }

  /** The soft limit only aborts the signal; any other reason also stops the run (once). */
  abort(reason: unknown): void {
    let changed = false;
    if (!this.#aborted) {
      this.#aborted = true;
      this.#reason = reason;
      this.#controller?.abort(reason);
      changed = true;
    }
    if (!this.#stopped && !(reason instanceof SoftTimeLimitExceeded)) {
      this.#stopped = true;
      this.#stopReason = reason;
      changed = true;
    }
    if (changed) this.#listener?.(reason);
  }

  /** One listener (the executor or the thread pool), called with each reason that changed the state. */
  listen(listener: ((reason: unknown) => void) | undefined): void {
    this.#listener = listener;
  }
}
