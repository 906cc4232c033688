/**
 * What the AMQP broker (amqp.ts) and the rpc:// backend (backends/rpc.ts) share: field-table coding
 * that py-amqp 5.1.1 reads back exactly, amqplib loaded with a decoder that understands py-amqp's
 * int64 tag, and a connection that reconnects in the background.
 */
import { createRequire } from 'node:module';
import type { Channel, ChannelModel, ConfirmChannel, ConsumeMessage, Options } from 'amqplib';
import type { Logger } from 'pino';
import { GatewayError } from '../errors.ts';
import type { Json, JsonObject, MessageProperties, RawMessage } from '../protocol/types.ts';
import { amqpUrlList, type AmqpUrlOptions } from './amqp-url.ts';

// ---------------------------------------------------------------------------------------------
// Encoding. amqplib guesses integer widths ('b' byte, 's' short, 'I' int, 'l' long) but py-amqp
// reads 'b' as UNSIGNED and 's' as a SHORT STRING (it follows the 0-9-1 spec, not RabbitMQ's
// errata): 300 would reach Python as garbage and -1 as 255. So every number gets an explicit type,
// the ones py-amqp itself writes: 'I' (int32), else 'l' (int64, amqplib has no 'L'; py-amqp reads
// 'l' as unsigned, right for positives), else 'd'. null → 'V' (void), arrays → 'A', objects → 'F'.

type Field = null | boolean | string | Field[] | { '!': string; value: unknown };

function toField(value: Json): Field {
  if (value === null || typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') {
    if (Number.isInteger(value) && value >= -0x80000000 && value <= 0x7fffffff) return { '!': 'int', value };
    if (Number.isSafeInteger(value) && value > 0) return { '!': 'long', value };
    return { '!': 'double', value };
  }
  if (Array.isArray(value)) return value.map(toField);
  // objects always go through the '!' trapdoor: safe for keys named "!" or "hasOwnProperty"
  return { '!': 'object', value: toTable(value) };
}

/** A JSON object as an amqplib field table that py-amqp decodes to the same JSON. */
export function toTable(obj: JsonObject | Record<string, unknown>): Record<string, Field> {
  const out: Record<string, Field> = {};
  for (const [key, v] of Object.entries(obj)) if (v !== undefined) out[key] = toField(v as Json);
  return out;
}

/** A decoded field value (amqplib's shapes, incl. its '!' wrappers and Buffers) as JSON. */
export function fromField(value: unknown): Json {
  if (value === null || value === undefined) return null;
  if (typeof value === 'boolean' || typeof value === 'string') return value;
  if (typeof value === 'number') return value;
  if (typeof value === 'bigint') return Number(value);
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (Array.isArray(value)) return value.map(fromField);
  if (typeof value === 'object') {
    const o = value as Record<string, unknown>;
    if (Object.prototype.hasOwnProperty.call(o, '!') && 'value' in o && Object.keys(o).length === 2) {
      if (o['!'] === 'timestamp') return Number(o.value);
      if (o['!'] === 'decimal') {
        const d = o.value as { places: number; digits: number };
        return d.digits / 10 ** d.places;
      }
    }
    const out: JsonObject = {};
    for (const [k, v] of Object.entries(o)) out[k] = fromField(v);
    return out;
  }
  return String(value);
}

export function fromTable(table: unknown): JsonObject {
  const json = fromField(table ?? {});
  return typeof json === 'object' && json !== null && !Array.isArray(json) ? json : {};
}

// Messages

/** Basic properties as Celery sets them (§1.2). */
export function publishOptions(message: RawMessage): Options.Publish {
  const p = message.properties;
  const options: Options.Publish = {
    contentType: message.contentType,
    contentEncoding: message.contentEncoding,
    deliveryMode: p.delivery_mode ?? 2,
    headers: toTable(message.headers),
  };
  if (p.correlation_id !== undefined) options.correlationId = p.correlation_id;
  if (p.reply_to !== undefined) options.replyTo = p.reply_to;
  if (p.priority !== undefined && Number.isFinite(p.priority)) options.priority = Math.min(255, Math.max(0, Math.trunc(p.priority)));
  if (p.expiration !== undefined) options.expiration = String(p.expiration);
  return options;
}

/** The two steps amqplib's ConfirmChannel.publish takes, which its typings do not declare. */
interface ChannelSteps {
  pushConfirmCallback?: (cb: (err: unknown) => void) => void;
  sendMessage?: (fields: object, properties: object, content: Buffer) => boolean;
}

/**
 * ch.publish(exchange, routingKey, content, options, cb) without amqplib's Args.publish, which hands
 * the encoder `Object.create(options.headers)`: every message's header table became a prototype (V8
 * gives each its own map) and was walked by for-in through the prototype chain, the slow path. With
 * a fresh table per message, that cost ~18 us of encoding and ~16 us of GC per publish (CPU profile
 * of the gateway on RabbitMQ, 2026-12-05). Here the encoder gets the same fields Args.publish would
 * produce, with the table as an own property. Falls back to ch.publish if amqplib's internals change
 * or for the options only Args.publish knows (CC, BCC, persistent).
 */
export function publishConfirmed(ch: ConfirmChannel, exchange: string, routingKey: string, content: Buffer, options: Options.Publish, cb: (err: unknown) => void): void {
  const steps = ch as unknown as ChannelSteps;
  if (typeof steps.pushConfirmCallback !== 'function' || typeof steps.sendMessage !== 'function'
    || options.CC !== undefined || options.BCC !== undefined || options.persistent !== undefined) {
    ch.publish(exchange, routingKey, content, options, cb);
    return;
  }
  // the shape and order of Args.publish's result (amqplib 0.10), so the encoder sees one map
  const fields = {
    exchange,
    routingKey,
    mandatory: options.mandatory === true,
    immediate: false,
    ticket: undefined,
    contentType: options.contentType,
    contentEncoding: options.contentEncoding,
    headers: options.headers ?? {},
    deliveryMode: options.deliveryMode,
    priority: options.priority,
    correlationId: options.correlationId,
    replyTo: options.replyTo,
    expiration: options.expiration === undefined ? undefined : String(options.expiration),
    messageId: options.messageId,
    timestamp: options.timestamp,
    type: options.type,
    userId: options.userId,
    appId: options.appId,
    clusterId: undefined,
  };
  steps.pushConfirmCallback.call(ch, cb);
  steps.sendMessage.call(ch, fields, fields, content);
}

/** Publish on a confirm channel; resolves on the broker's ack, rejects (GW_ERR_BROKER_UNAVAILABLE) on a nack or a closed channel. */
export function confirmedPublish(ch: ConfirmChannel, exchange: string, routingKey: string, message: RawMessage): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    try {
      publishConfirmed(ch, exchange, routingKey, Buffer.from(message.body, 'utf8'), publishOptions(message), (err: unknown) => {
        if (err) reject(unavailable(`the AMQP broker did not confirm the message to ${exchange || '(default)'}/${routingKey}: ${errorText(err)}`, err));
        else resolve();
      });
    } catch (err) {
      reject(unavailable(`cannot publish: ${errorText(err)}`, err));
    }
  });
}

/** A delivered AMQP message as a RawMessage (body: UTF-8 text, headers: JSON). */
export function toRawMessage(msg: ConsumeMessage): RawMessage {
  const p = msg.properties;
  const properties: MessageProperties = {};
  if (typeof p.correlationId === 'string') properties.correlation_id = p.correlationId;
  if (typeof p.replyTo === 'string') properties.reply_to = p.replyTo;
  if (p.deliveryMode === 1 || p.deliveryMode === 2) properties.delivery_mode = p.deliveryMode;
  if (typeof p.priority === 'number') properties.priority = p.priority;
  if (p.expiration !== undefined && p.expiration !== null) properties.expiration = String(p.expiration);
  return {
    headers: fromTable(p.headers),
    properties,
    contentType: typeof p.contentType === 'string' ? p.contentType : '',
    contentEncoding: typeof p.contentEncoding === 'string' ? p.contentEncoding : '',
    body: msg.content.toString('utf8'),
  };
}

// ---------------------------------------------------------------------------------------------
// Decoding. amqplib 0.10 throws "Unexpected type tag L" on py-amqp's int64 (any header integer
// outside ±2^31 sent by Python), which kills the whole connection; with a manual-ack consumer the
// message is requeued and kills every reconnect (a poison loop). We install a complete decoder
// before amqplib's protocol module (defs.js) captures codec.decodeFields. It must therefore be the
// first code to load amqplib: load it through `amqplib` below, never `import amqplib` elsewhere.

function decodeFieldsWithInt64(slice: Buffer): Record<string, unknown> {
  let offset = 0;
  const value = (): unknown => {
    const tag = String.fromCharCode(slice[offset++]!);
    let v: unknown;
    let len: number;
    switch (tag) {
      case 'b': v = slice.readInt8(offset); offset += 1; break;
      case 'B': v = slice.readUInt8(offset); offset += 1; break;
      case 's': v = slice.readInt16BE(offset); offset += 2; break;
      case 'u': v = slice.readUInt16BE(offset); offset += 2; break;
      case 'I': v = slice.readInt32BE(offset); offset += 4; break;
      case 'i': v = slice.readUInt32BE(offset); offset += 4; break;
      case 'l': case 'L': v = Number(slice.readBigInt64BE(offset)); offset += 8; break;
      case 'f': v = slice.readFloatBE(offset); offset += 4; break;
      case 'd': v = slice.readDoubleBE(offset); offset += 8; break;
      case 't': v = slice[offset] !== 0; offset += 1; break;
      case 'V': v = null; break;
      case 'S': len = slice.readUInt32BE(offset); offset += 4; v = slice.toString('utf8', offset, offset + len); offset += len; break;
      case 'x': len = slice.readUInt32BE(offset); offset += 4; v = slice.subarray(offset, offset + len); offset += len; break;
      case 'T': v = { '!': 'timestamp', value: Number(slice.readBigUInt64BE(offset)) }; offset += 8; break;
      case 'D': v = { '!': 'decimal', value: { places: slice[offset], digits: slice.readUInt32BE(offset + 1) } }; offset += 5; break;
      case 'F': len = slice.readUInt32BE(offset); offset += 4; v = decodeFieldsWithInt64(slice.subarray(offset, offset + len)); offset += len; break;
      case 'A': {
        len = slice.readUInt32BE(offset); offset += 4;
        const end = offset + len;
        const items: unknown[] = [];
        while (offset < end) items.push(value());
        v = items;
        break;
      }
      default: throw new TypeError(`Unexpected type tag "${tag}"`);
    }
    return v;
  };
  const fields: Record<string, unknown> = {};
  while (offset < slice.length) {
    const len = slice.readUInt8(offset++);
    const key = slice.toString('utf8', offset, offset + len);
    offset += len;
    Object.defineProperty(fields, key, { value: value(), enumerable: true, writable: true, configurable: true });
  }
  return fields;
}

const require = createRequire(import.meta.url);
const codec = require('amqplib/lib/codec.js') as { decodeFields: (b: Buffer) => unknown };
codec.decodeFields = decodeFieldsWithInt64;
/** amqplib's promise API, loaded after the decoder fix. */
export const amqplib = require('amqplib') as typeof import('amqplib');

let int64Checked = false;

/** true when amqplib decodes py-amqp's 'L' (false if amqplib was loaded before this module). */
export function int64DecodingInstalled(): boolean {
  const defs = require('amqplib/lib/defs.js') as { decode(id: number, buf: Buffer): unknown; BasicProperties: number };
  const table = Buffer.from([1, 0x6e, 0x4c, 0, 0, 0, 1, 0, 0, 0, 0]); // {n: L 2^32}
  const buf = Buffer.concat([Buffer.from([0x20, 0x00, 0, 0, 0, table.length]), table]);
  try {
    return (defs.decode(defs.BasicProperties, buf) as { headers?: { n?: unknown } }).headers?.n === 2 ** 32;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Errors and connection

export function unavailable(message: string, cause?: unknown): GatewayError {
  return new GatewayError('GW_ERR_BROKER_UNAVAILABLE', message, cause === undefined ? undefined : { cause });
}

/** Waits for `p` at most `ms` (closing a dead connection must not hang shutdown); never rejects. */
export async function bounded(p: Promise<unknown>, ms = 2000): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([p.catch(() => {}), new Promise<void>((resolve) => { timer = setTimeout(resolve, ms); })]);
  clearTimeout(timer);
}

export function errorText(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

/** 404 NOT_FOUND from a passive declare */
export function isNotFound(err: unknown): boolean {
  return (err as { code?: unknown } | null)?.code === 404;
}

export interface ManagedConnectionOptions {
  url: string;
  /** shown in the RabbitMQ management UI */
  name: string;
  logger?: Logger;
  /** called after every successful (re)connect */
  onOpen?: (model: ChannelModel) => void;
  /** called when an open connection is lost (not on close()) */
  onLost?: () => void;
  /** default: the URL's connect_timeout, else 5000 */
  connectTimeoutMs?: number;
  minBackoffMs?: number;
  maxBackoffMs?: number;
}

/**
 * One AMQP connection. The first get() awaits one connection attempt; after a failure or a loss,
 * get() rejects at once (GW_ERR_BROKER_UNAVAILABLE: callers never queue behind an outage) while a
 * background loop reconnects with exponential backoff (100 ms doubling to 2 s, as the Redis adapters: at most ~2 s of 503s after the broker is back).
 */
export class ManagedConnection {
  current: ChannelModel | null = null;
  /** the broker's reason while it blocks publishes (connection.blocked), else null */
  blocked: string | null = null;
  private attempt: Promise<ChannelModel> | null = null;
  private attempted = false;
  private timer: NodeJS.Timeout | undefined;
  private backoff: number;
  private closing: Promise<void> | null = null;
  /** the nodes of the URL list (`amqp://a;amqp://b`), tried round robin */
  private readonly nodes: AmqpUrlOptions[];
  /** index of the node the next attempt starts with */
  private nextNode = 0;
  private readonly timeoutMs: number;
  private readonly min: number;
  private readonly max: number;
  private readonly log: Logger | undefined;
  private readonly options: ManagedConnectionOptions;

  constructor(options: ManagedConnectionOptions) {
    this.options = options;
    this.nodes = amqpUrlList(options.url);
    this.timeoutMs = options.connectTimeoutMs ?? this.nodes[0]?.connectTimeoutMs ?? 5000;
    this.min = options.minBackoffMs ?? 100;
    this.max = options.maxBackoffMs ?? 2000;
    this.backoff = this.min;
    this.log = options.logger;
    if (!int64Checked) {
      int64Checked = true;
      if (!int64DecodingInstalled()) this.log?.warn('amqplib was loaded before amqp-support.ts: int64 headers from Python will drop the connection');
    }
  }

  get closed(): boolean {
    return this.closing !== null;
  }

  /** The open connection. Only the very first attempt is awaited; later outages reject at once. */
  async get(): Promise<ChannelModel> {
    if (this.closing) throw unavailable('AMQP connection closed');
    if (this.current) return this.current;
    if (!this.attempted) return this.connect();
    if (this.attempt && this.initial) return this.attempt;
    throw unavailable('AMQP connection is down (reconnecting in the background)');
  }

  private initial = true;

  private connect(): Promise<ChannelModel> {
    this.attempted = true;
    const p = this.open();
    this.attempt = p;
    p.then(
      () => {},
      (err: unknown) => {
        if (this.closing) return;
        this.log?.warn({ err: errorText(err), retryInMs: this.backoff }, 'AMQP connection attempt failed');
        this.schedule();
      },
    ).finally(() => {
      if (this.attempt === p) this.attempt = null;
      this.initial = false;
    });
    return p;
  }

  /**
   * One pass over the node list, from `nextNode` on: the first node that accepts wins. After a loss the
   * next pass starts with the node after the lost one (kombu's round-robin failover).
   */
  private async open(): Promise<ChannelModel> {
    const errors: string[] = [];
    for (let i = 0; i < this.nodes.length; i++) {
      const index = (this.nextNode + i) % this.nodes.length;
      try {
        const model = await this.openNode(this.nodes[index]!);
        this.nextNode = index;
        this.currentNode = index;
        if (this.nodes.length > 1) this.log?.info({ node: nodeName(this.nodes[index]!) }, 'AMQP connected');
        return model;
      } catch (err) {
        if (this.closing) throw err;
        errors.push(this.nodes.length > 1 ? `${nodeName(this.nodes[index]!)}: ${errorText(err)}` : errorText(err));
      }
    }
    throw unavailable(errors.join('; '));
  }

  /** index of the node of the open connection (the URL list's order) */
  currentNode = -1;

  private async openNode(u: AmqpUrlOptions): Promise<ChannelModel> {
    let model: ChannelModel;
    try {
      model = await amqplib.connect(
        {
          protocol: u.protocol, hostname: u.hostname, port: u.port, username: u.username, password: u.password,
          // amqplib percent-decodes the vhost once more: hand it an encoded one
          vhost: encodeURIComponent(u.vhost), heartbeat: u.heartbeat, frameMax: u.frameMax, locale: u.locale,
          ...(u.channelMax === undefined ? {} : { channelMax: u.channelMax }),
        },
        { timeout: this.timeoutMs, clientProperties: { connection_name: this.options.name } },
      );
    } catch (err) {
      throw unavailable(`cannot connect to the AMQP broker: ${errorText(err)}`, err);
    }
    if (this.closing) {
      await model.close().catch(() => {});
      throw unavailable('AMQP connection closed');
    }
    model.on('error', (err: unknown) => this.log?.warn({ err: errorText(err) }, 'AMQP connection error'));
    model.on('close', () => this.lost(model));
    model.on('blocked', (reason: unknown) => {
      this.blocked = typeof reason === 'string' && reason !== '' ? reason : 'blocked';
      this.log?.warn({ reason }, 'AMQP connection blocked by the broker (resource alarm): publishes are refused');
    });
    model.on('unblocked', () => {
      this.blocked = null;
      this.log?.info('AMQP connection unblocked');
    });
    const reconnected = this.backoff !== this.min;
    this.current = model;
    this.backoff = this.min;
    if (reconnected) this.log?.info('AMQP connection re-established');
    this.options.onOpen?.(model);
    return model;
  }

  private lost(model: ChannelModel): void {
    if (this.current !== model) return;
    this.current = null;
    this.blocked = null;
    if (this.closing) return;
    if (this.nodes.length > 1) this.nextNode = (this.currentNode + 1) % this.nodes.length;
    this.log?.warn({ retryInMs: this.backoff, ...(this.nodes.length > 1 ? { nextNode: nodeName(this.nodes[this.nextNode]!) } : {}) }, 'AMQP connection lost; reconnecting');
    this.options.onLost?.();
    this.schedule();
  }

  private schedule(): void {
    if (this.closing || this.timer) return;
    const delay = this.backoff;
    this.backoff = Math.min(this.backoff * 2, this.max);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect().catch(() => {});
    }, delay);
  }

  /** Idempotent. Callers close their channels first. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      clearTimeout(this.timer);
      this.timer = undefined;
      await this.attempt?.catch(() => {});
      const model = this.current;
      this.current = null;
      if (!model) return;
      await bounded(model.close());
      // no close-ok in time (a silently dead peer): drop the socket; the error makes amqplib clean up
      const stream = (model as unknown as { connection?: { stream?: { destroyed?: boolean; destroy?: (err: Error) => void } } }).connection?.stream;
      if (stream && !stream.destroyed) stream.destroy?.(new Error('AMQP connection close timed out'));
    })();
    return this.closing;
  }
}

function nodeName(u: AmqpUrlOptions): string {
  return `${u.hostname}:${u.port}`;
}

/** A lazily opened channel per connection, reopened on next use after it closed. */
export class ChannelSlot<C extends Channel> {
  private entry: { model: ChannelModel; ch: Promise<C> } | null = null;
  constructor(
    private readonly open: (model: ChannelModel) => Promise<C>,
    private readonly log: Logger | undefined,
    private readonly what: string,
  ) {}

  get(model: ChannelModel): Promise<C> {
    if (this.entry?.model === model) return this.entry.ch;
    const entry: { model: ChannelModel; ch: Promise<C> } = {
      model,
      ch: this.open(model).then((ch) => {
        ch.on('error', (err: unknown) => this.log?.warn({ err: errorText(err) }, `AMQP ${this.what} channel error`));
        ch.on('close', () => {
          if (this.entry === entry) this.entry = null;
        });
        return ch;
      }),
    };
    entry.ch.catch(() => {
      if (this.entry === entry) this.entry = null;
    });
    this.entry = entry;
    return entry.ch;
  }

  async close(): Promise<void> {
    const entry = this.entry;
    this.entry = null;
    if (entry) await bounded(entry.ch.then((ch) => ch.close()));
  }
}
