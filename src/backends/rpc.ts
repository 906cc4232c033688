/**
 * Celery's rpc:// result backend (§8): results travel as messages to the producer's own reply
 * queue. The queue is named by the producer's oid, the `reply_to` every task it publishes carries;
 * workers publish each state change to exchange "" with routing key = reply_to, correlation_id =
 * task id and body {task_id, status, result, traceback, children} (no date_done).
 *
 * This backend declares `<replyTo>` exactly as a Celery client does (non-durable, auto-delete,
 * x-expires = result ttl in ms) as soon as it is constructed (so results of the first tasks are not
 * dropped as unroutable), consumes it with no-ack and keeps the latest meta per task in memory
 * (bounded: oldest evicted beyond maxEntries, entries older than the result ttl ignored).
 *
 * LIMITATIONS (inherent to rpc://, plus one of ours):
 * - Results reach only this process; they are lost while it is disconnected (the auto-delete queue
 *   disappears with its consumer) and on restart. No chords.
 * - store(meta) only knows the meta, not the reply_to of the message that carried the task, so it
 *   publishes to THIS backend's own replyTo. That is right when the worker runs in the same process
 *   as the gateway that published the task (or shares its replyTo). A standalone worker must publish
 *   to each task's `properties.reply_to` itself: use publishRpcResult() below.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import { ChannelSlot, ManagedConnection, bounded, errorText, publishConfirmed, toTable } from '../brokers/amqp-support.ts';
import { GatewayError } from '../errors.ts';
import { parseMeta } from '../protocol/result-meta.ts';
import { States, type ResultMeta } from '../protocol/types.ts';
import type { ResultBackend, StoreOptions } from './backend.ts';

export interface RpcBackendOptions {
  /** the AMQP broker URL */
  url: string;
  /** the producer's oid: the reply_to of every task it publishes, and the name of the reply queue */
  replyTo: string;
  /** Celery's result_expires: x-expires of the reply queue and lifetime of cached results */
  resultTtlSec: number;
  logger?: Logger;
  /** default 100 000 results (and as many submitted ids) */
  maxEntries?: number;
  /** Celery's result_persistent: delivery_mode 2 for stored results (default 1) */
  persistent?: boolean;
  /** called each time the connection is re-established after a loss (for metrics) */
  onReconnect?: () => void;
}

function unavailable(message: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_ERR_BACKEND_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
}

/** A result message body exactly as Celery 5.2.6's rpc backend writes it (key order included). */
export function rpcResultBody(meta: ResultMeta): string {
  return JSON.stringify({ task_id: meta.task_id, status: meta.status, result: meta.result, traceback: meta.traceback ?? null, children: meta.children ?? [] });
}

/**
 * Publish a state change the way a Celery worker does for rpc:// (to exchange "", routing key =
 * the task's reply_to). Resolves once the broker confirmed it.
 */
export function publishRpcResult(channel: ConfirmChannel, replyTo: string, meta: ResultMeta, options: { persistent?: boolean } = {}): Promise<void> {
  return new Promise((resolve, reject) => {
    const fail = (err: unknown): void => reject(unavailable(`cannot publish the result of ${meta.task_id} to ${replyTo}: ${errorText(err)}`, err));
    try {
      publishConfirmed(channel, '', replyTo, Buffer.from(rpcResultBody(meta), 'utf8'), {
        contentType: 'application/json',
        contentEncoding: 'utf-8',
        deliveryMode: options.persistent ? 2 : 1,
        priority: 0,
        correlationId: meta.task_id,
        headers: {},
      }, (err: unknown) => (err ? fail(err) : resolve()));
    } catch (err) {
      fail(err);
    }
  });
}

interface Entry {
  meta: ResultMeta;
  at: number;
}

export class RpcBackend implements ResultBackend {
  readonly kind = 'rpc';
  readonly displayUrl = 'rpc://';
  private readonly conn: ManagedConnection;
  private readonly publishSlot: ChannelSlot<ConfirmChannel>;
  private readonly log: Logger | undefined;
  private readonly replyTo: string;
  private readonly ttlMs: number;
  private readonly max: number;
  private readonly persistent: boolean;
  private readonly results = new Map<string, Entry>();
  private readonly submitted = new Map<string, number>();
  private readonly listeners = new Map<string, Set<(meta: ResultMeta) => void>>();
  /** bodies store() published that have not come back through the reply queue yet, per task */
  private readonly echoes = new Map<string, string[]>();
  private consumer: { model: ChannelModel; ready: Promise<void>; ch?: Channel } | null = null;
  private retry: NodeJS.Timeout | undefined;
  private closing: Promise<void> | null = null;

  constructor(options: RpcBackendOptions) {
    if (!options.replyTo) throw new GatewayError('GW_ERR_CONFIG', 'rpc:// backend needs a replyTo (the producer oid)');
    this.replyTo = options.replyTo;
    this.ttlMs = Math.max(0, options.resultTtlSec) * 1000;
    this.max = options.maxEntries ?? 100_000;
    this.persistent = options.persistent ?? false;
    this.log = options.logger;
    let opened = false;
    this.conn = new ManagedConnection({
      url: options.url,
      name: 'celery-gateway rpc backend',
      ...(options.logger ? { logger: options.logger } : {}),
      onOpen: (model) => {
        if (opened) options.onReconnect?.();
        opened = true;
        this.ensureConsumer(model).catch(() => {});
      },
    });
    this.publishSlot = new ChannelSlot((m) => m.createConfirmChannel(), this.log, 'rpc publish');
    this.ready().catch((err: unknown) => this.log?.warn({ err: errorText(err) }, 'rpc backend: reply queue not ready yet'));
  }

  /** The connection is open and the reply queue consumed. */
  private async ready(): Promise<ChannelModel> {
    if (this.closing) throw unavailable('rpc backend closed');
    let model: ChannelModel;
    try {
      model = await this.conn.get();
    } catch (err) {
      throw unavailable(`rpc backend: ${errorText(err)}`, err);
    }
    try {
      await this.ensureConsumer(model);
    } catch (err) {
      throw unavailable(`rpc backend: cannot consume reply queue ${this.replyTo}: ${errorText(err)}`, err);
    }
    return model;
  }

  private ensureConsumer(model: ChannelModel): Promise<void> {
    if (this.consumer?.model === model) return this.consumer.ready;
    const entry: { model: ChannelModel; ready: Promise<void>; ch?: Channel } = { model, ready: Promise.resolve() };
    entry.ready = (async () => {
      const ch = await model.createChannel();
      entry.ch = ch;
      ch.on('error', (err: unknown) => this.log?.warn({ err: errorText(err) }, 'rpc backend: reply channel error'));
      ch.on('close', () => {
        if (this.consumer !== entry) return;
        this.consumer = null;
        if (!this.closing && this.conn.current === model) this.later();
      });
      const args = this.ttlMs > 0 ? { 'x-expires': this.ttlMs } : {};
      await ch.assertQueue(this.replyTo, { durable: false, exclusive: false, autoDelete: true, arguments: toTable(args) });
      await ch.consume(this.replyTo, (msg) => this.onMessage(msg, () => ch.close().catch(() => {})), { noAck: true });
    })();
    this.consumer = entry;
    entry.ready.catch((err: unknown) => {
      if (this.consumer !== entry) return;
      this.consumer = null;
      this.log?.warn({ err: errorText(err), queue: this.replyTo }, 'rpc backend: cannot consume the reply queue');
      if (!this.closing && this.conn.current === model) this.later();
    });
    return entry.ready;
  }

  private later(): void {
    if (this.retry) return;
    this.retry = setTimeout(() => {
      this.retry = undefined;
      const model = this.conn.current;
      if (model && !this.closing) this.ensureConsumer(model).catch(() => {});
    }, 1000);
  }

  private onMessage(msg: ConsumeMessage | null, restart: () => void): void {
    if (msg === null) {
      this.log?.warn({ queue: this.replyTo }, 'rpc backend: reply consumer cancelled by the broker (queue deleted?); re-declaring');
      restart();
      return;
    }
    const body = msg.content.toString('utf8');
    let meta: ResultMeta;
    try {
      meta = parseMeta(body);
    } catch (err) {
      this.log?.warn({ err: errorText(err), correlationId: msg.properties.correlationId }, 'rpc backend: ignoring a reply that is not a result meta');
      return;
    }
    const id = typeof msg.properties.correlationId === 'string' && msg.properties.correlationId !== '' ? msg.properties.correlationId : meta.task_id;
    if (!id) return;
    if (meta.task_id === '') meta.task_id = id;
    if (this.dropEcho(id, body)) return;
    this.apply(id, meta);
  }

  /** true when `body` is one of our own store()s coming back (then it is forgotten) */
  private dropEcho(id: string, body: string): boolean {
    const pending = this.echoes.get(id);
    const i = pending?.indexOf(body) ?? -1;
    if (!pending || i < 0) return false;
    pending.splice(i, 1);
    if (pending.length === 0) this.echoes.delete(id);
    return true;
  }

  private apply(id: string, meta: ResultMeta): void {
    const now = Date.now();
    if (this.live(id, now)?.meta.status === States.SUCCESS) return;
    this.results.delete(id);
    this.results.set(id, { meta, at: now });
    if (this.results.size > this.max) this.results.delete(this.results.keys().next().value!);
    for (const listener of [...(this.listeners.get(id) ?? [])]) {
      try {
        listener(structuredClone(meta));
      } catch (err) {
        this.log?.error({ err: errorText(err), taskId: id }, 'rpc backend: result listener threw');
      }
    }
  }

  private live(id: string, now: number): Entry | undefined {
    const entry = this.results.get(id);
    if (entry && this.ttlMs > 0 && now - entry.at > this.ttlMs) {
      this.results.delete(id);
      return undefined;
    }
    return entry;
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    const entry = this.live(taskId, Date.now());
    if (entry) return structuredClone(entry.meta);
    await this.ready();
    const late = this.live(taskId, Date.now());
    return late ? structuredClone(late.meta) : null;
  }

  /**
   * Publishes to the task's reply_to (a worker answering whoever sent the task), or to this backend's
   * own reply queue when none is given (see LIMITATIONS above).
   */
  async store(stored: ResultMeta, options: StoreOptions = {}): Promise<void> {
    if (options.replyTo && options.replyTo !== this.replyTo) {
      const ch = await this.publishSlot.get(await this.ready()).catch((err: unknown) => {
        throw unavailable(`rpc backend: cannot open a channel: ${errorText(err)}`, err);
      });
      await publishRpcResult(ch, options.replyTo, stored, { persistent: this.persistent });
      return;
    }
    const meta = structuredClone(stored);
    if (this.live(meta.task_id, Date.now())?.meta.status === States.SUCCESS) return;
    const model = await this.ready();
    let ch: ConfirmChannel;
    try {
      ch = await this.publishSlot.get(model);
    } catch (err) {
      throw unavailable(`rpc backend: cannot open a channel: ${errorText(err)}`, err);
    }
    // The reply may come back before the confirm: register it first so it is not applied twice.
    const body = rpcResultBody(meta);
    const pending = this.echoes.get(meta.task_id) ?? [];
    this.echoes.delete(meta.task_id);
    this.echoes.set(meta.task_id, [...pending.slice(-15), body]);
    if (this.echoes.size > this.max) this.echoes.delete(this.echoes.keys().next().value!);
    try {
      await publishRpcResult(ch, this.replyTo, meta, { persistent: this.persistent });
    } catch (err) {
      this.dropEcho(meta.task_id, body);
      throw err;
    }
    this.apply(meta.task_id, meta);
  }

  async listen(taskId: string, listener: (meta: ResultMeta) => void): Promise<() => void> {
    await this.ready();
    let set = this.listeners.get(taskId);
    if (!set) this.listeners.set(taskId, (set = new Set()));
    const own = set;
    const wrapped = (meta: ResultMeta): void => listener(meta);
    own.add(wrapped);
    return () => {
      own.delete(wrapped);
      if (own.size === 0 && this.listeners.get(taskId) === own) this.listeners.delete(taskId);
    };
  }

  async rememberSubmitted(taskIds: readonly string[]): Promise<void> {
    const until = this.ttlMs > 0 ? Date.now() + this.ttlMs : Number.POSITIVE_INFINITY;
    for (const id of taskIds) {
      this.submitted.delete(id);
      this.submitted.set(id, until);
    }
    while (this.submitted.size > this.max) this.submitted.delete(this.submitted.keys().next().value!);
  }

  async wasSubmitted(taskId: string): Promise<boolean> {
    const until = this.submitted.get(taskId);
    if (until !== undefined && until >= Date.now()) return true;
    return this.live(taskId, Date.now()) !== undefined;
  }

  async ping(): Promise<void> {
    const model = await this.ready();
    let timer: NodeJS.Timeout | undefined;
    try {
      const ch = await model.createChannel();
      ch.on('error', () => {});
      await Promise.race([
        ch.checkQueue(this.replyTo).then(() => ch.close()),
        new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error('timed out')), 5000); }),
      ]);
    } catch (err) {
      throw unavailable(`rpc backend ping failed: ${errorText(err)}`, err);
    } finally {
      clearTimeout(timer);
    }
  }

  /** idempotent */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.retry);
      this.listeners.clear();
      const consumer = this.consumer;
      this.consumer = null;
      if (consumer) await bounded(consumer.ready);
      if (consumer?.ch) await bounded(consumer.ch.close());
      await this.publishSlot.close();
      await this.conn.close();
    })();
    return this.closing;
  }
}
