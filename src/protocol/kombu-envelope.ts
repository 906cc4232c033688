/**
 * kombu's Redis transport layout (§6): the JSON envelope around a message, priority sub-lists and
 * binding-set members. Pure.
 */
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.ts';
import { hex48 } from './hex.ts';
import type { JsonObject, MessageProperties, RawMessage } from './types.ts';

/** kombu's field separator in list names and binding members */
export const SEP = '\x06\x16';
/** kombu's default priority steps: 0 uses the bare list, others `<queue>\x06\x16<step>` */
export const PRIORITY_STEPS = [0, 3, 6, 9] as const;

/** The largest step ≤ priority (priority clamped to 0..9). */
export function priorityStep(priority: number | undefined): number {
  const p = Math.min(9, Math.max(0, Math.trunc(priority ?? 0)));
  let step = 0;
  for (const s of PRIORITY_STEPS) if (s <= p) step = s;
  return step;
}

export function priorityQueueName(queue: string, priority: number | undefined): string {
  const step = priorityStep(priority);
  return step === 0 ? queue : `${queue}${SEP}${step}`;
}

/** The lists BRPOP reads for these queues, in kombu's order: every queue at step 0, then at 3, 6, 9. */
export function consumeOrder(queues: readonly string[]): string[] {
  return PRIORITY_STEPS.flatMap((step) => queues.map((q) => (step === 0 ? q : `${q}${SEP}${step}`)));
}

/** The list name → its queue (strips the priority suffix). */
export function queueOfList(list: string): string {
  const at = list.lastIndexOf(SEP);
  return at >= 0 && /^\d$/.test(list.slice(at + SEP.length)) ? list.slice(0, at) : list;
}

let tagPrefix = randomUUID().slice(0, 24);
let tagCount = 0;

/**
 * A delivery tag for an envelope. kombu draws a uuid4 per message, but a tag only has to be unique (it
 * keys the `unacked` hash), not unpredictable: a random prefix per process (the first 24 characters of
 * a uuid4) and a 12-digit hex counter keep the uuid shape without a CSPRNG draw per publish.
 */
export function newDeliveryTag(): string {
  if (tagCount === 0x1000000000000) {
    tagPrefix = randomUUID().slice(0, 24);
    tagCount = 0;
  }
  return tagPrefix + hex48(tagCount++);
}

export interface DeliveryInfo {
  exchange: string;
  routingKey: string;
}

/**
 * The envelope kombu LPUSHes, with its key order. One fixed-shape object literal: JSON.stringify leaves
 * out the properties that are undefined, as kombu leaves them out. MessageProperties is closed, so
 * `expiration` is the only "other AMQP property", and kombu writes it before delivery_info.
 */
export function encodeEnvelope(msg: RawMessage, info: DeliveryInfo, deliveryTag: string): string {
  const p = msg.properties;
  return JSON.stringify({
    body: Buffer.from(msg.body, 'utf8').toString('base64'),
    'content-encoding': msg.contentEncoding,
    'content-type': msg.contentType,
    headers: msg.headers,
    properties: {
      correlation_id: p.correlation_id,
      reply_to: p.reply_to,
      delivery_mode: p.delivery_mode ?? 2,
      expiration: p.expiration,
      delivery_info: { exchange: info.exchange, routing_key: info.routingKey },
      priority: p.priority ?? 0,
      body_encoding: 'base64',
      delivery_tag: deliveryTag,
    },
  });
}

export interface DecodedEnvelope {
  message: RawMessage;
  deliveryTag: string;
  exchange: string;
  routingKey: string;
  redelivered: boolean;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

function bad(message: string): GatewayError {
  return new GatewayError('GW_ERR_PROTOCOL', `invalid kombu envelope: ${message}`);
}

/** Parse an envelope from a Redis list (or the first element of an `unacked` entry). */
export function decodeEnvelope(text: string): DecodedEnvelope {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch {
    throw bad('not JSON');
  }
  if (!isObject(raw)) throw bad('not an object');
  const props = isObject(raw['properties']) ? raw['properties'] : {};
  const headers = isObject(raw['headers']) ? (raw['headers'] as JsonObject) : {};
  const info = isObject(props['delivery_info']) ? props['delivery_info'] : {};
  if (typeof raw['body'] !== 'string') throw bad('body is not a string');
  const body = props['body_encoding'] === 'base64' ? Buffer.from(raw['body'], 'base64').toString('utf8') : raw['body'];
  const properties: MessageProperties = {};
  if (typeof props['correlation_id'] === 'string') properties.correlation_id = props['correlation_id'];
  if (typeof props['reply_to'] === 'string') properties.reply_to = props['reply_to'];
  if (props['delivery_mode'] === 1 || props['delivery_mode'] === 2) properties.delivery_mode = props['delivery_mode'];
  if (typeof props['priority'] === 'number') properties.priority = props['priority'];
  if (typeof props['expiration'] === 'string') properties.expiration = props['expiration'];
  return {
    message: {
      headers,
      properties,
      contentType: typeof raw['content-type'] === 'string' ? raw['content-type'] : '',
      contentEncoding: typeof raw['content-encoding'] === 'string' ? raw['content-encoding'] : '',
      body,
    },
    deliveryTag: typeof props['delivery_tag'] === 'string' ? props['delivery_tag'] : '',
    exchange: typeof info['exchange'] === 'string' ? info['exchange'] : '',
    routingKey: typeof info['routing_key'] === 'string' ? info['routing_key'] : '',
    redelivered: headers['redelivered'] === true || info['redelivered'] === true,
  };
}

/** A member of `_kombu.binding.<exchange>`: routing key, pattern, queue. */
export function bindingMember(routingKey: string, pattern: string, queue: string): string {
  return `${routingKey}${SEP}${pattern}${SEP}${queue}`;
}

export function parseBindingMember(member: string): { routingKey: string; pattern: string; queue: string } | null {
  const parts = member.split(SEP);
  if (parts.length !== 3) return null;
  const [routingKey, pattern, queue] = parts as [string, string, string];
  return { routingKey, pattern, queue };
}
