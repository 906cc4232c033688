/**
 * The durable revoked set: ids revoked through the gateway, kept in shared state (Redis when configured)
 * for a TTL, so a revoke reaches celery-gateway workers that were offline or restarted. (Python workers
 * learn of revokes from the pidbox broadcast, as in Celery.)
 */
import type { RevokeOptions } from '../protocol/control.ts';
import type { SharedState } from './shared-state.ts';

export const revokedKey = (taskId: string): string => `celery-gateway-revoked-${taskId}`;

export class RevokedSet {
  readonly #state: SharedState;
  readonly #ttlSec: number;

  constructor(state: SharedState, ttlSec: number) {
    this.#state = state;
    this.#ttlSec = ttlSec;
  }

  async add(taskId: string, options: RevokeOptions): Promise<void> {
    await this.#state.set(revokedKey(taskId), JSON.stringify(options), this.#ttlSec);
  }

  /** the revoke's options, or null when the id is not revoked */
  async get(taskId: string): Promise<RevokeOptions | null> {
    const text = await this.#state.get(revokedKey(taskId));
    return text === null ? null : (JSON.parse(text) as RevokeOptions);
  }
}
