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

  async close(): Promise<void> {
    this.#entries.clear();
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

  async close(): Promise<void> {
    await this.#redis.quit().catch(() => this.#redis.disconnect());
  }
}
