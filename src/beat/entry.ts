/**
 * Schedule entries: the JSON shape (one schema for the HTTP API and schedule files), and validation
 * into a normalized entry. Errors carry GW_ERR_SCHEDULE_* codes and name the entry.
 */
import { Ajv, type ErrorObject } from 'ajv';
import { GatewayError, isGatewayError, type ErrorCode } from '../errors.ts';
import { TASK_NAME_PATTERN, taskOptionsSchema } from '../http/schemas.ts';
import { parseIsoDate } from '../protocol/time.ts';
import type { Json, JsonObject } from '../protocol/types.ts';
import { resolveOptions, type TaskOptions } from '../task-options.ts';
import { parseCron } from './cron.ts';
import { instantOfWall, isValidTimeZone } from './tz.ts';

export type CatchUp = 'once' | 'skip';
export const CATCH_UP_POLICIES: readonly CatchUp[] = ['once', 'skip'];

/** A validated entry as stored. Exactly one of every / cron / at is set. */
export interface ScheduleEntry {
  /** first key: the Redis store relies on the serialized entry starting with it */
  enabled: boolean;
  name: string;
  task: string;
  args: Json[];
  kwargs: JsonObject;
  options: TaskOptions;
  /** seconds (number) or a duration such as "10s", "5m", "1h30m" */
  every?: number | string;
  /** five-field cron expression */
  cron?: string;
  /** one-off time, ISO 8601; without an offset it is read in `timezone` (default UTC) */
  at?: string;
  /** IANA zone for cron and for an `at` without offset; default UTC */
  timezone?: string;
  /** what to do with ticks missed by more than the grace period (default: the beat's setting) */
  catch_up?: CatchUp;
  /** where it came from: a schedule file (replaced on each beat start) or the HTTP API */
  source: 'file' | 'api';
}

export const SCHEDULE_NAME_PATTERN = '^[A-Za-z0-9_.:@-]{1,200}$';

/** JSON schema of an entry as a client or a schedule file writes it. */
export const scheduleEntryInputSchema = {
  type: 'object',
  additionalProperties: false,
  required: ['task'],
  properties: {
    name: { type: 'string', pattern: SCHEDULE_NAME_PATTERN, description: 'Must equal the name in the path when given' },
    task: { type: 'string', pattern: TASK_NAME_PATTERN, description: 'Celery task name', examples: ['tasks.add'] },
    args: { type: 'array', description: 'Positional arguments', examples: [[2, 3]] },
    kwargs: { type: 'object', additionalProperties: true, description: 'Keyword arguments' },
    options: taskOptionsSchema,
    every: {
      description: 'Interval: seconds, or a duration such as "10s", "5m", "1h", "1h30m", "1d" (at least 1 s). Ticks are aligned to the Unix epoch.',
      anyOf: [{ type: 'number' }, { type: 'string', maxLength: 32 }],
      examples: [10, '5m'],
    },
    cron: { type: 'string', maxLength: 200, description: 'Five-field cron expression (minute hour day-of-month month day-of-week), or @hourly, @daily, …', examples: ['*/5 * * * *'] },
    at: { type: 'string', maxLength: 64, description: 'One-off run time, ISO 8601 (local to `timezone` when it has no offset)', examples: ['2030-01-01T09:00:00+01:00'] },
    timezone: { type: 'string', maxLength: 64, description: 'IANA time zone for `cron` and `at` (default UTC)', examples: ['Europe/Berlin'] },
    catch_up: { type: 'string', enum: CATCH_UP_POLICIES, description: 'Missed ticks: "once" runs them once, "skip" drops them (default: the beat\'s --catch-up)' },
    enabled: { type: 'boolean', description: 'false keeps the entry without running it (default true)' },
  },
} as const;

const validateShape = new Ajv({ allErrors: false, strict: false, coerceTypes: false }).compile(scheduleEntryInputSchema);

function fail(code: ErrorCode, entry: string, message: string, field?: string): GatewayError {
  return new GatewayError(code, `schedule entry ${JSON.stringify(entry)}: ${message}`, { details: { entry, ...(field ? { field } : {}) } });
}

export function shapeMessage(error: ErrorObject | undefined): string {
  if (!error) return 'is invalid';
  const where = error.instancePath === '' ? '' : `${error.instancePath.slice(1).replaceAll('/', '.')} `;
  const params = error.params as { additionalProperty?: string; allowedValues?: unknown[] };
  const extra = params.additionalProperty !== undefined ? `: ${JSON.stringify(params.additionalProperty)}`
    : params.allowedValues !== undefined ? `: ${params.allowedValues.map((v) => JSON.stringify(v)).join(', ')}` : '';
  return `${where}${error.message ?? 'is invalid'}${extra}`;
}

const UNIT_MS: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000 };
const MAX_INTERVAL_MS = 366 * 86_400_000;

/** An interval in milliseconds: seconds as a number, or "10s" / "5m" / "1h30m" / "2d" / "1500ms". */
export function parseInterval(value: number | string): number {
  let ms: number;
  if (typeof value === 'number') {
    ms = value * 1000;
  } else if (/^\s*\d+(\.\d+)?\s*$/.test(value)) {
    ms = Number(value) * 1000;
  } else if (/^(\d+(\.\d+)?(ms|s|m|h|d))+$/.test(value.trim())) {
    ms = 0;
    for (const m of value.trim().matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h|d)/g)) ms += Number(m[1]) * UNIT_MS[m[2]!]!;
  } else {
    throw new GatewayError('GW_ERR_SCHEDULE_BAD_INTERVAL', `every ${JSON.stringify(value)} is not a duration: use seconds or e.g. "10s", "5m", "1h"`);
  }
  if (!Number.isFinite(ms) || ms <= 0) throw new GatewayError('GW_ERR_SCHEDULE_BAD_INTERVAL', `every ${JSON.stringify(value)} must be positive`);
  ms = Math.round(ms);
  if (ms < 1000) throw new GatewayError('GW_ERR_SCHEDULE_BAD_INTERVAL', `every ${JSON.stringify(value)} is shorter than the 1 s minimum`);
  if (ms > MAX_INTERVAL_MS) throw new GatewayError('GW_ERR_SCHEDULE_BAD_INTERVAL', `every ${JSON.stringify(value)} is longer than 366 days: use cron or at`);
  return ms;
}

const HAS_OFFSET = /(?:[Zz]|[+-]\d{2}(?::?\d{2})?)$/;

/** The instant of an `at` time: its own offset, else wall time in `zone`. Null when not ISO 8601. */
export function parseAt(value: string, zone = 'UTC'): number | null {
  const parsed = parseIsoDate(value);
  if (!parsed) return null;
  if (/T|\s/.test(value.trim()) && HAS_OFFSET.test(value.trim())) return parsed.getTime();
  return instantOfWall(zone, parsed.getTime());
}

/**
 * Validate `raw` (API body or file entry) into a normalized entry, or throw a GatewayError:
 * GW_ERR_SCHEDULE_INVALID (shape, missing task, not exactly one of every/cron/at, bad `at`),
 * GW_ERR_SCHEDULE_BAD_INTERVAL, GW_ERR_SCHEDULE_BAD_CRON, GW_ERR_SCHEDULE_BAD_TIMEZONE, GW_ERR_BAD_OPTION.
 * `name` wins over raw.name (they must agree when both are given).
 */
export function validateEntry(raw: unknown, opts: { name?: string; source?: 'file' | 'api' } = {}): ScheduleEntry {
  const rawName = raw && typeof raw === 'object' && !Array.isArray(raw) ? (raw as { name?: unknown }).name : undefined;
  const label = opts.name ?? (typeof rawName === 'string' ? rawName : '?');
  if (!validateShape(raw)) throw fail('GW_ERR_SCHEDULE_INVALID', label, shapeMessage(validateShape.errors?.[0]));
  const input = raw as { name?: string } & Omit<Partial<ScheduleEntry>, 'name' | 'source'>;
  const name = opts.name ?? input.name;
  if (name === undefined) throw fail('GW_ERR_SCHEDULE_INVALID', label, 'must have a name');
  if (!new RegExp(SCHEDULE_NAME_PATTERN).test(name)) throw fail('GW_ERR_SCHEDULE_INVALID', label, 'name must be 1-200 letters, digits or _ . : @ -', 'name');
  if (input.name !== undefined && input.name !== name) throw fail('GW_ERR_SCHEDULE_INVALID', label, `name ${JSON.stringify(input.name)} differs from ${JSON.stringify(name)}`, 'name');

  const kinds = (['every', 'cron', 'at'] as const).filter((k) => input[k] !== undefined);
  if (kinds.length !== 1) {
    throw fail('GW_ERR_SCHEDULE_INVALID', name, kinds.length === 0 ? 'needs one of every, cron or at' : `has ${kinds.join(' and ')}: give exactly one`);
  }
  if (input.timezone !== undefined) {
    if (input.every !== undefined) throw fail('GW_ERR_SCHEDULE_INVALID', name, 'timezone applies to cron and at, not to every', 'timezone');
    if (!isValidTimeZone(input.timezone)) throw fail('GW_ERR_SCHEDULE_BAD_TIMEZONE', name, `unknown time zone ${JSON.stringify(input.timezone)}: use an IANA name such as "Europe/Berlin" or "UTC"`, 'timezone');
  }
  try {
    if (input.every !== undefined) parseInterval(input.every);
    if (input.cron !== undefined) parseCron(input.cron);
  } catch (err) {
    if (isGatewayError(err)) throw fail(err.code, name, err.message, kinds[0]);
    throw err;
  }
  if (input.at !== undefined && parseAt(input.at, input.timezone) === null) {
    throw fail('GW_ERR_SCHEDULE_INVALID', name, `at ${JSON.stringify(input.at)} is not an ISO 8601 date-time`, 'at');
  }
  const options = input.options ?? {};
  try {
    resolveOptions(options, 'celery', new Date(0));
  } catch (err) {
    if (isGatewayError(err)) throw fail(err.code, name, err.message, 'options');
    throw err;
  }
  const entry: ScheduleEntry = {
    enabled: input.enabled ?? true,
    name,
    task: input.task!,
    args: input.args ?? [],
    kwargs: input.kwargs ?? {},
    options,
    source: opts.source ?? 'api',
  };
  if (input.every !== undefined) entry.every = input.every;
  if (input.cron !== undefined) entry.cron = input.cron;
  if (input.at !== undefined) entry.at = input.at;
  if (input.timezone !== undefined) entry.timezone = input.timezone;
  if (input.catch_up !== undefined) entry.catch_up = input.catch_up;
  return entry;
}
