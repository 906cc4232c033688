/**
 * Celery remote-control (pidbox) messages (§10). Pure.
 */
import type { RawMessage } from './types.ts';

/** Celery's broadcast exchange for remote control */
export const PIDBOX_EXCHANGE = 'celery.pidbox';

export interface RevokeOptions {
  terminate: boolean;
  /** the signal a Python prefork worker sends to the running task with terminate */
  signal: string;
}

/**
 * `app.control.revoke(id, terminate=…, signal=…)`: a broadcast with no reply; it expires one second after
 * `now` (Celery's default broadcast timeout), so a worker that reads it later ignores it.
 */
export function revokeMessage(taskId: string, options: RevokeOptions, now: Date, clock = 1): RawMessage {
  const body = {
    method: 'revoke',
    arguments: { task_id: taskId, terminate: options.terminate, signal: options.signal },
    destination: null,
    pattern: null,
    matcher: null,
  };
  return {
    headers: { clock, expires: now.getTime() / 1000 + 1 },
    properties: { delivery_mode: 2, priority: 0 },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: JSON.stringify(body),
  };
}

/** The exchange Celery's control replies go to */
export const REPLY_EXCHANGE = 'reply.celery.pidbox';

/** A broadcast request that asks for replies (`app.control.inspect().<method>()`, `ping`). */
export function controlRequest(method: string, args: Record<string, unknown>, replyTo: string, ticket: string, now: Date, timeoutSec: number, clock = 1): RawMessage {
  const body = {
    method,
    arguments: args,
    destination: null,
    pattern: null,
    matcher: null,
    ticket,
    reply_to: { exchange: REPLY_EXCHANGE, routing_key: replyTo },
  };
  return {
    headers: { clock, expires: now.getTime() / 1000 + timeoutSec },
    properties: { delivery_mode: 2, priority: 0 },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: JSON.stringify(body),
  };
}
