/**
 * The TaskContext a handler gets when it runs in the worker's own thread: one object per run and no
 * function made for it unless the handler asks (the object literal it replaces made two getters, an
 * updateState closure and a copy of the exits for every task).
 */
import type { Logger } from 'pino';
import type { Json, JsonObject, TaskHeaders, TaskMessage } from '../protocol/types.ts';
import type { RejectOptions } from './errors.ts';
import { contextExits, stateMeta, type TaskContext } from './registry.ts';
import type { RetryOptions } from './retry.ts';
import type { TaskAbort } from './task-abort.ts';

/** What every run's context shares: made once per worker. */
export interface ContextHost {
  readonly hostname: string;
  /** the worker's logger; a run's own is its child */
  readonly log: Logger;
  /** store a state asked by updateState; resolves once stored or once the failure is logged, never rejects */
  storeState(message: TaskMessage, state: string, meta: Json): Promise<void>;
}

export class RunContext implements TaskContext {
  readonly id: string;
  readonly name: string;
  readonly kwargs: JsonObject;
  readonly retries: number;
  readonly rootId: string | null;
  readonly parentId: string | null;
  readonly groupId: string | null;
  readonly headers: TaskHeaders;
  readonly hostname: string;
  readonly redelivered: boolean;
  readonly #message: TaskMessage;
  readonly #abort: TaskAbort;
  readonly #host: ContextHost;
  #log: Logger | undefined;
  #updateState: TaskContext['updateState'] | undefined;

  constructor(message: TaskMessage, redelivered: boolean, abort: TaskAbort, host: ContextHost) {
    const { headers } = message;
    this.id = headers.id;
    this.name = headers.task;
    this.kwargs = message.kwargs;
    this.retries = headers.retries;
    this.rootId = headers.root_id;
    this.parentId = headers.parent_id;
    this.groupId = headers.group;
    this.headers = headers;
    this.hostname = host.hostname;
    this.redelivered = redelivered;
    this.#message = message;
    this.#abort = abort;
    this.#host = host;
  }

  get signal(): AbortSignal {
    return this.#abort.signal;
  }

  /** made on first read: a child logger per task is measurable at thousands of tasks/s */
  get log(): Logger {
    this.#log ??= this.#host.log.child({ task: this.name, taskId: this.id });
    return this.#log;
  }

  /**
   * A function bound to this run, so `const { updateState } = ctx` works as it does for every other
   * member. Throws at once for a bad state or meta; the promise never rejects (a handler may not await it).
   */
  get updateState(): TaskContext['updateState'] {
    this.#updateState ??= (state, meta) => this.#host.storeState(this.#message, state, stateMeta(state, meta));
    return this.#updateState;
  }

  // the exits use no `this`: destructured, they still work
  retry(options?: RetryOptions): never {
    return contextExits.retry(options);
  }

  reject(options?: RejectOptions): never {
    return contextExits.reject(options);
  }

  ignore(): never {
    return contextExits.ignore();
  }
}
