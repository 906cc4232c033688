/**
 * The durable revoked set: ids revoked through the gateway, kept in shared state (Redis when configured)
 * for a TTL, so a revoke reaches celery-gateway workers that were offline or restarted. (Python workers
 * learn of revokes from the pidbox broadcast, as in Celery.)
 *
 * Each revoke is a key (`celery-gateway-revoked-<id>`, its options) and an entry in a time index
 * (`celery-gateway-revoked-index`, scored by when it was revoked). A worker keeps the index in memory
 * (RevokedCache): it loads it at start and fetches what is new every second, so checking a task costs
 * no round trip; the pidbox broadcast reaches a live worker at once anyway.
 */
import type { Logger } from 'pino';
import type { RevokeOptions } from '../protocol/control.ts';
import type { SharedState } from './shared-state.ts';

export const revokedKey = (taskId: string): string => `celery-gateway-revoked-${taskId}`;
export const REVOKED_INDEX = 'celery-gateway-revoked-index';

export class RevokedSet {
  readonly #state: SharedState;
  readonly #ttlSec: number;
  readonly #now: () => number;

  constructor(state: SharedState, ttlSec: number, now: () => number = Date.now) {
    this.#state = state;
    this.#ttlSec = ttlSec;
    this.#now = now;
  }

  async add(taskId: string, options: RevokeOptions): Promise<void> {
    await this.#state.set(revokedKey(taskId), JSON.stringify(options), this.#ttlSec);
    await this.#state.indexAdd(REVOKED_INDEX, taskId, this.#now(), this.#ttlSec);
  }

  /** one round trip per id: workers use a RevokedCache */
  async isRevoked(taskId: string): Promise<boolean> {
    return (await this.get(taskId)) !== null;
  }

  /** the revoke's options, or null when the id is not revoked */
  async get(taskId: string): Promise<RevokeOptions | null> {
    const text = await this.#state.get(revokedKey(taskId));
    return text === null ? null : (JSON.parse(text) as RevokeOptions);
  }
}

/**
 * A worker's copy of the revoked ids: `start()` loads the index, then every `refreshMs` the entries newer
 * than the newest seen (minus a margin for revokes written by gateways whose clocks lag) are fetched.
 * A revoke the worker missed on the pidbox (it was offline, or its listener was reconnecting) is seen
 * within `refreshMs`. A failed refresh is logged and retried at the next one.
 */
export class RevokedCache {
  readonly #state: SharedState;
  readonly #ttlSec: number;
  readonly #refreshMs: number;
  readonly #log: Logger | undefined;
  /** id → score (epoch ms of the revoke) */
  readonly #ids = new Map<string, number>();
  #newest = 0;
  #timer: NodeJS.Timeout | undefined;
  #failing = false;

  constructor(state: SharedState, ttlSec: number, options: { refreshMs?: number; logger?: Logger } = {}) {
    this.#state = state;
    this.#ttlSec = ttlSec;
    this.#refreshMs = options.refreshMs ?? 1000;
    this.#log = options.logger;
  }

  /** Load the index (rejects when the state cannot be read), then refresh in the background. */
  async start(): Promise<void> {
    await this.refresh();
    this.#timer = setInterval(() => {
      this.refresh().then(
        () => { if (this.#failing) this.#log?.info('revoked set readable again'); this.#failing = false; },
        (err: unknown) => {
          if (!this.#failing) this.#log?.warn({ err: (err as Error).message }, 'could not refresh the revoked set; retrying');
          this.#failing = true;
        },
      );
    }, this.#refreshMs);
    this.#timer.unref();
  }

  /** Fetch what is new in the index (exposed for tests). */
  async refresh(): Promise<void> {
    const margin = 5000;
    const entries = await this.#state.indexSince(REVOKED_INDEX, this.#newest === 0 ? 0 : this.#newest - margin);
    for (const [id, score] of entries) {
      this.#ids.set(id, score);
      if (score > this.#newest) this.#newest = score;
    }
    // forget what is past the TTL (the index itself drops it too)
    const oldest = this.#newest - this.#ttlSec * 1000;
    if (this.#ids.size > 0) for (const [id, score] of this.#ids) if (score < oldest) this.#ids.delete(id);
  }

  /** The worker's check: never a round trip. */
  isRevoked(taskId: string): boolean {
    return this.#ids.has(taskId);
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
