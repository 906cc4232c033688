/**
 * Build and parse protocol v2 task messages (§1): the exact headers, properties and body a
 * Celery 5.2.6 client publishes, and a strict reader for what a worker receives.
 */
import { GatewayError } from '../errors.ts';
import { argsRepr, kwargsRepr } from './repr.ts';
import { isoWithOffset, parseIsoDate } from './time.ts';
import type { Embed, Json, JsonObject, RawMessage, SignatureDict, TaskHeaders, TaskMessage, TimeLimit } from './types.ts';

export const JSON_CONTENT_TYPE = 'application/json';

/** Everything needed to publish one task (apply_async's options, already resolved). */
export interface TaskCall {
  task: string;
  id: string;
  args: Json[];
  kwargs: JsonObject;
  eta?: Date | null;
  expires?: Date | null;
  timeLimit?: TimeLimit;
  /** empty/absent: the task's own id (a top-level task), as Celery does */
  rootId?: string | null;
  parentId?: string | null;
  group?: string | null;
  groupIndex?: number | null;
  retries?: number;
  shadow?: string | null;
  ignoreResult?: boolean;
  origin: string;
  replyTo: string;
  priority?: number;
  embed?: Partial<Embed>;
  /** override the computed repr headers (Celery's apply_async `argsrepr=` / `kwargsrepr=`, e.g. to hide secrets) */
  argsrepr?: string;
  kwargsrepr?: string;
  /** extra headers, written after the standard ones; they may not replace a standard header */
  headers?: JsonObject;
}

/** The headers a 5.2.6 client always writes, in its order. */
export const STANDARD_HEADER_KEYS = [
  'lang', 'task', 'id', 'shadow', 'eta', 'expires', 'group', 'group_index', 'retries', 'timelimit',
  'root_id', 'parent_id', 'argsrepr', 'kwargsrepr', 'origin', 'ignore_result',
] as const;

const STANDARD = new Set<string>(STANDARD_HEADER_KEYS);

/** Celery's `anon_nodename()`: the `origin` header of a plain client. */
export function celeryOrigin(pid: number, hostname: string): string {
  return `gen${pid}@${hostname}`;
}

function badOption(message: string, option: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_OPTION', message, { details: { option } });
}

function iso(date: Date | null | undefined, option: string): string | null {
  if (!date) return null;
  try {
    return isoWithOffset(date);
  } catch (err) {
    throw badOption(`${option} is not a date Python can hold: ${(err as Error).message}`, option);
  }
}

/** Build the message Celery 5.2.6's `apply_async` would publish for this call. `now` only feeds `expiration`. */
export function buildTaskMessage(call: TaskCall, now: Date): RawMessage {
  const headers: TaskHeaders & JsonObject = {
    // Celery ignores `lang`, but Flower and some consumers look at it: "py" is what every Celery
    // client sends, so we send it too, for maximum compatibility.
    lang: 'py',
    task: call.task,
    id: call.id,
    shadow: call.shadow ?? null,
    eta: iso(call.eta, 'eta'),
    expires: iso(call.expires, 'expires'),
    group: call.group ?? null,
    group_index: call.groupIndex ?? null,
    retries: call.retries ?? 0,
    timelimit: call.timeLimit ? [call.timeLimit[0], call.timeLimit[1]] : [null, null],
    root_id: call.rootId || call.id,
    parent_id: call.parentId ?? null,
    argsrepr: call.argsrepr ?? argsRepr(call.args),
    kwargsrepr: call.kwargsrepr ?? kwargsRepr(call.kwargs),
    origin: call.origin,
    ignore_result: call.ignoreResult ?? false,
  };
  for (const [key, value] of Object.entries(call.headers ?? {})) {
    if (STANDARD.has(key)) throw badOption(`header "${key}" is a standard task header and cannot be overridden`, 'headers');
    headers[key] = value;
  }

  const properties: RawMessage['properties'] = {
    correlation_id: call.id,
    reply_to: call.replyTo,
    delivery_mode: 2,
  };
  if (call.expires) {
    // Celery (app.send_task + kombu): seconds until expiry, negative clamped to 0, then
    // str(int(seconds * 1000)). RabbitMQ drops the message when it passes (§4.3).
    const ms = Math.max(0, Math.trunc(call.expires.getTime() - now.getTime()));
    properties.expiration = String(ms);
  }
  properties.priority = call.priority ?? 0;

  const embed: Embed = {
    callbacks: call.embed?.callbacks ?? null,
    errbacks: call.embed?.errbacks ?? null,
    chain: call.embed?.chain ?? null,
    chord: call.embed?.chord ?? null,
  };
  return {
    headers,
    properties,
    contentType: JSON_CONTENT_TYPE,
    contentEncoding: 'utf-8',
    body: JSON.stringify([call.args, call.kwargs, embed]),
  };
}

// ---------------------------------------------------------------------------------------------
// Parsing

function protocolError(message: string, details?: Record<string, unknown>): GatewayError {
  return new GatewayError('GW_ERR_PROTOCOL', message, details ? { details } : undefined);
}

function isObject(v: unknown): v is JsonObject {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

type Check<T> = (v: Json) => v is Json & T;
const isString: Check<string> = (v): v is string => typeof v === 'string';
const isStringOrNull: Check<string | null> = (v): v is string | null => v === null || typeof v === 'string';
const isInt: Check<number> = (v): v is number => Number.isInteger(v);
const isIntOrNull: Check<number | null> = (v): v is number | null => v === null || Number.isInteger(v);
const isBool: Check<boolean> = (v): v is boolean => typeof v === 'boolean';

/** A header's value when present (null counts as present), its default otherwise. */
function header<T>(headers: JsonObject, key: string, check: Check<T>, fallback: T, expected: string): T {
  const value = headers[key];
  if (value === undefined) return fallback;
  if (!check(value)) throw protocolError(`header "${key}" must be ${expected}, got ${JSON.stringify(value)}`, { header: key });
  return value;
}

function dateHeader(headers: JsonObject, key: 'eta' | 'expires'): string | null {
  const value = header(headers, key, isStringOrNull, null, 'an ISO 8601 string or null');
  // Celery rejects a message with an unparsable eta/expires (InvalidTaskError); so do we.
  if (value !== null && parseIsoDate(value) === null) {
    throw protocolError(`header "${key}" is not an ISO 8601 date-time: ${JSON.stringify(value)}`, { header: key });
  }
  return value;
}

const isLimit = (x: Json | undefined): x is number | null => x === null || (typeof x === 'number' && Number.isFinite(x));

function timeLimitHeader(headers: JsonObject): TimeLimit {
  const value = headers['timelimit'];
  // Celery reads `timelimit or (None, None)`: absent and null both mean "no limits".
  if (value === undefined || value === null) return [null, null];
  if (!Array.isArray(value) || value.length !== 2 || !isLimit(value[0]) || !isLimit(value[1])) {
    throw protocolError(`header "timelimit" must be [hard, soft] (seconds or null), got ${JSON.stringify(value)}`, { header: 'timelimit' });
  }
  return [value[0], value[1]];
}

function parseHeaders(raw: JsonObject): TaskHeaders {
  const task = raw['task'];
  const id = raw['id'];
  if (typeof task !== 'string' || task === '') throw protocolError('header "task" must be a non-empty string', { header: 'task' });
  if (typeof id !== 'string' || id === '') throw protocolError('header "id" must be a non-empty string', { header: 'id' });
  const headers: TaskHeaders = {
    lang: header(raw, 'lang', isString, 'py', 'a string'),
    task,
    id,
    shadow: header(raw, 'shadow', isStringOrNull, null, 'a string or null'),
    eta: dateHeader(raw, 'eta'),
    expires: dateHeader(raw, 'expires'),
    group: header(raw, 'group', isStringOrNull, null, 'a string or null'),
    group_index: header(raw, 'group_index', isIntOrNull, null, 'an integer or null'),
    retries: header(raw, 'retries', isInt, 0, 'an integer'),
    timelimit: timeLimitHeader(raw),
    root_id: header(raw, 'root_id', isStringOrNull, null, 'a string or null'),
    parent_id: header(raw, 'parent_id', isStringOrNull, null, 'a string or null'),
    // Celery's Request defaults both reprs to ''.
    argsrepr: header(raw, 'argsrepr', isString, '', 'a string'),
    kwargsrepr: header(raw, 'kwargsrepr', isString, '', 'a string'),
    origin: header(raw, 'origin', isStringOrNull, '', 'a string or null') ?? '',
    ignore_result: header(raw, 'ignore_result', isBool, false, 'a boolean'),
  };
  // Unknown headers are kept, as Celery keeps them in task.request (e.g. kombu's "redelivered"). A
  // "__proto__" header (an own key after JSON.parse) stays a key: assigned, it would set the prototype.
  for (const key in raw) {
    if (STANDARD.has(key)) continue;
    if (key === '__proto__') Object.defineProperty(headers, key, { value: raw[key], enumerable: true, writable: true, configurable: true });
    else headers[key] = raw[key]!;
  }
  return headers;
}

function parseSignature(value: Json, where: string): SignatureDict {
  if (!isObject(value) || typeof value['task'] !== 'string') {
    throw protocolError(`${where} must be a signature object with a string "task"`);
  }
  const { task, args = [], kwargs = {}, options = {}, subtask_type = null, immutable = false, ...rest } = value;
  if (!Array.isArray(args) || !isObject(kwargs) || !isObject(options) || !isStringOrNull(subtask_type) || typeof immutable !== 'boolean') {
    throw protocolError(`${where} has a malformed args/kwargs/options/subtask_type/immutable`);
  }
  // Missing keys get Signature's own defaults; unknown keys are kept for re-publishing.
  return { task, args, kwargs, options, subtask_type, immutable, ...rest };
}

function parseSignatureList(value: Json | undefined, key: string): SignatureDict[] | null {
  if (value === undefined || value === null) return null;
  if (!Array.isArray(value)) throw protocolError(`embed.${key} must be a list of signatures or null`);
  return value.map((item, i) => parseSignature(item, `embed.${key}[${i}]`));
}

function parseEmbed(value: Json): Embed {
  if (value !== null && !isObject(value)) throw protocolError('the third body element (embed) must be an object or null');
  const embed = value ?? {};
  const chord = embed['chord'];
  return {
    callbacks: parseSignatureList(embed['callbacks'], 'callbacks'),
    errbacks: parseSignatureList(embed['errbacks'], 'errbacks'),
    chain: parseSignatureList(embed['chain'], 'chain'),
    chord: chord === undefined || chord === null ? null : parseSignature(chord, 'embed.chord'),
  };
}

function parseBody(text: string): Json {
  try {
    return JSON.parse(text) as Json;
  } catch (err) {
    throw new GatewayError('GW_ERR_PROTOCOL', `message body is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
}

/**
 * Decode a task message and apply Celery's defaults. Refuses (GW_ERR_CONTENT_DISALLOWED) any content
 * type but application/json before looking at the body, so pickle/yaml are never deserialized;
 * anything else malformed is GW_ERR_PROTOCOL.
 */
export function parseTaskMessage(raw: RawMessage): TaskMessage {
  // transports give a string, but a hand-made message may carry anything: never a TypeError here
  const contentType = typeof raw.contentType === 'string' ? raw.contentType.trim().toLowerCase() : '';
  if (contentType !== JSON_CONTENT_TYPE) {
    throw new GatewayError('GW_ERR_CONTENT_DISALLOWED', `refusing content type ${JSON.stringify(raw.contentType)}: only ${JSON_CONTENT_TYPE} is accepted`, {
      details: { contentType: raw.contentType },
    });
  }
  if (!isObject(raw.headers)) throw protocolError('message headers must be an object');
  if (raw.headers['task'] === undefined) {
    const body = parseBody(raw.body);
    if (isObject(body) && 'task' in body) throw protocolError('protocol v1 is not supported (task in the body, no "task" header)');
    throw protocolError('missing "task" header: not a Celery protocol v2 task message', { header: 'task' });
  }
  const headers = parseHeaders(raw.headers);

  const body = parseBody(raw.body);
  if (!Array.isArray(body) || body.length !== 3) {
    throw protocolError('message body must be a JSON array of 3 elements [args, kwargs, embed]');
  }
  const [args, kwargs, embed] = body as [Json, Json, Json];
  if (!Array.isArray(args)) throw protocolError('body[0] (args) must be an array');
  if (!isObject(kwargs)) throw protocolError('body[1] (kwargs) must be an object');
  return { headers, properties: { ...raw.properties }, args, kwargs, embed: parseEmbed(embed) };
}
