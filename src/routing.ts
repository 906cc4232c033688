/**
 * Celery's `task_routes`: task-name globs → default routing options (queue, exchange, routing_key,
 * priority), applied when a submission does not name its own. Pure.
 */
import { GatewayError } from './errors.ts';
import { globToRegExp } from './auth/keys.ts';
import type { TaskOptions } from './task-options.ts';

export type RouteOptions = Pick<TaskOptions, 'queue' | 'exchange' | 'routing_key' | 'priority'>;

export interface TaskRoute {
  pattern: string;
  test: RegExp;
  options: RouteOptions;
}

const KEYS = new Set(['queue', 'exchange', 'routing_key', 'priority']);
const NAME = /^[A-Za-z0-9_.:@#*-]{1,200}$/;

function bad(message: string): GatewayError {
  return new GatewayError('GW_ERR_CONFIG', `CELERY_TASK_ROUTES: ${message}`);
}

/**
 * Parse `{"reports.*": {"queue": "reports"}, "billing.charge": {"exchange": "billing", "routing_key": "charge"}}`.
 * The first matching pattern wins, in the order written (as Celery's dict routes).
 */
export function parseTaskRoutes(text: string): TaskRoute[] {
  if (!text.trim()) return [];
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) throw bad('expected an object of "task glob": {queue, exchange, routing_key, priority}');
  return Object.entries(raw as Record<string, unknown>).map(([pattern, value]) => {
    if (typeof value !== 'object' || value === null || Array.isArray(value)) throw bad(`route ${pattern}: expected an object`);
    const options: RouteOptions = {};
    for (const [key, v] of Object.entries(value as Record<string, unknown>)) {
      if (!KEYS.has(key)) throw bad(`route ${pattern}: unknown option ${key} (use queue, exchange, routing_key, priority)`);
      if (key === 'priority') {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < 0 || v > 255) throw bad(`route ${pattern}: priority must be an integer 0..255`);
        options.priority = v;
      } else {
        if (typeof v !== 'string' || !NAME.test(v)) throw bad(`route ${pattern}: ${key} must be a queue/exchange name`);
        options[key as 'queue' | 'exchange' | 'routing_key'] = v;
      }
    }
    return { pattern, test: globToRegExp(pattern), options };
  });
}

/** The submission's options completed by the first matching route; its own options win. */
export function applyRoutes(routes: readonly TaskRoute[], task: string, options: TaskOptions): TaskOptions {
  const route = routes.find((r) => r.test.test(task));
  if (!route) return options;
  // a submission that names its own queue or exchange keeps its whole routing
  if (options.queue !== undefined || options.exchange !== undefined) return options;
  return { ...route.options, ...options };
}
