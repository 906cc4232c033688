/**
 * Celery's Redis result backend (§5): `celery-task-meta-<id>` written with an expiry and PUBLISHed on
 * the channel of the same name, so Python clients blocked in `.get()` wake up; read with GET; waited for
 * through one shared SUBSCRIBE connection per process.
 */
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../config.ts';
import { parseMeta, serializeMeta } from '../protocol/result-meta.ts';
import type { ResultMeta } from '../protocol/types.ts';
import { GatewayError } from '../errors.ts';
import { connectRedis, unavailable, whenReady, withRedis, type ConnectionHooks } from '../redis/connection.ts';
import { TickBatcher } from '../redis/batch.ts';
import type { ChordPart, ResultBackend } from './backend.ts';
import { pyJsonDumps } from '../canvas/python.ts';
import type { Json } from '../protocol/types.ts';

export const taskMetaKey = (taskId: string): string => `celery-task-meta-${taskId}`;
/** Celery's chord keys: `celery-taskset-meta-<gid>` + `.j` (ZSET of parts), `.t` (added count), `.s` (size). */
export const tasksetKey = (groupId: string, suffix = ''): string => `celery-taskset-meta-${groupId}${suffix}`;
export const workflowKey = (id: string): string => `celery-gateway-workflow-${id}`;
/**
 * Submitted ids are fields of one hash per hour (`celery-gateway-submitted:<hours since epoch>`), so the
 * ids published in one event-loop turn are recorded with one HSET instead of one SET each (the second
 * Redis write per submission was 15% of the gateway's CPU per request).
 */
export const submittedBucketKey = (epochMs: number): string => `celery-gateway-submitted:${Math.floor(epochMs / HOUR_MS)}`;
const HOUR_MS = 3_600_000;

/**
 * SET + PUBLISH unless a SUCCESS is stored (Celery checks with a GET first and races; this does not).
 * KEYS: meta key; ARGV: value, ttl seconds. Returns 1 when stored.
 */
const STORE = `
local cur = redis.call('GET', KEYS[1])
if cur then
  local ok, meta = pcall(cjson.decode, cur)
  if ok and type(meta) == 'table' and meta.status == 'SUCCESS' then return 0 end
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
redis.call('PUBLISH', KEYS[1], ARGV[1])
return 1
`;

/**
 * STORE for several metas at once (the worker's stores of one event-loop turn). KEYS: meta keys;
 * ARGV[1]: ttl seconds, ARGV[i + 1]: the value for KEYS[i]. Returns 1 / 0 per key. Metas written by
 * Celery and by us start with `{"status": "`: the status is read off the prefix, decoded otherwise.
 */
const STORE_MANY = `
local out = {}
for i = 1, #KEYS do
  local cur = redis.call('GET', KEYS[i])
  local done = false
  if cur then
    if string.sub(cur, 1, 12) == '{"status": "' then
      done = string.sub(cur, 13, 20) == 'SUCCESS"'
    else
      local ok, meta = pcall(cjson.decode, cur)
      done = ok and type(meta) == 'table' and meta.status == 'SUCCESS'
    end
  end
  if done then
    out[i] = 0
  else
    redis.call('SET', KEYS[i], ARGV[i + 1], 'EX', ARGV[1])
    redis.call('PUBLISH', KEYS[i], ARGV[i + 1])
    out[i] = 1
  end
end
return out
`;

export interface RedisBackendOptions {
  url: string;
  /** Celery's result_expires, seconds */
  resultTtlSec?: number;
  /** how long the gateway remembers an id it published, seconds */
  submittedTtlSec?: number;
  logger?: Logger;
  /** called each time one of the backend's connections is re-established (for metrics) */
  onReconnect?: () => void;
}

interface ScriptedRedis extends Redis {
  gwStore(key: string, value: string, ttl: number): Promise<number>;
  gwStoreMany(numKeys: number, ...keysThenArgs: (string | number)[]): Promise<number[]>;
}

const CODE = 'GW_ERR_BACKEND_UNAVAILABLE';

export class RedisBackend implements ResultBackend {
  readonly kind = 'redis';
  readonly displayUrl: string;
  readonly #url: string;
  readonly #log: Logger | undefined;
  readonly #client: ScriptedRedis;
  #subscriber: Redis | undefined;
  readonly #listeners = new Map<string, Set<(meta: ResultMeta) => void>>();
  /** channels with a SUBSCRIBE in flight or done */
  readonly #subscribed = new Map<string, Promise<unknown>>();
  readonly #resultTtlSec: number;
  readonly #submittedTtlSec: number;
  #closing: Promise<void> | undefined;
  readonly #hooks: ConnectionHooks;

  constructor(options: RedisBackendOptions) {
    this.#hooks = { onReconnect: options.onReconnect };
    this.#url = options.url;
    this.displayUrl = redactUrl(options.url);
    this.#log = options.logger;
    this.#resultTtlSec = options.resultTtlSec ?? 86400;
    this.#submittedTtlSec = options.submittedTtlSec ?? 86400;
    const client = connectRedis(options.url, options.logger, {}, this.#hooks);
    client.defineCommand('gwStore', { numberOfKeys: 1, lua: STORE });
    client.defineCommand('gwStoreMany', { lua: STORE_MANY });
    this.#client = client as ScriptedRedis;
  }

  /** the command connection (tests use it) */
  get client(): Redis {
    return this.#client;
  }

  #run<T>(fn: () => Promise<T>): Promise<T> {
    return withRedis(this.#client, CODE, fn);
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    const text = await this.#run(() => this.#client.get(taskMetaKey(taskId)));
    return text === null ? null : parseMeta(text);
  }

  /** Stores of the same event-loop turn go to Redis as one STORE_MANY call. */
  async store(meta: ResultMeta): Promise<void> {
    const value = serializeMeta(meta); // throws TypeError for what JSON cannot hold (BigInt, cycles)
    await this.#stores.add([taskMetaKey(meta.task_id), value]);
  }

  readonly #stores = new TickBatcher<[key: string, value: string], number>((items) => this.#run(() => {
    if (items.length === 1) return this.#client.gwStore(items[0]![0], items[0]![1], this.#resultTtlSec).then((r) => [r]);
    return this.#client.gwStoreMany(items.length, ...items.map(([key]) => key), this.#resultTtlSec, ...items.map(([, value]) => value));
  }));

  #subscriberConnection(): Redis {
    if (!this.#subscriber) {
      const sub = connectRedis(this.#url, this.#log, { enableOfflineQueue: true, maxRetriesPerRequest: 1 }, this.#hooks);
      sub.on('message', (channel: string, text: string) => this.#dispatch(channel, text));
      this.#subscriber = sub;
    }
    return this.#subscriber;
  }

  #dispatch(channel: string, text: string): void {
    const listeners = this.#listeners.get(channel);
    if (!listeners) return;
    let meta: ResultMeta;
    try {
      meta = parseMeta(text);
    } catch (err) {
      this.#log?.warn({ channel, err: (err as Error).message }, 'ignoring an unreadable result notification');
      return;
    }
    for (const listener of listeners) listener(meta);
  }

  async listen(taskId: string, listener: (meta: ResultMeta) => void): Promise<() => void> {
    const channel = taskMetaKey(taskId);
    let set = this.#listeners.get(channel);
    if (!set) {
      set = new Set();
      this.#listeners.set(channel, set);
    }
    set.add(listener);
    const unlisten = (): void => {
      set.delete(listener);
      if (set.size === 0 && this.#listeners.get(channel) === set) {
        this.#listeners.delete(channel);
        this.#subscribed.delete(channel);
        this.#subscriber?.unsubscribe(channel).catch(() => {});
      }
    };
    try {
      const sub = this.#subscriberConnection();
      await whenReady(sub, CODE);
      let pending = this.#subscribed.get(channel);
      if (!pending) {
        pending = sub.subscribe(channel);
        this.#subscribed.set(channel, pending);
      }
      await pending;
    } catch (err) {
      unlisten();
      throw unavailable(err, CODE);
    }
    return unlisten;
  }

  /** Resolves once the ids are recorded: ids from the same event-loop turn share one HSET + EXPIRE. */
  async rememberSubmitted(taskIds: readonly string[]): Promise<void> {
    await Promise.all(taskIds.map((id) => this.#submitted.add(id)));
  }

  readonly #submitted = new TickBatcher<string, void>(async (ids) => {
    const key = submittedBucketKey(Date.now());
    const fields = ids.flatMap((id) => [id, '1']);
    const now = Date.now();
    if (this.#expirySet.key === key && now - this.#expirySet.at < 60_000) {
      await this.#run(() => this.#client.hset(key, ...fields));
    } else {
      // at most once a minute per bucket and process: the bucket outlives its last field by the TTL (a
      // record lasts between TTL and TTL + 1 h); a bucket deleted meanwhile gets its expiry back within a minute
      await this.#run(() => this.#client.multi().hset(key, ...fields).expire(key, this.#submittedTtlSec + HOUR_MS / 1000).exec());
      this.#expirySet = { key, at: now };
    }
    return [];
  }, 5000);

  /** the hourly bucket this process last gave its expiry, and when */
  #expirySet = { key: '', at: 0 };

  /** Looks in the last two hourly buckets first (the usual case), then in the older ones within the TTL. */
  async wasSubmitted(taskId: string): Promise<boolean> {
    const now = Date.now();
    const hours = Math.ceil(this.#submittedTtlSec / 3600) + 1;
    const buckets = Array.from({ length: hours + 1 }, (_, i) => submittedBucketKey(now - i * HOUR_MS));
    const found = async (keys: string[]): Promise<boolean> => {
      if (keys.length === 0) return false;
      const pipeline = this.#client.pipeline();
      for (const key of keys) pipeline.hexists(key, taskId);
      const replies = (await pipeline.exec()) ?? [];
      return replies.some(([err, value]) => !err && value === 1);
    };
    return this.#run(async () => (await found(buckets.slice(0, 2))) || found(buckets.slice(2)));
  }

  // -- canvas: chords (Celery's RedisBackend.set_chord_size / on_chord_part_return) and workflow trees

  async setChordSize(groupId: string, size: number): Promise<void> {
    const key = tasksetKey(groupId, '.s');
    await this.#run(() => this.#client.multi().setex(key, this.#resultTtlSec, String(size)).publish(key, String(size)).exec());
  }

  async chordPartReturn(groupId: string, groupIndex: number | null, part: ChordPart): Promise<ChordPart[] | null> {
    const [j, t, s] = ['.j', '.t', '.s'].map((suffix) => tasksetKey(groupId, suffix)) as [string, string, string];
    const member = pyJsonDumps([1, part.taskId, part.state, part.result]);
    const ttl = this.#resultTtlSec;
    const replies = await this.#run(() => this.#client.multi()
      .zadd(j, groupIndex ?? '+inf', member).zcount(j, '-inf', '+inf').get(t).get(s)
      .expire(j, ttl).expire(t, ttl).expire(s, ttl)
      .exec());
    const failed = replies?.find(([err]) => err);
    if (!replies || failed) throw new GatewayError(CODE, `chord bookkeeping failed: ${failed?.[0]?.message ?? 'transaction aborted'}`);
    const count = Number(replies[1]?.[1]);
    const added = Number(replies[2]?.[1] ?? 0);
    const size = replies[3]?.[1];
    if (size === null || size === undefined || count !== Number(size) + added) return null;
    const members = await this.#run(() => this.#client.zrange(j, 0, -1));
    return members.map((text) => {
      const [, taskId, state, result] = JSON.parse(text) as [number, string, string, Json];
      return { taskId, state, result };
    });
  }

  async clearChord(groupId: string): Promise<void> {
    await this.#run(() => this.#client.multi().del(tasksetKey(groupId, '.j')).del(tasksetKey(groupId, '.t')).del(tasksetKey(groupId, '.s')).exec());
  }

  async saveWorkflow(id: string, tree: Json, ttlSec?: number): Promise<void> {
    await this.#run(() => this.#client.set(workflowKey(id), JSON.stringify(tree), 'EX', ttlSec ?? this.#resultTtlSec));
  }

  async getWorkflow(id: string): Promise<Json | null> {
    const text = await this.#run(() => this.#client.get(workflowKey(id)));
    return text === null ? null : (JSON.parse(text) as Json);
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#listeners.clear();
      // QUIT only a connected client: on one still (re)connecting it would wait in the offline queue
      const end = async (client: Redis | undefined): Promise<void> => {
        if (client?.status === 'ready') await client.quit().catch(() => client.disconnect());
        else client?.disconnect();
      };
      await Promise.all([end(this.#client), end(this.#subscriber)]);
    })();
    return this.#closing;
  }
}
