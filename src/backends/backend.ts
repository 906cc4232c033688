import type { ResultMeta } from '../protocol/types.ts';

export interface StoreOptions {
  /** the task message's reply_to: rpc:// sends the result there (other backends ignore it) */
  replyTo?: string;
}

/**
 * The port every result store implements, in Celery's layout (`celery-task-meta-<id>` on Redis,
 * reply messages on rpc://). It is not a queue: see Broker.
 */
export interface ResultBackend {
  /** "memory" | "redis" | "rpc" */
  readonly kind: string;
  readonly displayUrl: string;
  /** the stored meta, or null when nothing is stored (Celery's PENDING) */
  get(taskId: string): Promise<ResultMeta | null>;
  /**
   * Store a state change and notify listeners (SETEX + PUBLISH in one MULTI on Redis).
   * A stored SUCCESS is never overwritten: the call then does nothing.
   */
  store(meta: ResultMeta, options?: StoreOptions): Promise<void>;
  /**
   * Call `listener` with each meta stored for the task from now on.
   * Resolves once the subscription is active (so a following get() cannot miss a write); the returned
   * function unsubscribes.
   */
  listen(taskId: string, listener: (meta: ResultMeta) => void): Promise<() => void>;
  /** Remember ids the gateway published, so an unknown id can be told apart from a PENDING one. */
  rememberSubmitted(taskIds: readonly string[]): Promise<void>;
  wasSubmitted(taskId: string): Promise<boolean>;
  /** rejects when the store cannot be reached */
  ping(): Promise<void>;
  /** idempotent */
  close(): Promise<void>;
}
