/**
 * Per-task rate limits as Celery's worker enforces them: a rate string (`"10/s"`, `"100/m"`, `"1000/h"`,
 * or a bare number = per second) becomes a token bucket of capacity 1 filled at that rate (kombu's
 * TokenBucket), one per task name per worker. Pure: the clock is passed in.
 */

const UNITS: Record<string, number> = { s: 1, m: 60, h: 3600 };

/**
 * Tasks per second for a Celery rate string; null for "no limit" (null, '', '0', 0).
 * Throws a RangeError for anything else (Celery's `rate()` raises ValueError).
 */
export function parseRate(rate: string | number | null | undefined): number | null {
  if (rate === null || rate === undefined || rate === '') return null;
  if (typeof rate === 'number') {
    if (!Number.isFinite(rate) || rate < 0) throw new RangeError(`invalid rate limit ${rate}`);
    return rate === 0 ? null : rate;
  }
  const match = /^\s*(\d+(?:\.\d+)?)\s*(?:\/\s*([smh]))?\s*$/.exec(rate);
  if (!match) throw new RangeError(`invalid rate limit ${JSON.stringify(rate)}: use e.g. "10/s", "100/m", "1000/h"`);
  const count = Number(match[1]);
  const per = UNITS[match[2] ?? 's'] as number;
  return count === 0 ? null : count / per;
}

export class TokenBucket {
  readonly fillRate: number;
  readonly capacity: number;
  readonly #now: () => number;
  #tokens: number;
  #last: number;

  /** fillRate: tokens per second; now: milliseconds (performance.now by default) */
  constructor(fillRate: number, capacity = 1, now: () => number = () => performance.now()) {
    if (!(fillRate > 0)) throw new RangeError('fillRate must be > 0');
    this.fillRate = fillRate;
    this.capacity = capacity;
    this.#now = now;
    this.#tokens = capacity;
    this.#last = now();
  }

  #refill(): void {
    const now = this.#now();
    this.#tokens = Math.min(this.capacity, this.#tokens + ((now - this.#last) / 1000) * this.fillRate);
    this.#last = now;
  }

  /** Take `n` tokens if there are that many. */
  canConsume(n = 1): boolean {
    this.#refill();
    if (this.#tokens + 1e-9 < n) return false;
    this.#tokens = Math.max(0, this.#tokens - n);
    return true;
  }

  /** Milliseconds until `n` tokens are there (0 = now). */
  expectedTime(n = 1): number {
    this.#refill();
    return this.#tokens >= n ? 0 : ((n - this.#tokens) / this.fillRate) * 1000;
  }
}
