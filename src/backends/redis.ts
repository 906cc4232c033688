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
import { connectRedis, unavailable, whenReady } from '../redis/connection.ts';
import type { ResultBackend } from './backend.ts';

export const taskMetaKey = (taskId: string): string => `celery-task-meta-${taskId}`;
export const submittedKey = (taskId: string): string => `celery-gateway-submitted-${taskId}`;

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

export interface RedisBackendOptions {
  url: string;
  /** Celery's result_expires, seconds */
  resultTtlSec?: number;
  /** how long the gateway remembers an id it published, seconds */
  submittedTtlSec?: number;
  logger?: Logger;
}

interface ScriptedRedis extends Redis {
  gwStore(key: string, value: string, ttl: number): Promise<number>;
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

  constructor(options: RedisBackendOptions) {
    this.#url = options.url;
    this.displayUrl = redactUrl(options.url);
    this.#log = options.logger;
    this.#resultTtlSec = options.resultTtlSec ?? 86400;
    this.#submittedTtlSec = options.submittedTtlSec ?? 86400;
    const client = connectRedis(options.url, options.logger, { enableAutoPipelining: true });
    client.defineCommand('gwStore', { numberOfKeys: 1, lua: STORE });
    this.#client = client as ScriptedRedis;
  }

  async #run<T>(fn: () => Promise<T>): Promise<T> {
    try {
      await whenReady(this.#client, CODE);
      return await fn();
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    const text = await this.#run(() => this.#client.get(taskMetaKey(taskId)));
    return text === null ? null : parseMeta(text);
  }

  async store(meta: ResultMeta): Promise<void> {
    const value = serializeMeta(meta); // throws TypeError for what JSON cannot hold (BigInt, cycles)
    await this.#run(() => this.#client.gwStore(taskMetaKey(meta.task_id), value, this.#resultTtlSec));
  }

  #subscriberConnection(): Redis {
    if (!this.#subscriber) {
      const sub = connectRedis(this.#url, this.#log, { enableOfflineQueue: true, maxRetriesPerRequest: 1 });
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

  async rememberSubmitted(taskIds: readonly string[]): Promise<void> {
    await this.#run(() => Promise.all(taskIds.map((id) => this.#client.set(submittedKey(id), '1', 'EX', this.#submittedTtlSec))));
  }

  async wasSubmitted(taskId: string): Promise<boolean> {
    return (await this.#run(() => this.#client.exists(submittedKey(taskId)))) === 1;
  }

  async ping(): Promise<void> {
    await this.#run(() => this.#client.ping());
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#listeners.clear();
      await Promise.all([
        this.#client.quit().catch(() => this.#client.disconnect()),
        this.#subscriber?.quit().catch(() => this.#subscriber?.disconnect()),
      ]);
    })();
    return this.#closing;
  }
}
