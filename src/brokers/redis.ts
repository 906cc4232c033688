/**
 * kombu's Redis transport, message for message (§6 of the protocol doc): LPUSH to the queue's priority
 * lists, consume in kombu's list order, ack emulation with the `unacked` hash and `unacked_index` zset,
 * and the visibility-timeout restore that brings back what a dead worker (ours or Python's) held.
 */
import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { redactUrl } from '../config.ts';
import { GatewayError } from '../errors.ts';
import {
  bindingMember, consumeOrder, decodeEnvelope, encodeEnvelope, newDeliveryTag, parseBindingMember, priorityQueueName, queueOfList,
} from '../protocol/kombu-envelope.ts';
import type { RawMessage } from '../protocol/types.ts';
import { connectRedis, unavailable, whenReady, type ConnectionHooks } from '../redis/connection.ts';
import type { Broker, ConsumeOptions, Delivery, Route, Subscription } from './broker.ts';
import { ACK, POP_BATCH, REGISTER, RELEASE_MUTEX, RESTORE } from './redis-scripts.ts';
import { TickBatcher } from '../redis/batch.ts';

export const UNACKED = 'unacked';
export const UNACKED_INDEX = 'unacked_index';
export const UNACKED_MUTEX = 'unacked_mutex';

export interface RedisBrokerOptions {
  url: string;
  /** seconds before an unacked message is delivered again (kombu's visibility_timeout) */
  visibilityTimeoutSec?: number;
  /** how often a consumer runs the restore (kombu: about every 100 s) */
  restoreIntervalMs?: number;
  /** BRPOP timeout when the queues are empty, seconds */
  pollTimeoutSec?: number;
  /**
   * After a publish, WAIT until this many replicas acknowledged it (fewer within waitTimeoutMs:
   * GW_ERR_BROKER_NOT_REPLICATED). 0 = no WAIT: faster, but a failover may lose the newest messages.
   */
  waitReplicas?: number;
  /** WAIT's timeout, ms (default 1000) */
  waitTimeoutMs?: number;
  logger?: Logger;
  /** called each time one of the broker's connections is re-established (for metrics) */
  onReconnect?: () => void;
}

interface ScriptedRedis extends Redis {
  gwPopBatch(...args: (string | number)[]): Promise<string[]>;
  gwRegister(unacked: string, index: string, score: string, tag: string, payload: string): Promise<number>;
  gwAck(unacked: string, index: string, ...tags: string[]): Promise<number>;
  gwRestore(unacked: string, index: string, list: string, tag: string, envelope: string, side: string, expected: string): Promise<number>;
  gwReleaseMutex(mutex: string, token: string): Promise<number>;
}

const CODE = 'GW_ERR_BROKER_UNAVAILABLE';

const nowScore = (): string => (Date.now() / 1000).toFixed(6);

function withScripts(client: Redis): ScriptedRedis {
  client.defineCommand('gwPopBatch', { lua: POP_BATCH });
  client.defineCommand('gwRegister', { numberOfKeys: 2, lua: REGISTER });
  client.defineCommand('gwAck', { numberOfKeys: 2, lua: ACK });
  client.defineCommand('gwRestore', { numberOfKeys: 3, lua: RESTORE });
  client.defineCommand('gwReleaseMutex', { numberOfKeys: 1, lua: RELEASE_MUTEX });
  return client as ScriptedRedis;
}

/** The envelope as a restore writes it: kombu marks it redelivered in headers and delivery_info. */
function markRedelivered(envelope: string): string {
  const env = JSON.parse(envelope) as { headers?: Record<string, unknown>; properties?: { delivery_info?: Record<string, unknown> } };
  if (env.headers) env.headers['redelivered'] = true;
  if (env.properties?.delivery_info) env.properties.delivery_info['redelivered'] = true;
  return JSON.stringify(env);
}

export class RedisBroker implements Broker {
  readonly kind = 'redis';
  readonly displayUrl: string;
  readonly #url: string;
  readonly #client: ScriptedRedis;
  readonly #log: Logger | undefined;
  readonly #visibilityTimeoutSec: number;
  readonly #restoreIntervalMs: number;
  readonly #pollTimeoutSec: number;
  readonly #waitReplicas: number;
  readonly #waitTimeoutMs: number;
  /** queues whose default binding this process declared (kombu does it once per process) */
  readonly #declared = new Set<string>();
  readonly #subscriptions = new Set<RedisSubscription>();
  /** restores started by consumers; close() waits for them so `unacked_mutex` is released, not left for 5 min */
  readonly #restoring = new Set<Promise<unknown>>();
  #closing: Promise<void> | undefined;
  readonly #hooks: ConnectionHooks;

  constructor(options: RedisBrokerOptions) {
    this.#url = options.url;
    this.#hooks = { onReconnect: options.onReconnect };
    this.displayUrl = redactUrl(options.url);
    this.#log = options.logger;
    this.#visibilityTimeoutSec = options.visibilityTimeoutSec ?? 3600;
    // restore at least twice per visibility timeout (kombu: about every 100 s, for its 1 h default)
    this.#restoreIntervalMs = options.restoreIntervalMs ?? Math.min(60_000, (this.#visibilityTimeoutSec * 1000) / 2);
    this.#pollTimeoutSec = options.pollTimeoutSec ?? 1;
    this.#waitReplicas = options.waitReplicas ?? 0;
    this.#waitTimeoutMs = options.waitTimeoutMs ?? 1000;
    this.#client = withScripts(connectRedis(options.url, options.logger, {}, this.#hooks));
  }

  /** the command connection (tests and the restore use it) */
  get client(): Redis {
    return this.#client;
  }

  publish(message: RawMessage, route: Route): Promise<void> {
    // no async wrapper on the hot path: one promise layer less per submission
    if (this.#waitReplicas === 0) return this.#push(message, route);
    return this.#push(message, route).then(() => this.#waitForReplicas());
  }

  /**
   * WAIT on the connection that made the LPUSH: it returns once `waitReplicas` replicas have every write
   * this connection made so far (or at the timeout with the count reached). Costs one replication round
   * trip per publish, and a replica outage makes each publish take waitTimeoutMs and answer 503.
   */
  async #waitForReplicas(): Promise<void> {
    let acked: number;
    try {
      acked = await this.#client.wait(this.#waitReplicas, this.#waitTimeoutMs);
    } catch (err) {
      throw unavailable(err, CODE);
    }
    if (acked < this.#waitReplicas) {
      throw new GatewayError('GW_ERR_BROKER_NOT_REPLICATED', `only ${acked} of ${this.#waitReplicas} Redis replicas acknowledged the message within ${this.#waitTimeoutMs} ms`);
    }
  }

  async #push(message: RawMessage, route: Route): Promise<void> {
    try {
      if (this.#client.status !== 'ready') await whenReady(this.#client, CODE);
      const tag = newDeliveryTag();
      const priority = message.properties.priority;
      if (route.exchange) {
        const routingKey = route.routingKey ?? route.queue;
        const members = await this.#client.smembers(`_kombu.binding.${route.exchange}`);
        const queues = members.map(parseBindingMember).filter((b) => b !== null && b.routingKey === routingKey).map((b) => b!.queue);
        if (queues.length === 0) {
          this.#log?.warn({ exchange: route.exchange, routingKey }, 'no queue bound to this exchange and routing key: message dropped, as kombu does');
          return;
        }
        const envelope = encodeEnvelope(message, { exchange: route.exchange, routingKey }, tag);
        await Promise.all(queues.map((q) => this.#client.lpush(priorityQueueName(q, priority), envelope)));
        return;
      }
      const envelope = encodeEnvelope(message, { exchange: '', routingKey: route.queue }, tag);
      const pushed = this.#pushes.add([priorityQueueName(route.queue, priority), envelope]);
      if (!this.#declared.has(route.queue)) {
        await this.#client.sadd(`_kombu.binding.${route.queue}`, bindingMember(route.queue, '', route.queue));
        this.#declared.add(route.queue);
      }
      const failed = await pushed;
      if (failed !== undefined) throw failed;
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  /**
   * The publishes of one event-loop turn, one LPUSH per list with every envelope for it, in call order
   * (`LPUSH l a b` is `LPUSH l a` then `LPUSH l b`): a gateway under load sends one command per turn
   * instead of one per request, which saves the client's command objects and write calls and Redis's
   * own CPU (both share the machine's cores with the HTTP work).
   */
  readonly #pushes = new TickBatcher<[list: string, envelope: string], unknown>(async (items) => {
    const byList = new Map<string, string[]>();
    for (const [list, envelope] of items) {
      const envelopes = byList.get(list);
      if (envelopes) envelopes.push(envelope);
      else byList.set(list, [envelope]);
    }
    // a list that fails (WRONGTYPE) fails only its own publishes: each item gets its list's error or undefined
    const failures = new Map<string, unknown>();
    await Promise.all([...byList].map(([list, envelopes]) => this.#client.lpush(list, ...envelopes).then(() => undefined, (err: unknown) => { failures.set(list, err); })));
    return items.map(([list]) => failures.get(list));
  });

  async broadcast(message: RawMessage, exchange: string): Promise<void> {
    try {
      await whenReady(this.#client, CODE);
      const db = this.#client.options.db ?? 0;
      await this.#client.publish(`/${db}.${exchange}`, encodeEnvelope(message, { exchange, routingKey: '' }, newDeliveryTag()));
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  /** kombu's fanout with patterns: PUBLISH `/<db>.<exchange>/<routing key>` (a Receiver PSUBSCRIBEs `/<db>.celeryev/*`). */
  async publishEvent(message: RawMessage, exchange: string, routingKey: string): Promise<void> {
    try {
      await whenReady(this.#client, CODE);
      const db = this.#client.options.db ?? 0;
      await this.#client.publish(`/${db}.${exchange}/${routingKey}`, encodeEnvelope(message, { exchange, routingKey }, newDeliveryTag()));
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  async listenBroadcast(exchange: string, _queue: string, onMessage: (message: RawMessage) => void): Promise<() => Promise<void>> {
    const sub = connectRedis(this.#url, this.#log, { enableOfflineQueue: true, maxRetriesPerRequest: null }, this.#hooks);
    const channel = `/${this.#client.options.db ?? 0}.${exchange}`;
    sub.on('message', (_channel: string, text: string) => {
      try {
        onMessage(decodeEnvelope(text).message);
      } catch (err) {
        this.#log?.warn({ err: (err as Error).message, channel }, 'ignoring an unreadable broadcast');
      }
    });
    try {
      await sub.subscribe(channel);
    } catch (err) {
      sub.disconnect();
      throw unavailable(err, CODE);
    }
    return async () => { await sub.quit().catch(() => sub.disconnect()); };
  }

  /** kombu's way: bind the reply list in `_kombu.binding.<exchange>`, then pop what arrives there. */
  async gatherReplies(exchange: string, routingKey: string, queue: string, timeoutMs: number, send: () => Promise<void>): Promise<RawMessage[]> {
    const got: RawMessage[] = [];
    const reader = connectRedis(this.#url, this.#log, { enableOfflineQueue: true, maxRetriesPerRequest: null }, this.#hooks);
    try {
      await whenReady(this.#client, CODE);
      await this.#client.sadd(`_kombu.binding.${exchange}`, bindingMember(routingKey, '', queue));
      await send();
      const deadline = Date.now() + timeoutMs;
      for (let left = timeoutMs; left > 0; left = deadline - Date.now()) {
        const popped = await reader.brpop(queue, Math.max(0.01, left / 1000));
        if (!popped) break;
        got.push(decodeEnvelope(popped[1]).message);
      }
      return got;
    } catch (err) {
      throw unavailable(err, CODE);
    } finally {
      reader.disconnect();
      await this.#client.srem(`_kombu.binding.${exchange}`, bindingMember(routingKey, '', queue)).catch(() => {});
      await this.#client.del(queue).catch(() => {});
    }
  }

  /** kombu's direct-exchange emulation: LPUSH to every queue bound with this routing key. */
  async publishToExchange(message: RawMessage, exchange: string, routingKey: string): Promise<void> {
    await this.publish(message, { queue: routingKey, exchange, routingKey });
  }

  async consume(options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription> {
    await whenReady(this.#client, CODE).catch((err: unknown) => { throw unavailable(err, CODE); });
    const blocking = withScripts(connectRedis(this.#url, this.#log, { enableOfflineQueue: true, maxRetriesPerRequest: null }, this.#hooks));
    await whenReady(blocking, CODE).catch((err: unknown) => {
      blocking.disconnect();
      throw unavailable(err, CODE);
    });
    const sub = new RedisSubscription(this, blocking, options, onDelivery, this.#pollTimeoutSec, this.#log);
    // Keep what this consumer holds (ETA tasks, long runs) fresh in unacked_index, so no restore — ours
    // or a Python worker's — delivers it a second time while we are alive (Celery's duplicate-ETA bug,
    // celery#4400). If we die, the entries age and are restored after the visibility timeout.
    sub.touchTimer = setInterval(() => {
      const tags = sub.held();
      if (tags.length > 0) void this.touch(tags).catch((err: unknown) => this.#log?.warn({ err: (err as Error).message }, 'could not refresh unacked messages'));
    }, Math.min(60_000, (this.#visibilityTimeoutSec * 1000) / 3));
    sub.touchTimer.unref();
    this.#subscriptions.add(sub);
    sub.done.finally(() => this.#subscriptions.delete(sub));
    const restore = (): void => {
      if (this.#closing) return;
      const run = this.restoreVisible().catch((err: unknown) => this.#log?.warn({ err }, 'restore of unacked messages failed'));
      this.#restoring.add(run);
      void run.finally(() => this.#restoring.delete(run));
    };
    restore();
    sub.restoreTimer = setInterval(restore, this.#restoreIntervalMs);
    sub.restoreTimer.unref();
    sub.start();
    return sub;
  }

  /** Mark held messages as delivered now (ZADD XX: only those still unacked). */
  async touch(tags: readonly string[], nowMs = Date.now()): Promise<void> {
    const score = (nowMs / 1000).toFixed(6);
    await this.#client.zadd(UNACKED_INDEX, 'XX', ...tags.flatMap((tag) => [score, tag]));
  }

  /** Acks of the same event-loop turn are one ACK call. */
  async ack(tag: string): Promise<void> {
    try {
      await this.#acks.add(tag);
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  readonly #acks = new TickBatcher<string, void>(async (tags) => {
    await this.#client.gwAck(UNACKED, UNACKED_INDEX, ...tags);
    return [];
  });

  /** Put one of our unacked messages back (left: back of the line, as kombu's reject; right: next up). */
  async requeue(tag: string, envelope: string, list: string, side: 'left' | 'right'): Promise<boolean> {
    try {
      return (await this.#client.gwRestore(UNACKED, UNACKED_INDEX, list, tag, markRedelivered(envelope), side, '')) === 1;
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  /**
   * kombu's restore_visible: under `unacked_mutex`, every message unacked for longer than the visibility
   * timeout goes back to the consuming end of its queue, marked redelivered. Returns how many.
   */
  async restoreVisible(nowMs = Date.now()): Promise<number> {
    const token = randomUUID();
    const got = await this.#client.set(UNACKED_MUTEX, token, 'PX', 300_000, 'NX');
    if (got !== 'OK') return 0;
    let restored = 0;
    try {
      const cutoff = nowMs / 1000 - this.#visibilityTimeoutSec;
      const tags = await this.#client.zrangebyscore(UNACKED_INDEX, 0, cutoff, 'LIMIT', 0, 1000);
      if (tags.length === 0) return 0;
      const payloads = await this.#client.hmget(UNACKED, ...tags);
      for (const [i, tag] of tags.entries()) {
        const payload = payloads[i];
        if (!payload) {
          await this.#client.zrem(UNACKED_INDEX, tag);
          continue;
        }
        const target = await this.#restoreTarget(payload);
        if (!target) continue;
        restored += await this.#client.gwRestore(UNACKED, UNACKED_INDEX, target.list, tag, target.envelope, 'right', payload);
      }
      if (restored > 0) this.#log?.warn({ restored }, 'restored messages unacked past the visibility timeout');
      return restored;
    } finally {
      await this.#client.gwReleaseMutex(UNACKED_MUTEX, token);
    }
  }

  /** Where a stored `[envelope, exchange, routing_key]` goes back to, and the envelope to push. */
  async #restoreTarget(payload: string): Promise<{ list: string; envelope: string } | null> {
    let entry: unknown;
    try {
      entry = JSON.parse(payload);
    } catch {
      return null;
    }
    if (!Array.isArray(entry) || typeof entry[0] !== 'object') return null;
    const [env, exchange, routingKey] = entry as [Record<string, unknown>, unknown, unknown];
    const envelope = markRedelivered(JSON.stringify(env));
    const priority = decodeEnvelope(envelope).message.properties.priority;
    let queue = typeof routingKey === 'string' ? routingKey : '';
    if (typeof exchange === 'string' && exchange !== '') {
      const members = await this.#client.smembers(`_kombu.binding.${exchange}`);
      queue = members.map(parseBindingMember).find((b) => b?.routingKey === routingKey)?.queue ?? queue;
    }
    return queue ? { list: priorityQueueName(queue, priority), envelope } : null;
  }

  async queueLength(queue: string): Promise<number> {
    try {
      await whenReady(this.#client, CODE);
      const lengths = await Promise.all(consumeOrder([queue]).map((list) => this.#client.llen(list)));
      return lengths.reduce((a, b) => a + b, 0);
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  async ping(): Promise<void> {
    try {
      await whenReady(this.#client, CODE);
      await this.#client.ping();
    } catch (err) {
      throw unavailable(err, CODE);
    }
  }

  close(): Promise<void> {
    this.#closing ??= (async () => {
      await Promise.all([...this.#subscriptions].map((s) => s.cancel()));
      await Promise.all([...this.#restoring]);
      await this.#client.quit().catch(() => this.#client.disconnect());
    })();
    return this.#closing;
  }
}

/** One consumer: a loop on its own (blocking) connection that fetches while under the prefetch bound. */
class RedisSubscription implements Subscription {
  restoreTimer: NodeJS.Timeout | undefined;
  touchTimer: NodeJS.Timeout | undefined;
  /** delivery tags handed out and not settled yet */
  readonly #held = new Set<string>();
  readonly done: Promise<void>;
  #resolveDone: () => void = () => {};
  #active = true;
  #unsettled = 0;
  #wake: (() => void) | undefined;
  /** queue rotation, as kombu rotates after each delivery */
  #queues: string[];
  /** CLIENT ID of the blocking connection (changes on reconnect), so cancel() can CLIENT UNBLOCK it */
  #clientId: number | undefined;

  constructor(
    readonly broker: RedisBroker,
    private readonly redis: ScriptedRedis,
    options: ConsumeOptions,
    private readonly onDelivery: (delivery: Delivery) => void,
    private readonly pollTimeoutSec: number,
    private readonly log: Logger | undefined,
    private prefetch = options.prefetch,
  ) {
    this.#queues = [...options.queues];
    this.done = new Promise((resolve) => { this.#resolveDone = resolve; });
  }

  start(): void {
    this.redis.on('ready', () => { this.#clientId = undefined; });
    void this.#loop().finally(() => this.#resolveDone());
  }

  held(): string[] {
    return [...this.#held];
  }

  setPrefetch(prefetch: number): void {
    this.prefetch = prefetch;
    this.#wake?.();
  }

  async cancel(): Promise<void> {
    if (this.#active) {
      this.#active = false;
      clearInterval(this.restoreTimer);
      clearInterval(this.touchTimer);
      this.#wake?.();
      // End a BRPOP in progress now rather than at its timeout: UNBLOCK makes it return nil, so no
      // message is lost (disconnecting could drop one the server already popped). The UNBLOCK may
      // overtake a BRPOP still on its way (two connections), hence the repeats until the loop ends.
      const unblock = (): void => {
        if (this.#clientId !== undefined) void this.broker.client.client('UNBLOCK', this.#clientId).catch(() => {});
      };
      unblock();
      const timer = setInterval(unblock, 100);
      await this.done.finally(() => clearInterval(timer));
    }
    await this.done;
  }

  async #loop(): Promise<void> {
    let backoff = 100;
    try {
      while (this.#active) {
        const free = this.prefetch - this.#unsettled;
        if (free <= 0) {
          await new Promise<void>((resolve) => { this.#wake = resolve; });
          this.#wake = undefined;
          continue;
        }
        try {
          const lists = consumeOrder(this.#queues);
          let batch = await this.redis.gwPopBatch(lists.length + 2, ...lists, UNACKED, UNACKED_INDEX, nowScore(), free);
          if (batch.length === 0) {
            if (!this.#active) break;
            this.#clientId ??= await this.redis.client('ID');
            if (!this.#active) break;
            const popped = await this.redis.brpop(...lists, this.pollTimeoutSec);
            if (!popped) continue;
            const [list, envelope] = popped;
            const decoded = this.#decode(envelope);
            if (decoded?.deliveryTag) {
              await this.redis.gwRegister(UNACKED, UNACKED_INDEX, nowScore(), decoded.deliveryTag,
                `[${envelope}, ${JSON.stringify(decoded.exchange)}, ${JSON.stringify(decoded.routingKey)}]`);
            }
            batch = [list, envelope];
          }
          backoff = 100;
          const notHanded: [string, string, string][] = [];
          for (let i = 0; i < batch.length; i += 2) {
            const tag = this.#hand(batch[i] as string, batch[i + 1] as string);
            if (tag) notHanded.push([tag, batch[i] as string, batch[i + 1] as string]);
          }
          // fetched after cancel(): back to the consuming end, last first so their order is kept
          for (const [tag, list, envelope] of notHanded.reverse()) {
            await this.broker.requeue(tag, envelope, list, 'right').catch((err: unknown) => {
              this.log?.error({ err: (err as Error).message, tag }, 'could not restore a fetched message; the visibility timeout will');
            });
          }
        } catch (err) {
          if (!this.#active) break;
          this.log?.warn({ err: (err as Error).message, retryInMs: backoff }, 'redis consume failed; retrying');
          await new Promise((resolve) => setTimeout(resolve, backoff));
          backoff = Math.min(backoff * 2, 5000);
        }
      }
    } finally {
      this.redis.disconnect();
    }
  }

  #decode(envelope: string): ReturnType<typeof decodeEnvelope> | null {
    try {
      return decodeEnvelope(envelope);
    } catch (err) {
      this.log?.error({ err: (err as Error).message, sample: envelope.slice(0, 200) }, 'dropping a list entry that is not a kombu envelope');
      return null;
    }
  }

  /**
   * Hand one fetched message to the consumer. Returns its delivery tag when it was not handed because
   * we were cancelled meanwhile (the caller restores it).
   */
  #hand(list: string, envelope: string): string | undefined {
    const decoded = this.#decode(envelope);
    if (!decoded) {
      // the pop script may have registered it in `unacked` (it had a delivery_tag): forget it there too,
      // or every visibility-timeout restore would bring the poison back
      const tag = (() => { try { return (JSON.parse(envelope) as { properties?: { delivery_tag?: unknown } }).properties?.delivery_tag; } catch { return undefined; } })();
      if (typeof tag === 'string') void this.broker.ack(tag).catch(() => {});
      return undefined;
    }
    const queue = queueOfList(list);
    // kombu's round-robin cycle: the queue just served goes to the end of the order
    const at = this.#queues.indexOf(queue);
    if (at >= 0 && this.#queues.length > 1) this.#queues.push(...this.#queues.splice(at, 1));
    const tag = decoded.deliveryTag;
    if (!this.#active) return tag || undefined;
    this.#unsettled += 1;
    if (tag) this.#held.add(tag);
    this.onDelivery(new RedisDelivery(this, decoded.message, queue, decoded.redelivered, tag, envelope, list));
  }

  /** A delivery was acked or rejected (once): it no longer counts against the prefetch bound. */
  settled(tag: string): void {
    this.#unsettled -= 1;
    this.#held.delete(tag);
    this.#wake?.();
  }
}

/**
 * One message handed to the consumer; the first ack or reject settles it. A class rather than an
 * object of closures: at thousands of deliveries a second, per-delivery closures (and the name each
 * one is given under tsx) were ~1 us of the worker's CPU per task.
 */
class RedisDelivery implements Delivery {
  #settled = false;

  constructor(
    private readonly subscription: RedisSubscription,
    readonly message: RawMessage,
    readonly queue: string,
    readonly redelivered: boolean,
    private readonly tag: string,
    private readonly envelope: string,
    private readonly list: string,
  ) {}

  async ack(): Promise<void> {
    if (!this.#settle()) return;
    await this.subscription.broker.ack(this.tag);
  }

  async reject(requeue: boolean): Promise<void> {
    if (!this.#settle()) return;
    if (requeue) await this.subscription.broker.requeue(this.tag, this.envelope, this.list, 'left');
    else await this.subscription.broker.ack(this.tag);
  }

  /** Whether this call settles it, and there is a tag to act on (a message without one is only counted). */
  #settle(): boolean {
    if (this.#settled) return false;
    this.#settled = true;
    this.subscription.settled(this.tag);
    return this.tag !== '';
  }
}
