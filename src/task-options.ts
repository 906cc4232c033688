/**
 * apply_async-style options → what goes on the wire. Pure: the clock is a parameter.
 * Same meaning as Celery's options of the same names.
 */
import type { Route } from './brokers/broker.ts';
import { GatewayError } from './errors.ts';
import { parseIsoDate } from './protocol/time.ts';
import type { TimeLimit } from './protocol/types.ts';

/** The options `POST /tasks/:name` accepts (Celery's apply_async names). */
export interface TaskOptions {
  task_id?: string;
  queue?: string;
  exchange?: string;
  routing_key?: string;
  priority?: number;
  /** seconds from now */
  countdown?: number;
  /** ISO 8601; without an offset it is UTC */
  eta?: string;
  /** seconds from now, or an ISO 8601 time */
  expires?: number | string;
  /** hard time limit, seconds */
  time_limit?: number;
  /** soft time limit, seconds */
  soft_time_limit?: number;
  ignore_result?: boolean;
}

export interface ResolvedOptions {
  route: Route;
  priority: number | undefined;
  eta: Date | null;
  expires: Date | null;
  timeLimit: TimeLimit;
  ignoreResult: boolean;
}

function badOption(message: string, option: string): GatewayError {
  return new GatewayError('GW_ERR_BAD_OPTION', message, { details: { option } });
}

function parseWhen(value: string, option: string): Date {
  const date = parseIsoDate(value);
  if (!date) throw badOption(`options.${option} must be an ISO 8601 date-time (e.g. "2030-01-02T03:04:05+00:00"), got ${JSON.stringify(value)}`, option);
  return date;
}

/**
 * Resolve options the way Celery's apply_async does: countdown becomes an eta, a numeric expires is
 * relative to now, a routing_key alone does not change the queue, an exchange routes through bindings.
 */
export function resolveOptions(options: TaskOptions, defaultQueue: string, now: Date): ResolvedOptions {
  if (options.countdown !== undefined && options.eta !== undefined) {
    throw badOption('options.countdown and options.eta are exclusive: give one', 'countdown');
  }
  let eta: Date | null = null;
  if (options.countdown !== undefined) eta = new Date(now.getTime() + options.countdown * 1000);
  else if (options.eta !== undefined) eta = parseWhen(options.eta, 'eta');

  let expires: Date | null = null;
  if (typeof options.expires === 'number') expires = new Date(now.getTime() + options.expires * 1000);
  else if (typeof options.expires === 'string') expires = parseWhen(options.expires, 'expires');
  if (expires && expires.getTime() <= now.getTime()) {
    throw badOption('options.expires is in the past: the task would never run', 'expires');
  }

  const hard = options.time_limit ?? null;
  const soft = options.soft_time_limit ?? null;
  if (hard !== null && soft !== null && soft > hard) {
    throw badOption('options.soft_time_limit must not exceed options.time_limit', 'soft_time_limit');
  }

  const queue = options.queue ?? defaultQueue;
  const route: Route = { queue };
  if (options.exchange !== undefined && options.exchange !== '') {
    route.exchange = options.exchange;
    route.routingKey = options.routing_key ?? queue;
  }
  return {
    route,
    priority: options.priority,
    eta,
    expires,
    timeLimit: [hard, soft],
    ignoreResult: options.ignore_result ?? false,
  };
}
