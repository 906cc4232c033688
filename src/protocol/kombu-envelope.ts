/**
 * kombu's Redis transport layout (§6): the JSON envelope around a message, priority sub-lists and
 * binding-set members. Pure.
 */
import { randomUUID } from 'node:crypto';
import { GatewayError } from '../errors.ts';
import { hex48 } from './hex.ts';
import { STANDARD_HEADER_KEYS } from './message.ts';
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
export function stringifyEnvelope(msg: RawMessage, info: DeliveryInfo, deliveryTag: string): string {
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

/**
 * The envelope of a plain task message (what POST /tasks/:name sends without options) from a template:
 * its text with holes for the values each message has of its own (body, id, argsrepr, kwargsrepr,
 * delivery tag), made once per task name and route by stringifyEnvelope itself, so both write the same
 * bytes. JSON.stringify of the whole envelope was the largest cost of a submission (~2.5 us of the
 * gateway's ~38 us CPU per request); filling a template costs ~0.6 us.
 */
interface EnvelopeTemplate {
  origin: string;
  replyTo: string;
  ignoreResult: boolean;
  priority: number | undefined;
  deliveryMode: number | undefined;
  contentType: string;
  contentEncoding: string;
  exchange: string;
  routingKey: string;
  /** the text around the holes: id, root_id, argsrepr, kwargsrepr, correlation_id, delivery_tag */
  parts: string[];
}

/** templates by task name; cleared when it holds too many (task names come from clients) */
const templates = new Map<string, EnvelopeTemplate[]>();
let templateCount = 0;
const MAX_TEMPLATES = 256;
const HOLES = 6;
/** a hole's value while a template is made; JSON writes \u0001 as an escape, hence the pattern */
const hole = (n: number): string => `\u0001gw-hole-${n}\u0001`;
const HOLE_TEXT = /"\\u0001gw-hole-\d\\u0001"/;
const BODY_START = '{"body":"",';

/** The standard headers of buildTaskMessage, in its order, with the values of a plain top-level task. */
function plainHeaders(h: JsonObject): boolean {
  let i = 0;
  for (const key in h) {
    if (key !== STANDARD_HEADER_KEYS[i]) return false;
    i += 1;
  }
  const timelimit = h['timelimit'];
  return i === STANDARD_HEADER_KEYS.length && h['lang'] === 'py' && typeof h['task'] === 'string' && typeof h['id'] === 'string'
    && h['shadow'] === null && h['eta'] === null && h['expires'] === null && h['group'] === null && h['group_index'] === null
    && h['retries'] === 0 && Array.isArray(timelimit) && timelimit.length === 2 && timelimit[0] === null && timelimit[1] === null
    && h['root_id'] === h['id'] && h['parent_id'] === null && typeof h['argsrepr'] === 'string' && typeof h['kwargsrepr'] === 'string'
    && typeof h['origin'] === 'string' && typeof h['ignore_result'] === 'boolean';
}

function findTemplate(msg: RawMessage, info: DeliveryInfo): EnvelopeTemplate | undefined {
  const h = msg.headers;
  const p = msg.properties;
  for (const t of templates.get(h['task'] as string) ?? []) {
    if (t.origin === h['origin'] && t.replyTo === p.reply_to && t.ignoreResult === h['ignore_result'] && t.priority === p.priority
      && t.deliveryMode === p.delivery_mode && t.contentType === msg.contentType && t.contentEncoding === msg.contentEncoding
      && t.exchange === info.exchange && t.routingKey === info.routingKey) return t;
  }
  return undefined;
}

/** A template for messages like this one; undefined when its text does not split as expected. */
function makeTemplate(msg: RawMessage, info: DeliveryInfo): EnvelopeTemplate | undefined {
  const h = msg.headers;
  const p = msg.properties;
  const text = stringifyEnvelope({
    ...msg,
    body: '',
    headers: { ...h, id: hole(0), root_id: hole(1), argsrepr: hole(2), kwargsrepr: hole(3) },
    properties: { ...p, correlation_id: hole(4) },
  }, info, hole(5));
  if (!text.startsWith(BODY_START)) return undefined;
  const parts = text.slice(BODY_START.length - 1).split(HOLE_TEXT);
  // a value holding the marker itself (a task named so) makes more parts: such messages are stringified
  if (parts.length !== HOLES + 1) return undefined;
  const template: EnvelopeTemplate = {
    origin: h['origin'] as string, replyTo: p.reply_to as string, ignoreResult: h['ignore_result'] as boolean,
    priority: p.priority, deliveryMode: p.delivery_mode, contentType: msg.contentType, contentEncoding: msg.contentEncoding,
    exchange: info.exchange, routingKey: info.routingKey,
    parts,
  };
  if (templateCount >= MAX_TEMPLATES) {
    templates.clear();
    templateCount = 0;
  }
  const list = templates.get(h['task'] as string);
  if (list) list.push(template);
  else templates.set(h['task'] as string, [template]);
  templateCount += 1;
  return template;
}

/** The envelope kombu LPUSHes for this message (stringifyEnvelope's text, from a template when plain). */
export function encodeEnvelope(msg: RawMessage, info: DeliveryInfo, deliveryTag: string): string {
  const h = msg.headers;
  const p = msg.properties;
  if (!plainHeaders(h) || p.correlation_id !== h['id'] || typeof p.reply_to !== 'string' || p.expiration !== undefined) {
    return stringifyEnvelope(msg, info, deliveryTag);
  }
  const t = findTemplate(msg, info) ?? makeTemplate(msg, info);
  if (!t) return stringifyEnvelope(msg, info, deliveryTag);
  const id = JSON.stringify(h['id']);
  const [a, b, c, d, e, f, g] = t.parts;
  return `{"body":"${Buffer.from(msg.body, 'utf8').toString('base64')}"${a}${id}${b}${id}${c}${JSON.stringify(h['argsrepr'])}${d}${JSON.stringify(h['kwargsrepr'])}${e}${id}${f}${JSON.stringify(deliveryTag)}${g}`;
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
