/**
 * Celery remote control (pidbox, §10 of the protocol doc): the worker answers `ping`, `inspect registered
 * | active | reserved | scheduled | stats | revoked` and obeys `revoke` (with terminate), so `celery
 * inspect ping` lists it beside Python workers.
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
}

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
