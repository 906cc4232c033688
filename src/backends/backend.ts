import type { Json, ResultMeta } from '../protocol/types.ts';

/** One header task's outcome in a chord's `.j` set (`[1, id, state, result]` on Redis). */
export interface ChordPart {
  taskId: string;
  state: string;
  /** the return value, or the encoded exception */
  result: Json;
}

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
  // -- canvas (chords and workflows). Optional: a backend without them (rpc://) cannot run chords.
  /** Store a chord's size (`SETEX celery-taskset-meta-<gid>.s` + PUBLISH on Redis), before its last header message. */
  setChordSize?(groupId: string, size: number): Promise<void>;
  /**
   * Record a header task's outcome (Redis: ZADD `.j` scored by group_index, ZCOUNT, GET `.t`/`.s`,
   * EXPIRE — one MULTI). Resolves to every part in header order once all have reported, else null.
   */
  chordPartReturn?(groupId: string, groupIndex: number | null, part: ChordPart): Promise<ChordPart[] | null>;
  /** Forget a finished chord (DEL `.j` `.t` `.s`). */
  clearChord?(groupId: string): Promise<void>;
  /** Keep a workflow's tree of ids (`celery-gateway-workflow-<id>`) for `ttlSec` (default: the result TTL). */
  saveWorkflow?(id: string, tree: Json, ttlSec?: number): Promise<void>;
  /** A saved workflow tree, or null. */
  getWorkflow?(id: string): Promise<Json | null>;
  /** rejects when the store cannot be reached */
  ping(): Promise<void>;
  /** idempotent */
  close(): Promise<void>;
}
