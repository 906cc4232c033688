/**
 * Celery events (§9 of the protocol doc): the messages a worker publishes on the `celeryev` exchange so
 * `celery events`, Flower and `app.events.Receiver` see it. Pure: building only, the broker adapters
 * publish (Broker.publishEvent).
 *
 * Field names and order are Celery 5.2's (`event-*` fixtures): hostname, utcoffset, pid, clock, the
 * type's own fields, timestamp, type. The routing key is the type with `-` replaced by `.`
 * (`task-succeeded` → `task.succeeded`). Celery's prefork pool batches task events under `task.multi`;
 * we send each event on its own key, which a Receiver handles the same way.
 */
import { argsRepr, kwargsRepr, REPR_MAXSIZE, saferepr } from './repr.ts';
import type { EncodedException, Json, JsonObject, RawMessage, TaskMessage } from './types.ts';

/** Celery's event exchange: topic (durable) on AMQP, `/<db>.celeryev/<routing key>` pub/sub on Redis */
export const EVENT_EXCHANGE = 'celeryev';

/** Celery's worker_heartbeat / heartbeat freq, seconds */
export const HEARTBEAT_FREQ = 2.0;

export type WorkerEventType = 'worker-online' | 'worker-heartbeat' | 'worker-offline';
export type TaskEventType =
  | 'task-received' | 'task-started' | 'task-succeeded' | 'task-failed' | 'task-retried' | 'task-revoked' | 'task-rejected';

/** `task-succeeded` → `task.succeeded` */
export function eventRoutingKey(type: string): string {
  return type.replace(/-/g, '.');
}

/**
 * Celery's `utcoffset()`: Python's `time.timezone // 3600` (hours WEST of UTC, floored; `altzone` under
 * DST). JavaScript's getTimezoneOffset is minutes west of UTC for the date given, DST included.
 */
export function utcoffset(now: Date): number {
  return Math.floor(now.getTimezoneOffset() / 60);
}

/** What every event of one sender carries. */
export interface EventSender {
  hostname: string;
  pid: number;
}

/** One event object, in Celery's key order. */
export function buildEvent(type: string, fields: JsonObject, sender: EventSender, clock: number, now: Date): JsonObject {
  return {
    hostname: sender.hostname,
    utcoffset: utcoffset(now),
    pid: sender.pid,
    clock,
    ...fields,
    timestamp: now.getTime() / 1000,
    type,
  };
}

/** The message Celery's EventDispatcher publishes: JSON, transient, header `hostname`. */
export function eventMessage(event: JsonObject): RawMessage {
  return {
    headers: { hostname: event['hostname'] ?? null },
    properties: { delivery_mode: 1, priority: 0 },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: JSON.stringify(event),
  };
}

/** The worker-* fields (`event-worker-*` fixtures). */
export interface WorkerStatus {
  active: number;
  processed: number;
  /** 1, 5, 15 minutes (os.loadavg()) */
  loadavg: readonly number[];
  swIdent: string;
  swVer: string;
  swSys: string;
  freq?: number;
}

export function workerFields(status: WorkerStatus): JsonObject {
  return {
    freq: status.freq ?? HEARTBEAT_FREQ,
    active: status.active,
    processed: status.processed,
    // Celery: [round(x, 2) for x in os.getloadavg()]
    loadavg: status.loadavg.slice(0, 3).map((x) => Math.round(x * 100) / 100),
    sw_ident: status.swIdent,
    sw_ver: status.swVer,
    sw_sys: status.swSys,
  };
}

/** `task-received`: the request as the worker got it; args/kwargs are repr strings (the message's argsrepr). */
export function taskReceivedFields(message: TaskMessage): JsonObject {
  const h = message.headers;
  return {
    uuid: h.id,
    name: h.task,
    args: typeof h.argsrepr === 'string' ? h.argsrepr : argsRepr(message.args),
    kwargs: typeof h.kwargsrepr === 'string' ? h.kwargsrepr : kwargsRepr(message.kwargs),
    root_id: h.root_id ?? null,
    parent_id: h.parent_id ?? null,
    retries: h.retries ?? 0,
    eta: h.eta ?? null,
    expires: h.expires ?? null,
  };
}

export function taskStartedFields(taskId: string): JsonObject {
  return { uuid: taskId };
}

/** `task-succeeded`: result is Python's saferepr of the return value (1024 chars at most), runtime in seconds. */
export function taskSucceededFields(taskId: string, result: Json, runtimeSec: number): JsonObject {
  return { uuid: taskId, result: saferepr(result, REPR_MAXSIZE), runtime: runtimeSec };
}

/** Python's repr of an exception from its encoded form: `ValueError('boom')`. */
export function exceptionRepr(exc: EncodedException): string {
  const args = Array.isArray(exc.exc_message) ? exc.exc_message : [exc.exc_message as Json];
  return `${exc.exc_type}(${args.map((a) => saferepr(a)).join(', ')})`;
}

/** `task-failed` and `task-retried` share these fields. */
export function taskErrorFields(taskId: string, exc: EncodedException, traceback: string | null): JsonObject {
  return { uuid: taskId, exception: exceptionRepr(exc), traceback };
}

/** `task-revoked`: `expired` for an expired task, `terminated` for revoke(terminate=True). */
export function taskRevokedFields(taskId: string, options: { terminated: boolean; expired: boolean; signum?: number | null }): JsonObject {
  return { uuid: taskId, terminated: options.terminated, signum: options.signum ?? null, expired: options.expired };
}

/** `task-rejected`: a message the worker refused (Celery: Reject / unknown task). */
export function taskRejectedFields(taskId: string, requeue: boolean): JsonObject {
  return { uuid: taskId, requeue };
}
