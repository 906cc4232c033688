/**
 * The schedule table when only RabbitMQ is configured (no Redis): beats elect their publisher with an
 * exclusive queue and persist run state in a one-message queue.
 *
 *   <prefix>leader  exclusive queue: RabbitMQ lets one connection declare it; it is deleted when that
 *                   connection closes (a crashed process at once, a silent peer after missed heartbeats)
 *   <prefix>state   durable queue with x-max-length 1: the latest run state (cursor, run count, last
 *                   run per entry) as one persistent JSON message; each new state drops the previous
 *
 * Entries live in the process (from the schedule file): RabbitMQ has no table to share them through,
 * so give every beat the same file; the HTTP API's changes stay in the process that made them.
 * The leader reads the state when it takes the lock and writes it (publisher confirm) on every claim
 * before the run is published, so a new leader or a restarted beat goes on from the last claimed tick.
 */
import { performance } from 'node:perf_hooks';
import type { Channel, ChannelModel, ConfirmChannel } from 'amqplib';
import type { Logger } from 'pino';
import { redactUrl } from '../config.ts';
import { ManagedConnection, bounded, errorText } from '../brokers/amqp-support.ts';
import type { ScheduleEntry } from './entry.ts';
import { MemoryScheduleStore, type LeaderLock, type ScheduleStore, type StoredSchedule } from './store.ts';

export interface AmqpScheduleStoreOptions {
  url: string;
  /** queue name prefix, default `celery-gateway-beat-` */
  prefix?: string;
  logger?: Logger;
  /**
   * AMQP heartbeat of the lock connection, seconds, unless the URL sets one: RabbitMQ drops a silent
   * leader's connection (and so its lock) after about two of these. Default: the URL's, else the server's.
   */
  heartbeatSec?: number;
}

/** `url` with `heartbeat=<sec>` added to each of its `;`-separated URLs that has none. */
export function withHeartbeat(url: string, sec: number | undefined): string {
  if (sec === undefined) return url;
  return url.split(';').map((one) => (/[?&]heartbeat=/.test(one) ? one : `${one}${one.includes('?') ? '&' : '?'}heartbeat=${sec}`)).join(';');
}

/** What the state message holds, per entry name. */
export interface PersistedRunState {
  cursor: number;
  lastRunAt: number | null;
  totalRunCount: number;
}

interface StateMessage {
  v: 1;
  savedAt: number;
  entries: Record<string, PersistedRunState>;
}

/** 405 RESOURCE_LOCKED: another connection holds the exclusive queue */
const isLocked = (err: unknown): boolean => (err as { code?: unknown } | null)?.code === 405;

export class AmqpScheduleStore implements ScheduleStore {
  readonly kind = 'amqp';
  readonly displayUrl: string;
  readonly #table = new MemoryScheduleStore();
  readonly #conn: ManagedConnection;
  readonly #log: Logger | undefined;
  readonly lockQueue: string;
  readonly stateQueue: string;
  /** the confirm channel state is written on, with the connection it belongs to */
  #stateChannel: { model: ChannelModel; ch: Promise<ConfirmChannel> } | null = null;
  /** writes are serialised: a later state never lands before an earlier one */
  #writing: Promise<void> = Promise.resolve();
  #closing: Promise<void> | undefined;

  constructor(options: AmqpScheduleStoreOptions) {
    this.displayUrl = redactUrl(options.url);
    this.#log = options.logger;
    const prefix = options.prefix ?? 'celery-gateway-beat-';
    this.lockQueue = `${prefix}leader`;
    this.stateQueue = `${prefix}state`;
    this.#conn = new ManagedConnection({ url: withHeartbeat(options.url, options.heartbeatSec), name: 'celery-gateway beat', ...(options.logger ? { logger: options.logger } : {}) });
  }

  list(): Promise<StoredSchedule[]> { return this.#table.list(); }
  get(name: string): Promise<StoredSchedule | null> { return this.#table.get(name); }
  put(entry: ScheduleEntry, now: number): Promise<boolean> { return this.#table.put(entry, now); }
  delete(name: string): Promise<boolean> { return this.#table.delete(name); }

  /** Moves the cursor, then persists the state; if RabbitMQ does not confirm it, the move is undone. */
  async claim(name: string, expected: number, next: number): Promise<boolean> {
    if (!(await this.#table.claim(name, expected, next))) return false;
    try {
      await this.#save();
    } catch (err) {
      await this.#table.claim(name, next, expected);
      throw err;
    }
    return true;
  }

  async recordRun(name: string, at: number): Promise<void> {
    await this.#table.recordRun(name, at);
    await this.#save();
  }

  leaderLock(options: { ttlMs: number; id: string }): LeaderLock {
    return new AmqpLeaderLock(this, options.ttlMs, options.id);
  }

  /** the open connection (rejects with GW_ERR_BROKER_UNAVAILABLE while RabbitMQ is down) */
  connection(): Promise<ChannelModel> {
    return this.#conn.get();
  }

  get current(): ChannelModel | null {
    return this.#conn.current;
  }

  async #channel(): Promise<ConfirmChannel> {
    const model = await this.#conn.get();
    if (this.#stateChannel?.model !== model) {
      const entry = {
        model,
        ch: model.createConfirmChannel().then(async (ch) => {
          ch.on('error', (err: unknown) => this.#log?.warn({ err: errorText(err) }, 'AMQP beat state channel error'));
          ch.on('close', () => { if (this.#stateChannel === entry) this.#stateChannel = null; });
          await ch.assertQueue(this.stateQueue, { durable: true, arguments: { 'x-max-length': 1 } });
          return ch;
        }),
      };
      entry.ch.catch(() => { if (this.#stateChannel === entry) this.#stateChannel = null; });
      this.#stateChannel = entry;
    }
    return this.#stateChannel.ch;
  }

  #save(): Promise<void> {
    const write = this.#writing.catch(() => {}).then(async () => {
      const entries: Record<string, PersistedRunState> = {};
      for (const s of await this.#table.list()) entries[s.entry.name] = { cursor: s.cursor, lastRunAt: s.lastRunAt, totalRunCount: s.totalRunCount };
      const state: StateMessage = { v: 1, savedAt: Date.now(), entries };
      const ch = await this.#channel();
      await new Promise<void>((resolve, reject) => {
        ch.sendToQueue(this.stateQueue, Buffer.from(JSON.stringify(state)), { persistent: true, contentType: 'application/json' }, (err) => (err ? reject(err) : resolve()));
      });
    });
    this.#writing = write;
    return write;
  }

  /** Read the persisted state (leaving it in the queue) and apply it to the entries this process has. */
  async loadState(): Promise<void> {
    const ch = await this.#channel();
    const msg = await ch.get(this.stateQueue, { noAck: false });
    if (msg === false) return;
    ch.nack(msg, false, true);
    let state: StateMessage;
    try {
      state = JSON.parse(msg.content.toString('utf8')) as StateMessage;
    } catch {
      this.#log?.warn({ queue: this.stateQueue }, 'beat: unreadable state message ignored');
      return;
    }
    for (const [name, run] of Object.entries(state.entries ?? {})) {
      if (typeof run?.cursor !== 'number') continue;
      this.#table.restore(name, run);
    }
    this.#log?.info({ queue: this.stateQueue, savedAt: new Date(state.savedAt).toISOString() }, 'beat: run state loaded');
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await this.#writing.catch(() => {});
      const entry = this.#stateChannel;
      this.#stateChannel = null;
      if (entry) await bounded(entry.ch.then((ch) => ch.close()));
      await this.#conn.close();
    })();
    return this.#closing;
  }
}

/**
 * Holding the lock = having declared the exclusive queue on the store's current connection. Each
 * acquire() re-checks it with a passive declare (only the owner may), so valid() is backed by a round
 * trip at most 0.8 TTL old, as the Redis lock's renewal is.
 */
class AmqpLeaderLock implements LeaderLock {
  readonly #store: AmqpScheduleStore;
  readonly #ttlMs: number;
  #held: { model: ChannelModel; ch: Channel } | null = null;
  #validUntil = 0;

  constructor(store: AmqpScheduleStore, ttlMs: number, readonly id: string) {
    this.#store = store;
    this.#ttlMs = Math.max(1, Math.floor(ttlMs));
  }

  async acquire(): Promise<boolean> {
    const started = performance.now();
    this.#validUntil = 0;
    const model = await this.#store.connection();
    if (this.#held && this.#held.model !== model) this.#held = null; // that connection is gone, and the queue with it
    if (this.#held) {
      try {
        await this.#held.ch.checkQueue(this.#store.lockQueue);
        this.#validUntil = started + this.#ttlMs * 0.8;
        return true;
      } catch {
        this.#held = null;
      }
    }
    const ch = await model.createChannel();
    ch.on('error', () => {}); // a refused declare closes the channel with an error: expected
    try {
      await ch.assertQueue(this.#store.lockQueue, { exclusive: true, durable: false });
    } catch (err) {
      if (isLocked(err)) return false;
      throw err;
    }
    this.#held = { model, ch };
    await this.#store.loadState();
    this.#validUntil = started + this.#ttlMs * 0.8;
    return true;
  }

  valid(): boolean {
    return this.#held !== null && this.#held.model === this.#store.current && performance.now() < this.#validUntil;
  }

  async release(): Promise<void> {
    this.#validUntil = 0;
    const held = this.#held;
    this.#held = null;
    if (!held) return;
    await bounded(held.ch.deleteQueue(this.#store.lockQueue).then(() => held.ch.close()));
  }
}
