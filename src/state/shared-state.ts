/**
 * Small key/value state several gateway instances must share (idempotency records). Redis when one is
 * configured, else in-process memory (fine for one instance).
 */
import type { Redis } from 'ioredis';
import { TickBatcher } from '../redis/batch.ts';
import { withRedis } from '../redis/connection.ts';

export interface SharedState {
  /** set only if absent; true when set */
  setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean>;
  get(key: string): Promise<string | null>;
  set(key: string, value: string, ttlSec: number): Promise<void>;
  delete(key: string): Promise<void>;
  /**
   * A time index: add `member` with `score` (epoch ms) to `index`, dropping members older than `ttlSec`
   * (by score) and letting the whole index expire `ttlSec` after its last add.
   */
  indexAdd(index: string, member: string, score: number, ttlSec: number): Promise<void>;
  /** members of `index` with a score above `minScore`, with their scores, oldest first */
  indexSince(index: string, minScore: number): Promise<Array<[member: string, score: number]>>;
  close(): Promise<void>;
}

export class MemoryState implements SharedState {
  readonly #entries = new Map<string, { value: string; expires: number }>();
  readonly #now: () => number;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  #live(key: string): string | null {
    const entry = this.#entries.get(key);
    if (!entry) return null;
    if (entry.expires <= this.#now()) {
      this.#entries.delete(key);
      return null;
    }
    return entry.value;
  }

  async setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean> {
    if (this.#live(key) !== null) return false;
    this.#entries.set(key, { value, expires: this.#now() + ttlSec * 1000 });
    if (this.#entries.size % 1024 === 0) for (const k of [...this.#entries.keys()]) this.#live(k);
    return true;
  }

  async get(key: string): Promise<string | null> {
    return this.#live(key);
  }

  async set(key: string, value: string, ttlSec: number): Promise<void> {
    this.#entries.set(key, { value, expires: this.#now() + ttlSec * 1000 });
  }

  async delete(key: string): Promise<void> {
    this.#entries.delete(key);
  }

  readonly #indexes = new Map<string, Map<string, number>>();

  async indexAdd(index: string, member: string, score: number, ttlSec: number): Promise<void> {
    let members = this.#indexes.get(index);
    if (!members) this.#indexes.set(index, members = new Map());
    members.set(member, score);
    for (const [m, s] of members) if (s < score - ttlSec * 1000) members.delete(m);
  }

  async indexSince(index: string, minScore: number): Promise<Array<[string, number]>> {
    return [...(this.#indexes.get(index) ?? [])].filter(([, s]) => s > minScore).sort((a, b) => a[1] - b[1]);
  }

  async close(): Promise<void> {
    this.#entries.clear();
    this.#indexes.clear();
  }
}

const CODE = 'GW_ERR_BACKEND_UNAVAILABLE';

export class RedisState implements SharedState {
  readonly #redis: Redis;

  /** `redis` is owned by this object from now on (closed by close()) */
  constructor(redis: Redis) {
    this.#redis = redis;
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return withRedis(this.#redis, CODE, fn);
  }

  async setIfAbsent(key: string, value: string, ttlSec: number): Promise<boolean> {
    return (await this.#run(() => this.#redis.set(key, value, 'EX', ttlSec, 'NX'))) === 'OK';
  }

  /** The GETs of one event-loop turn are one MGET (the worker checks the revoked set for every task). */
  get(key: string): Promise<string | null> {
    return this.#gets.add(key);
  }

  readonly #gets = new TickBatcher<string, string | null>((keys) => this.#run(() => this.#redis.mget(...keys)));

  async set(key: string, value: string, ttlSec: number): Promise<void> {
    await this.#run(() => this.#redis.set(key, value, 'EX', ttlSec));
  }

  async delete(key: string): Promise<void> {
    await this.#run(() => this.#redis.del(key));
  }

  /** a sorted set: ZADD, ZREMRANGEBYSCORE of what is past the TTL, EXPIRE, in one MULTI */
  async indexAdd(index: string, member: string, score: number, ttlSec: number): Promise<void> {
    await this.#run(() => this.#redis.multi()
      .zadd(index, score, member)
      .zremrangebyscore(index, '-inf', `(${score - ttlSec * 1000}`)
      .expire(index, ttlSec)
      .exec());
  }

  async indexSince(index: string, minScore: number): Promise<Array<[string, number]>> {
    const flat = await this.#run(() => this.#redis.zrangebyscore(index, `(${minScore}`, '+inf', 'WITHSCORES'));
    const out: Array<[string, number]> = [];
    for (let i = 0; i + 1 < flat.length; i += 2) out.push([flat[i] as string, Number(flat[i + 1])]);
    return out;
  }

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
