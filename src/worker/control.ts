/**
 * Celery remote control (pidbox, §10 of the protocol doc): the worker answers `ping`, `inspect registered
 * | active | reserved | scheduled | stats | revoked` and obeys `revoke` (with terminate), `enable_events`,
 * `disable_events`, `rate_limit`, `time_limit`, `heartbeat` and `shutdown` with Celery's replies, so `celery inspect
 * ping` lists it beside Python workers and Flower can drive it.
 */
import type { Logger } from 'pino';
import type { Broker } from '../brokers/broker.ts';
import { PIDBOX_EXCHANGE } from '../protocol/control.ts';
import type { Json, JsonObject, RawMessage } from '../protocol/types.ts';

export interface ControlRequest {
  method: string;
  arguments: JsonObject;
  destination: string[] | null;
  reply_to: { exchange: string; routing_key: string } | null;
  ticket: string | null;
}

/** What the worker exposes to remote control. */
export interface ControlTarget {
  hostname: string;
  registered(): string[];
  active(): Json[];
  reserved(): Json[];
  scheduled(): Json[];
  stats(): JsonObject;
  revoked(): string[];
  revoke(taskIds: string[], terminate: boolean): void;
  /** turn task events on/off; false when they already were */
  setTaskEvents(enabled: boolean): boolean;
  /** Celery's rate_limit command: a reply `{ok}` or `{error}` */
  rateLimit(taskName: string, rate: string | number | null): JsonObject;
  /** Celery's time_limit command (seconds, null = none): a reply `{ok}` or `{error}` */
  timeLimit(taskName: string, hard: number | null, soft: number | null): JsonObject;
  /** Celery's shutdown command: warm shutdown of this worker (no reply, as Celery's) */
  shutdown(reason: string): void;
  /** Celery's heartbeat command (a Receiver's wakeup): send a worker-heartbeat now (no reply) */
  heartbeat(): void;
}

const limit = (v: Json | undefined): number | null => (typeof v === 'number' && Number.isFinite(v) ? v : typeof v === 'string' && v.trim() !== '' && Number.isFinite(Number(v)) ? Number(v) : null);

/** Parse a pidbox request; null for what is not one (or has expired). */
export function parseControl(message: RawMessage, nowSec: number): ControlRequest | null {
  let body: unknown;
  try {
    body = JSON.parse(message.body);
  } catch {
    return null;
  }
  if (typeof body !== 'object' || body === null || typeof (body as { method?: unknown }).method !== 'string') return null;
  const expires = message.headers['expires'];
  if (typeof expires === 'number' && expires > 0 && expires < nowSec) return null;
  const b = body as Record<string, unknown>;
  const replyTo = b['reply_to'] as { exchange?: unknown; routing_key?: unknown } | null | undefined;
  return {
    method: b['method'] as string,
    arguments: (typeof b['arguments'] === 'object' && b['arguments'] !== null ? b['arguments'] : {}) as JsonObject,
    destination: Array.isArray(b['destination']) ? (b['destination'] as string[]) : null,
    reply_to: replyTo && typeof replyTo.exchange === 'string' && typeof replyTo.routing_key === 'string' ? { exchange: replyTo.exchange, routing_key: replyTo.routing_key } : null,
    ticket: typeof b['ticket'] === 'string' ? b['ticket'] : null,
  };
}

/** The reply to one request, or undefined for a method we do not answer (Python logs those too). */
export function answer(request: ControlRequest, target: ControlTarget): Json | undefined {
  const args = request.arguments;
  switch (request.method) {
    case 'ping': return { ok: 'pong' };
    case 'registered': return target.registered();
    case 'active': return target.active();
    case 'reserved': return target.reserved();
    case 'scheduled': return target.scheduled();
    case 'stats': return target.stats();
    case 'revoked': return target.revoked();
    case 'revoke': {
      const ids = Array.isArray(args['task_id']) ? (args['task_id'] as string[]) : [String(args['task_id'])];
      target.revoke(ids, args['terminate'] === true);
      return { ok: `tasks ${ids.join(', ')} flagged as revoked` };
    }
    case 'enable_events': return { ok: target.setTaskEvents(true) ? 'task events enabled' : 'task events already enabled' };
    case 'disable_events': return { ok: target.setTaskEvents(false) ? 'task events disabled' : 'task events already disabled' };
    case 'rate_limit': {
      const rate = args['rate_limit'];
      return target.rateLimit(String(args['task_name']), typeof rate === 'string' || typeof rate === 'number' ? rate : null);
    }
    case 'time_limit': return target.timeLimit(String(args['task_name']), limit(args['hard']), limit(args['soft']));
    case 'heartbeat': {
      target.heartbeat();
      return undefined;
    }
    case 'shutdown': {
      target.shutdown(typeof args['msg'] === 'string' ? args['msg'] : 'Got shutdown from remote');
      return undefined;
    }
    default: return undefined;
  }
}

/** Listen on the pidbox and answer; resolves with a function that stops. */
export async function startRemoteControl(broker: Broker, target: ControlTarget, logger: Logger): Promise<() => Promise<void>> {
  let clock = 0;
  return broker.listenBroadcast(PIDBOX_EXCHANGE, `${target.hostname}.celery.pidbox`, (message) => {
    const request = parseControl(message, Date.now() / 1000);
    if (!request || (request.destination && !request.destination.includes(target.hostname))) return;
    let reply: Json | undefined;
    try {
      reply = answer(request, target);
    } catch (err) {
      reply = { error: String(err) };
    }
    if (reply === undefined || !request.reply_to || !request.ticket) return;
    clock += 1;
    const out: RawMessage = {
      headers: { ticket: request.ticket, clock },
      properties: { delivery_mode: 1 },
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      body: JSON.stringify({ [target.hostname]: reply }),
    };
    broker.publishToExchange(out, request.reply_to.exchange, request.reply_to.routing_key).catch((err: unknown) => {
      logger.warn({ err, method: request.method }, 'could not send a remote-control reply');
    });
  });
}
