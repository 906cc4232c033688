/**
 * RabbitMQ (AMQP 0-9-1) broker adapter, wire-compatible with Celery 5.2.6 / kombu 5.2.4 (§7).
 *
 * Declarations are Celery's own, so Python and Node share queues without PRECONDITION_FAILED:
 * exchange `<q>` direct durable, queue `<q>` durable (arguments: `x-max-priority` when maxPriority is
 * set, plus queueArguments), binding `<q>` → `<q>` with key `<q>`. They are made once per queue per
 * connection (the cache is dropped on reconnect, as kombu does), on a dedicated channel so a
 * mismatch (which closes the channel) never hits publishes or consumers.
 *
 * Publishing: one confirm channel; publish() resolves only on the broker's basic.ack. A nack, a
 * channel/connection close, a blocked connection or a connection that is down reject with
 * GW_ERR_BROKER_UNAVAILABLE at once (nothing is queued); see ManagedConnection for reconnects.
 * Default route: exchange "" with routing key = queue (like Celery). An explicit route.exchange is
 * published to with route.routingKey (default: the queue); if it does not exist it is declared
 * direct durable WITHOUT bindings (we cannot guess them): declare exotic exchanges beforehand.
 * Caveat shared with kombu: a queue deleted behind our back after we declared it makes publishes to
 * it vanish silently (confirmed but unroutable) until the next reconnect.
 *
 * Consuming: one channel per subscription, basic.qos(prefetch, global=true) like Celery's worker,
 * manual ack. After a connection loss every subscription is restarted on the new connection;
 * deliveries of the dead channel were requeued by the broker, so settling them is a logged no-op.
 */
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage } from 'amqplib';
import type { Logger } from 'pino';
import { redactUrl } from '../config.ts';
import type { JsonObject, RawMessage } from '../protocol/types.ts';
import type { Broker, ConsumeOptions, Delivery, Route, Subscription } from './broker.ts';
import { ChannelSlot, ManagedConnection, bounded, confirmedPublish, errorText, isNotFound, toRawMessage, toTable, unavailable } from './amqp-support.ts';

export interface AmqpBrokerOptions {
  /** amqp:// or amqps:// (kombu style: `amqp://guest:guest@host:5672//` = vhost "/") */
  url: string;
  logger?: Logger;
  /** extra arguments for every task queue we declare (must match what Python declares) */
  queueArguments?: Record<string, unknown>;
  /** Celery's task_queue_max_priority: declares `x-max-priority` (priorities: higher first) */
  maxPriority?: number;
  /** default: the URL's connect_timeout, else 5000 */
  connectTimeoutMs?: number;
  /**
   * basic.qos global flag of consumer channels (default true, as Celery's worker). Quorum queues do not
   * support global QoS: with `x-queue-type: quorum` pass false (the prefetch then applies per queue).
   */
  globalQos?: boolean;
  /** called each time the connection is re-established after a loss (for metrics) */
  onReconnect?: () => void;
}

const MAX_PREFETCH = 65535;

export class AmqpBroker implements Broker {
  readonly kind = 'amqp';
  readonly displayUrl: string;
  readonly conn: ManagedConnection;
  private readonly log: Logger | undefined;
  private readonly queueArgs: JsonObject;
  private readonly publishSlot: ChannelSlot<ConfirmChannel>;
  private readonly declareSlot: ChannelSlot<Channel>;
  private declared = new Map<string, Promise<void>>();
  private readonly subs = new Set<AmqpSubscription>();
  /** pidbox listeners, set up again after every reconnect */
  private readonly broadcastListeners = new Set<(model: ChannelModel) => Promise<void>>();
  private closing: Promise<void> | null = null;
  /** @internal basic.qos global flag for consumers */
  readonly globalQos: boolean;

  constructor(options: AmqpBrokerOptions) {
    this.globalQos = options.globalQos ?? true;
    this.displayUrl = redactUrl(options.url);
    this.log = options.logger;
    const args: Record<string, unknown> = {};
    if (options.maxPriority !== undefined) args['x-max-priority'] = options.maxPriority;
    Object.assign(args, options.queueArguments ?? {});
    this.queueArgs = args as JsonObject;
    let opened = false;
    this.conn = new ManagedConnection({
      url: options.url,
      name: 'celery-gateway broker',
      ...(options.logger ? { logger: options.logger } : {}),
      ...(options.connectTimeoutMs === undefined ? {} : { connectTimeoutMs: options.connectTimeoutMs }),
      onOpen: (model) => {
        if (opened) options.onReconnect?.();
        opened = true;
        for (const sub of this.subs) void sub.ensureRunning();
        for (const relisten of this.broadcastListeners) void relisten(model).catch(() => {});
      },
      onLost: () => {
        this.declared = new Map();
      },
    });
    this.publishSlot = new ChannelSlot((m) => m.createConfirmChannel(), this.log, 'publish');
    this.declareSlot = new ChannelSlot((m) => m.createChannel(), this.log, 'declare');
  }

  /** Celery's declarations for a task queue (§7.1), once per connection. */
  declareQueue(model: ChannelModel, queue: string): Promise<void> {
    let done = this.declared.get(queue);
    if (!done) {
      done = (async () => {
        const ch = await this.declareSlot.get(model);
        await ch.assertExchange(queue, 'direct', { durable: true, autoDelete: false, internal: false });
        await ch.assertQueue(queue, { durable: true, exclusive: false, autoDelete: false, arguments: toTable(this.queueArgs) });
        await ch.bindQueue(queue, queue, queue);
      })();
      const entry = done;
      this.declared.set(queue, entry);
      entry.catch(() => {
        if (this.declared.get(queue) === entry) this.declared.delete(queue);
      });
    }
    return done;
  }

  /** Forget a declaration (e.g. after the server cancelled a consumer because the queue vanished). */
  forgetQueue(queue: string): void {
    this.declared.delete(queue);
  }

  private declareExchange(model: ChannelModel, exchange: string): Promise<void> {
    const key = `\u0000exchange:${exchange}`;
    let done = this.declared.get(key);
    if (!done) {
      done = (async () => {
        // passive check on a throwaway channel: a 404 closes the channel it happens on
        const probe = await model.createChannel();
        probe.on('error', () => {});
        try {
          await probe.checkExchange(exchange);
          await probe.close().catch(() => {});
        } catch (err) {
          if (!isNotFound(err)) throw err;
          const ch = await this.declareSlot.get(model);
          await ch.assertExchange(exchange, 'direct', { durable: true, autoDelete: false, internal: false });
        }
      })();
      const entry = done;
      this.declared.set(key, entry);
      entry.catch(() => {
        if (this.declared.get(key) === entry) this.declared.delete(key);
      });
    }
    return done;
  }

  async publish(message: RawMessage, route: Route): Promise<void> {
    if (this.closing) throw unavailable('broker closed');
    const model = await this.conn.get();
    if (this.conn.blocked) throw unavailable(`the AMQP broker blocks publishing: ${this.conn.blocked}`);
    const exchange = route.exchange ?? '';
    const routingKey = exchange === '' ? route.queue : route.routingKey ?? route.queue;
    let ch: ConfirmChannel;
    try {
      await this.declareQueue(model, route.queue);
      if (exchange !== '' && exchange !== route.queue) await this.declareExchange(model, exchange);
      ch = await this.publishSlot.get(model);
    } catch (err) {
      throw unavailable(`cannot declare/open AMQP route for queue ${route.queue}: ${errorText(err)}`, err);
    }
    await confirmedPublish(ch, exchange, routingKey, message);
  }

  /** Celery declares its broadcast exchanges (celery.pidbox) fanout and non-durable. */
  async broadcast(message: RawMessage, exchange: string): Promise<void> {
    if (this.closing) throw unavailable('broker closed');
    const model = await this.conn.get();
    let ch: ConfirmChannel;
    try {
      ch = await this.publishSlot.get(model);
      await ch.assertExchange(exchange, 'fanout', { durable: false, autoDelete: false });
    } catch (err) {
      throw unavailable(`cannot declare the fanout exchange ${exchange}: ${errorText(err)}`, err);
    }
    await confirmedPublish(ch, exchange, '', message);
  }

  /**
   * Celery's event exchange is a durable topic exchange, declared once per connection (on the declare
   * channel, so a mismatch never closes the publish channel); events are confirmed like every publish.
   */
  async publishEvent(message: RawMessage, exchange: string, routingKey: string): Promise<void> {
    if (this.closing) throw unavailable('broker closed');
    const model = await this.conn.get();
    let ch: ConfirmChannel;
    try {
      const key = `\u0000topic:${exchange}`;
      let declared = this.declared.get(key);
      if (!declared) {
        declared = this.declareSlot.get(model).then(async (dch) => { await dch.assertExchange(exchange, 'topic', { durable: true, autoDelete: false }); });
        const entry = declared;
        this.declared.set(key, entry);
        entry.catch(() => { if (this.declared.get(key) === entry) this.declared.delete(key); });
      }
      await declared;
      ch = await this.publishSlot.get(model);
    } catch (err) {
      throw unavailable(`cannot declare the topic exchange ${exchange}: ${errorText(err)}`, err);
    }
    await confirmedPublish(ch, exchange, routingKey, message);
  }

  /**
   * Celery's pidbox queue: non-durable, auto-delete, `x-expires` 10 s, `x-message-ttl` 300 s, bound to the
   * fanout exchange, consumed without ack; set up again after every reconnect.
   */
  async listenBroadcast(exchange: string, queue: string, onMessage: (message: RawMessage) => void): Promise<() => Promise<void>> {
    let current: Channel | undefined;
    const setup = async (model: ChannelModel): Promise<void> => {
      const ch = await model.createChannel();
      ch.on('error', (err: unknown) => this.log?.warn({ err: errorText(err), exchange }, 'broadcast channel error'));
      try {
        await ch.assertExchange(exchange, 'fanout', { durable: false, autoDelete: false });
        await ch.assertQueue(queue, { durable: false, autoDelete: true, arguments: { 'x-expires': 10_000, 'x-message-ttl': 300_000 } });
        await ch.bindQueue(queue, exchange, '');
        await ch.consume(queue, (msg) => { if (msg) onMessage(toRawMessage(msg)); }, { noAck: true });
      } catch (err) {
        await ch.close().catch(() => {});
        throw unavailable(`cannot listen on ${exchange}: ${errorText(err)}`, err);
      }
      current = ch;
    };
    await setup(await this.conn.get());
    this.broadcastListeners.add(setup);
    return async () => {
      this.broadcastListeners.delete(setup);
      await current?.close().catch(() => {});
    };
  }

  async gatherReplies(exchange: string, routingKey: string, queue: string, timeoutMs: number, send: () => Promise<void>): Promise<RawMessage[]> {
    const got: RawMessage[] = [];
    const model = await this.conn.get();
    const ch = await model.createChannel();
    ch.on('error', () => {});
    try {
      await ch.assertExchange(exchange, 'direct', { durable: false, autoDelete: false });
      await ch.assertQueue(queue, { durable: false, autoDelete: true, arguments: { 'x-expires': 10_000, 'x-message-ttl': 300_000 } });
      await ch.bindQueue(queue, exchange, routingKey);
      await ch.consume(queue, (msg) => { if (msg) got.push(toRawMessage(msg)); }, { noAck: true });
      await send();
      await new Promise((resolve) => setTimeout(resolve, timeoutMs));
      return got;
    } catch (err) {
      throw unavailable(`cannot gather replies on ${queue}: ${errorText(err)}`, err);
    } finally {
      await ch.close().catch(() => {});
    }
  }

  async publishToExchange(message: RawMessage, exchange: string, routingKey: string): Promise<void> {
    if (this.closing) throw unavailable('broker closed');
    const ch = await this.publishSlot.get(await this.conn.get()).catch((err: unknown) => { throw unavailable(`cannot open a channel: ${errorText(err)}`, err); });
    await confirmedPublish(ch, exchange, routingKey, message);
  }

  async consume(options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription> {
    if (this.closing) throw unavailable('broker closed');
    const model = await this.conn.get();
    const sub = new AmqpSubscription(this, options, onDelivery, this.log);
    this.subs.add(sub);
    try {
      await sub.start(model);
    } catch (err) {
      this.subs.delete(sub);
      await sub.cancel();
      throw unavailable(`cannot consume from ${options.queues.join(', ')}: ${errorText(err)}`, err);
    }
    return sub;
  }

  /** @internal */
  dropSubscription(sub: AmqpSubscription): void {
    this.subs.delete(sub);
  }

  /** messageCount of a passive declare; 0 when the queue does not exist. */
  async queueLength(queue: string): Promise<number> {
    const model = await this.conn.get();
    return this.withThrowawayChannel(model, async (ch) => {
      try {
        return (await ch.checkQueue(queue)).messageCount;
      } catch (err) {
        if (isNotFound(err)) return 0;
        throw err;
      }
    });
  }

  async ping(): Promise<void> {
    if (this.closing) throw unavailable('broker closed');
    const model = await this.conn.get();
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(unavailable('AMQP ping timed out')), 5000);
    });
    try {
      await Promise.race([this.withThrowawayChannel(model, (ch) => ch.checkExchange('amq.direct')), timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  private async withThrowawayChannel<T>(model: ChannelModel, fn: (ch: Channel) => Promise<T>): Promise<T> {
    let ch: Channel;
    try {
      ch = await model.createChannel();
    } catch (err) {
      throw unavailable(`cannot open an AMQP channel: ${errorText(err)}`, err);
    }
    let closed = false;
    ch.on('error', () => {});
    ch.on('close', () => { closed = true; });
    try {
      return await fn(ch);
    } catch (err) {
      throw unavailable(`AMQP request failed: ${errorText(err)}`, err);
    } finally {
      if (!closed) await ch.close().catch(() => {});
    }
  }

  close(): Promise<void> {
    this.closing ??= (async () => {
      const subs = [...this.subs];
      this.subs.clear();
      await Promise.all([...subs.map((s) => s.shutdown()), this.publishSlot.close(), this.declareSlot.close()]);
      await this.conn.close();
    })();
    return this.closing;
  }
}

class AmqpSubscription implements Subscription {
  private ch: Channel | null = null;
  private chModel: ChannelModel | null = null;
  private gen = 0;
  private tags: string[] = [];
  private unsettled = 0;
  private startup: Promise<void> | null = null;
  private cancelled = false;
  private cancelling: Promise<void> | null = null;
  private starting = false;
  private retry: NodeJS.Timeout | undefined;
  private prefetch: number;

  constructor(
    private readonly broker: AmqpBroker,
    private readonly options: ConsumeOptions,
    private readonly onDelivery: (delivery: Delivery) => void,
    private readonly log: Logger | undefined,
  ) {
    this.prefetch = clampPrefetch(options.prefetch);
  }

  /** Open a channel on `model`, set QoS and start one consumer per queue. */
  start(model: ChannelModel): Promise<void> {
    const p = this.open(model);
    this.startup = p;
    return p;
  }

  private async open(model: ChannelModel): Promise<void> {
    const gen = ++this.gen;
    this.tags = [];
    const ch = await model.createChannel();
    ch.on('error', (err: unknown) => this.log?.warn({ err: errorText(err) }, 'AMQP consumer channel error'));
    ch.on('close', () => this.channelClosed(gen));
    this.ch = ch;
    this.chModel = model;
    this.unsettled = 0;
    try {
      await ch.prefetch(this.prefetch, this.broker.globalQos);
      for (const queue of this.options.queues) {
        await this.broker.declareQueue(model, queue);
        await this.consumeOn(ch, gen, queue);
      }
    } catch (err) {
      await ch.close().catch(() => {});
      throw err;
    }
  }

  private async consumeOn(ch: Channel, gen: number, queue: string): Promise<void> {
    const { consumerTag } = await ch.consume(queue, (msg) => this.onMessage(ch, gen, queue, msg), { noAck: false });
    if (gen === this.gen) this.tags.push(consumerTag);
  }

  /** (Re)start on the current connection unless already running there. */
  async ensureRunning(): Promise<void> {
    clearTimeout(this.retry);
    this.retry = undefined;
    if (this.cancelled || this.starting) return;
    const model = this.broker.conn.current;
    if (!model || (this.ch && this.chModel === model)) return;
    this.starting = true;
    try {
      await this.start(model);
      this.log?.info({ queues: this.options.queues }, 'AMQP consumer resubscribed');
    } catch (err) {
      this.log?.warn({ err: errorText(err), queues: this.options.queues }, 'AMQP resubscribe failed; retrying');
      this.later(1000);
    } finally {
      this.starting = false;
    }
  }

  private later(ms: number): void {
    if (this.cancelled || this.retry) return;
    this.retry = setTimeout(() => void this.ensureRunning(), ms);
  }

  private channelClosed(gen: number): void {
    if (gen !== this.gen) return;
    this.ch = null;
    this.chModel = null;
    this.unsettled = 0;
    // connection still up: the channel died of its own error; otherwise onOpen restarts us
    if (!this.cancelled && this.broker.conn.current) this.later(100);
  }

  private onMessage(ch: Channel, gen: number, queue: string, msg: ConsumeMessage | null): void {
    if (msg === null) {
      // basic.cancel from the server: the queue was deleted. Redeclare it and consume again.
      this.log?.warn({ queue }, 'AMQP consumer cancelled by the broker (queue deleted?); re-declaring');
      this.broker.forgetQueue(queue);
      setTimeout(() => {
        if (this.cancelled || gen !== this.gen || !this.chModel) return;
        const model = this.chModel;
        this.broker.declareQueue(model, queue)
          .then(() => this.consumeOn(ch, gen, queue))
          .catch((err: unknown) => {
            this.log?.warn({ err: errorText(err), queue }, 'AMQP re-consume failed; restarting the channel');
            ch.close().catch(() => {});
          });
      }, 1000);
      return;
    }
    let message: RawMessage;
    try {
      message = toRawMessage(msg);
    } catch (err) {
      this.log?.error({ err: errorText(err), queue }, 'undecodable AMQP message rejected');
      ch.reject(msg, false);
      return;
    }
    this.unsettled++;
    let settled = false;
    const settle = (what: 'ack' | 'reject', requeue: boolean): Promise<void> => {
      if (settled) {
        this.log?.debug({ queue }, `AMQP delivery already settled: ${what} ignored`);
        return Promise.resolve();
      }
      settled = true;
      if (gen !== this.gen || this.ch !== ch) {
        this.log?.debug({ queue }, `AMQP delivery from a closed channel: ${what} is a no-op (the broker requeued it)`);
        return Promise.resolve();
      }
      try {
        if (what === 'ack') ch.ack(msg);
        else ch.reject(msg, requeue);
      } catch (err) {
        this.log?.debug({ err: errorText(err), queue }, `AMQP ${what} on a closing channel ignored`);
      }
      this.unsettled--;
      if (this.cancelled && this.unsettled === 0) ch.close().catch(() => {});
      return Promise.resolve();
    };
    const delivery: Delivery = {
      message,
      queue,
      redelivered: msg.fields.redelivered,
      ack: () => settle('ack', false),
      reject: (requeue: boolean) => settle('reject', requeue),
    };
    try {
      this.onDelivery(delivery);
    } catch (err) {
      this.log?.error({ err: errorText(err), queue }, 'consumer callback threw');
    }
  }

  setPrefetch(prefetch: number): void {
    this.prefetch = clampPrefetch(prefetch);
    const ch = this.ch;
    if (!ch || this.cancelled) return;
    ch.prefetch(this.prefetch, this.broker.globalQos).catch((err: unknown) => this.log?.warn({ err: errorText(err) }, 'AMQP basic.qos failed'));
  }

  /** basic.cancel every consumer; the channel stays open until the deliveries handed out are settled. */
  cancel(): Promise<void> {
    this.cancelling ??= (async () => {
      this.cancelled = true;
      clearTimeout(this.retry);
      this.broker.dropSubscription(this);
      await this.startup?.catch(() => {});
      const ch = this.ch;
      if (!ch) return;
      for (const tag of this.tags) await ch.cancel(tag).catch(() => {});
      if (this.unsettled === 0) await ch.close().catch(() => {});
    })();
    return this.cancelling;
  }

  /** broker.close(): drop everything; unsettled deliveries are requeued by the broker. */
  async shutdown(): Promise<void> {
    this.cancelled = true;
    clearTimeout(this.retry);
    const ch = this.ch;
    this.ch = null;
    this.gen++;
    if (ch) await bounded(ch.close());
  }
}

function clampPrefetch(n: number): number {
  if (!Number.isFinite(n) || n < 0) return 1;
  return Math.min(MAX_PREFETCH, Math.trunc(n));
}
