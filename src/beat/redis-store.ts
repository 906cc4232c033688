/**
 * The schedule table in Redis, shared by every beat and gateway on the same Redis:
 *   <prefix>entries   hash  name → entry JSON
 *   <prefix>cursor    hash  name → epoch ms: every tick at or before it is dealt with
 *   <prefix>runs      hash  name → published runs
 *   <prefix>last-run  hash  name → epoch ms of the last published run
 *   <prefix>leader    string: the leader lock (value = holder id, with PX expiry)
 * The prefix defaults to `celery-gateway-beat-`. Every change that matters is one Lua script, so
 * concurrent beats and API calls cannot interleave inside it.
 */
import { performance } from 'node:perf_hooks';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../config.ts';
import { connectRedis, unavailable, whenReady } from '../redis/connection.ts';
import type { ScheduleEntry } from './entry.ts';
import type { LeaderLock, ScheduleStore, StoredSchedule } from './store.ts';

/** KEYS: entries, cursor. ARGV: name, json, now, enabled ("1"/"0"). Returns 1 when created. */
const PUT = `
local old = redis.call('HGET', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[1], ARGV[1], ARGV[2])
if (not old) or (ARGV[4] == '1' and string.sub(old, 1, 17) == '{"enabled":false,') then
  redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
end
if old then return 0 end
return 1
`;

/** KEYS: entries, cursor. ARGV: name, expected cursor, new cursor. Returns 1 when moved. */
const CLAIM = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
if redis.call('HGET', KEYS[2], ARGV[1]) ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[2], ARGV[1], ARGV[3])
return 1
`;

/** KEYS: entries, runs, last-run. ARGV: name, at. */
const RECORD = `
if redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('HINCRBY', KEYS[2], ARGV[1], 1)
redis.call('HSET', KEYS[3], ARGV[1], ARGV[2])
return 1
`;

/** KEYS: lock. ARGV: id, ttl ms. Compare-and-pexpire: renew only our own lock. */
const RENEW = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
`;

/** KEYS: lock. ARGV: id. Compare-and-delete: release only our own lock. */
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

interface ScriptedRedis extends Redis {
  beatPut(entries: string, cursor: string, name: string, json: string, now: string, enabled: string): Promise<number>;
  beatClaim(entries: string, cursor: string, name: string, expected: string, next: string): Promise<number>;
  beatRecord(entries: string, runs: string, last: string, name: string, at: string): Promise<number>;
  beatRenew(lock: string, id: string, ttl: string): Promise<number>;
  beatRelease(lock: string, id: string): Promise<number>;
}

export interface RedisScheduleStoreOptions {
  url: string;
  /** key prefix, default `celery-gateway-beat-` */
  prefix?: string;
  logger?: Logger;
}

const CODE = 'GW_ERR_BACKEND_UNAVAILABLE';
const ms = (n: number): string => String(Math.floor(n));

export class RedisScheduleStore implements ScheduleStore {
  readonly kind = 'redis';
  readonly displayUrl: string;
  readonly #client: ScriptedRedis;
  readonly #log: Logger | undefined;
  readonly #keys: { entries: string; cursor: string; runs: string; last: string; leader: string };
  #closing: Promise<void> | undefined;

  constructor(options: RedisScheduleStoreOptions) {
    this.displayUrl = redactUrl(options.url);
    this.#log = options.logger;
    const p = options.prefix ?? 'celery-gateway-beat-';
    this.#keys = { entries: `${p}entries`, cursor: `${p}cursor`, runs: `${p}runs`, last: `${p}last-run`, leader: `${p}leader` };
    const client = connectRedis(options.url, options.logger);
    client.defineCommand('beatPut', { numberOfKeys: 2, lua: PUT });
    client.defineCommand('beatClaim', { numberOfKeys: 2, lua: CLAIM });
    client.defineCommand('beatRecord', { numberOfKeys: 3, lua: RECORD });
    client.defineCommand('beatRenew', { numberOfKeys: 1, lua: RENEW });
    client.defineCommand('beatRelease', { numberOfKeys: 1, lua: RELEASE });
    this.#client = client as ScriptedRedis;
  }

  async #run<T>(fn: (client: ScriptedRedis) => Promise<T>): Promise<T> {
    try {
      await whenReady(this.#client, CODE);
      return await fn(this.#client);
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  #parse(name: string, json: string | undefined | null, cursor: string | undefined | null, runs: string | undefined | null, last: string | undefined | null): StoredSchedule | null {
    if (!json) return null;
    let entry: ScheduleEntry;
    try {
      entry = JSON.parse(json) as ScheduleEntry;
    } catch {
      this.#log?.warn({ name }, 'ignoring an unreadable schedule entry');
      return null;
    }
    return { entry, cursor: Number(cursor ?? 0), lastRunAt: last ? Number(last) : null, totalRunCount: Number(runs ?? 0) };
  }

  async list(): Promise<StoredSchedule[]> {
    const k = this.#keys;
    const replies = await this.#run((c) => c.multi().hgetall(k.entries).hgetall(k.cursor).hgetall(k.runs).hgetall(k.last).exec());
    const [entries, cursors, runs, last] = (replies ?? []).map(([err, value]) => {
      if (err) throw unavailable(err, CODE);
      return value as Record<string, string>;
    }) as [Record<string, string>, Record<string, string>, Record<string, string>, Record<string, string>];
    return Object.keys(entries).sort()
      .map((name) => this.#parse(name, entries[name], cursors[name], runs[name], last[name]))
      .filter((s): s is StoredSchedule => s !== null);
  }

  async get(name: string): Promise<StoredSchedule | null> {
    const k = this.#keys;
    const replies = await this.#run((c) => c.multi().hget(k.entries, name).hget(k.cursor, name).hget(k.runs, name).hget(k.last, name).exec());
    const [json, cursor, runs, last] = (replies ?? []).map(([err, value]) => {
      if (err) throw unavailable(err, CODE);
      return value as string | null;
    });
    return this.#parse(name, json, cursor, runs, last);
  }

  async put(entry: ScheduleEntry, now: number): Promise<boolean> {
    const json = JSON.stringify(entry);
    const k = this.#keys;
    return (await this.#run((c) => c.beatPut(k.entries, k.cursor, entry.name, json, ms(now), entry.enabled ? '1' : '0'))) === 1;
  }

  async delete(name: string): Promise<boolean> {
    const k = this.#keys;
    const replies = await this.#run((c) => c.multi().hdel(k.entries, name).hdel(k.cursor, name).hdel(k.runs, name).hdel(k.last, name).exec());
    return replies?.[0]?.[1] === 1;
  }

  async claim(name: string, expected: number, next: number): Promise<boolean> {
    const k = this.#keys;
    return (await this.#run((c) => c.beatClaim(k.entries, k.cursor, name, ms(expected), ms(next)))) === 1;
  }

  async recordRun(name: string, at: number): Promise<void> {
    const k = this.#keys;
    await this.#run((c) => c.beatRecord(k.entries, k.runs, k.last, name, ms(at)));
  }

  leaderLock(options: { ttlMs: number; id: string }): LeaderLock {
    return new RedisLeaderLock((fn) => this.#run(fn), this.#keys.leader, options.ttlMs, options.id);
  }

  close(): Promise<void> {
    this.#closing ??= this.#client.quit().then(() => {}, () => this.#client.disconnect());
    return this.#closing;
  }
}

/**
 * SET NX PX to take the lock; renewal by compare-and-pexpire, release by compare-and-delete (Lua), so
 * a holder never extends or removes a lock that expired and was taken by another beat.
 */
class RedisLeaderLock implements LeaderLock {
  readonly #run: <T>(fn: (client: ScriptedRedis) => Promise<T>) => Promise<T>;
  readonly #key: string;
  readonly #ttlMs: number;
  /** performance.now() until which the lock is surely ours (a margin under the TTL for clock drift) */
  #validUntil = 0;

  constructor(run: <T>(fn: (client: ScriptedRedis) => Promise<T>) => Promise<T>, key: string, ttlMs: number, readonly id: string) {
    this.#run = run;
    this.#key = key;
    this.#ttlMs = Math.max(1, Math.floor(ttlMs));
    this.id = id;
  }

  async acquire(): Promise<boolean> {
    const started = performance.now();
    const ttl = String(this.#ttlMs);
    try {
      const ok = await this.#run(async (c) => {
        if ((await c.beatRenew(this.#key, this.id, ttl)) === 1) return true;
        return (await c.set(this.#key, this.id, 'PX', this.#ttlMs, 'NX')) === 'OK';
      });
      this.#validUntil = ok ? started + this.#ttlMs * 0.8 : 0;
      return ok;
    } catch (err) {
      this.#validUntil = 0;
      throw err;
    }
  }

  valid(): boolean {
    return performance.now() < this.#validUntil;
  }

  async release(): Promise<void> {
    this.#validUntil = 0;
    await this.#run((c) => c.beatRelease(this.#key, this.id));
  }
}
