/**
 * Five-field cron expressions (minute hour day-of-month month day-of-week), Vixie cron syntax and
 * semantics, evaluated in an IANA time zone. Pure: the "after" instant is always a parameter.
 *
 * Syntax per field: `*`, `5`, `1-5`, `*\/15`, `10-50/10`, `5/15` (= 5-max/15), lists `1,15,30`; month
 * and weekday names (`jan`, `mon-fri`); weekday 0 and 7 are Sunday. Macros: @yearly @annually
 * @monthly @weekly @daily @midnight @hourly.
 * Day matching as Vixie cron: when both day fields are restricted (neither starts with `*`) a day
 * matches if EITHER does; otherwise both must.
 * Daylight saving time (see docs/beat.md): with a fixed hour field, a time skipped by the clocks going
 * forward runs shifted by the gap (02:30 → 03:30), and a time repeated by the clocks going back runs
 * once (its first occurrence); with an hour field of `*` the schedule follows real time (no extra run
 * in the gap, runs in both repeated hours).
 */
import { GatewayError } from '../errors.ts';
import { nextTransition, offsetAt } from './tz.ts';

export interface CronSpec {
  readonly source: string;
  readonly minutes: readonly boolean[];
  readonly hours: readonly boolean[];
  /** index 1..31 */
  readonly days: readonly boolean[];
  /** index 1..12 */
  readonly months: readonly boolean[];
  /** index 0..6, Sunday = 0 */
  readonly weekdays: readonly boolean[];
  readonly dayStar: boolean;
  readonly weekdayStar: boolean;
  /** the hour field covers all 24 hours */
  readonly everyHour: boolean;
}

interface Field {
  name: string;
  min: number;
  max: number;
  names?: readonly string[];
}

const FIELDS: readonly Field[] = [
  { name: 'minute', min: 0, max: 59 },
  { name: 'hour', min: 0, max: 23 },
  { name: 'day of month', min: 1, max: 31 },
  { name: 'month', min: 1, max: 12, names: ['jan', 'feb', 'mar', 'apr', 'may', 'jun', 'jul', 'aug', 'sep', 'oct', 'nov', 'dec'] },
  { name: 'day of week', min: 0, max: 7, names: ['sun', 'mon', 'tue', 'wed', 'thu', 'fri', 'sat'] },
];

const MACROS: Record<string, string> = {
  '@yearly': '0 0 1 1 *',
  '@annually': '0 0 1 1 *',
  '@monthly': '0 0 1 * *',
  '@weekly': '0 0 * * 0',
  '@daily': '0 0 * * *',
  '@midnight': '0 0 * * *',
  '@hourly': '0 * * * *',
};

const DAYS_IN_MONTH = [31, 29, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];
const MINUTE = 60_000;
/** how far ahead a search goes before deciding the expression never fires again */
const HORIZON_YEARS = 30;

function badCron(source: string, message: string): GatewayError {
  return new GatewayError('GW_ERR_SCHEDULE_BAD_CRON', `cron ${JSON.stringify(source)}: ${message}`, { details: { field: 'cron' } });
}

function parseValue(text: string, field: Field, source: string): number {
  if (/^\d{1,2}$/.test(text)) {
    const n = Number(text);
    if (n < field.min || n > field.max) throw badCron(source, `${field.name} ${n} is out of range ${field.min}-${field.max}`);
    return n;
  }
  const index = field.names?.indexOf(text.toLowerCase()) ?? -1;
  if (index < 0) throw badCron(source, `${field.name} ${JSON.stringify(text)} is not a number${field.names ? ' or a name' : ''}`);
  return index + field.min;
}

function parseField(text: string, field: Field, source: string): boolean[] {
  const set: boolean[] = new Array<boolean>(field.max + 1).fill(false);
  for (const item of text.split(',')) {
    const m = /^([^/-]+)(?:-([^/-]+))?(?:\/(\d{1,3}))?$/.exec(item);
    if (!m) throw badCron(source, `${field.name} ${JSON.stringify(item)} is not a value, range or step`);
    const [, a = '', b, stepText] = m;
    const step = stepText === undefined ? 1 : Number(stepText);
    if (step < 1) throw badCron(source, `${field.name} step must be at least 1`);
    let lo: number;
    let hi: number;
    if (a === '*') {
      if (b !== undefined) throw badCron(source, `${field.name} ${JSON.stringify(item)}: * cannot start a range`);
      lo = field.min;
      hi = field.max;
    } else {
      lo = parseValue(a, field, source);
      hi = b !== undefined ? parseValue(b, field, source) : stepText !== undefined ? field.max : lo;
      if (hi < lo) throw badCron(source, `${field.name} range ${item} runs backwards`);
    }
    for (let v = lo; v <= hi; v += step) set[v] = true;
  }
  return set;
}

/** Parse a cron expression; throws GW_ERR_SCHEDULE_BAD_CRON naming the faulty field. */
export function parseCron(expression: string): CronSpec {
  const source = expression;
  const text = MACROS[expression.trim().toLowerCase()] ?? expression.trim();
  if (text.startsWith('@')) throw badCron(source, `unknown macro; use one of ${Object.keys(MACROS).join(' ')}`);
  const parts = text.split(/\s+/);
  if (parts.length !== 5) throw badCron(source, `expected 5 fields (minute hour day-of-month month day-of-week), got ${parts.length}`);
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => parseField(p, FIELDS[i]!, source)) as [boolean[], boolean[], boolean[], boolean[], boolean[]];
  if (weekdays[7]) weekdays[0] = true;
  weekdays.length = 7;
  const spec: CronSpec = {
    source,
    minutes,
    hours,
    days,
    months,
    weekdays,
    dayStar: parts[2]!.startsWith('*'),
    weekdayStar: parts[4]!.startsWith('*'),
    everyHour: hours.every(Boolean),
  };
  // With only the day of month deciding, a day that no chosen month has (Feb 30) never comes.
  if (!spec.dayStar && spec.weekdayStar) {
    const possible = months.some((on, m) => on && days.some((d, day) => d && day <= DAYS_IN_MONTH[m - 1]!));
    if (!possible) throw badCron(source, 'no chosen month has the chosen day of month: it would never run');
  }
  return spec;
}

function dayMatches(spec: CronSpec, year: number, month: number, day: number): boolean {
  const byDay = spec.days[day] === true;
  const byWeekday = spec.weekdays[new Date(Date.UTC(year, month - 1, day)).getUTCDay()] === true;
  return spec.dayStar || spec.weekdayStar ? byDay && byWeekday : byDay || byWeekday;
}

/** The first wall minute strictly after `wall` (a wall time, see tz.ts) that matches, or null. */
export function nextWallMatch(spec: CronSpec, wall: number): number | null {
  let t = Math.floor(wall / MINUTE) * MINUTE + MINUTE;
  const end = t + HORIZON_YEARS * 366 * 86_400_000;
  while (t < end) {
    const d = new Date(t);
    const y = d.getUTCFullYear();
    const mo = d.getUTCMonth(); // 0-based
    const day = d.getUTCDate();
    const h = d.getUTCHours();
    if (!spec.months[mo + 1]) { t = Date.UTC(y, mo + 1, 1); continue; }
    if (!dayMatches(spec, y, mo + 1, day)) { t = Date.UTC(y, mo, day + 1); continue; }
    if (!spec.hours[h]) { t = Date.UTC(y, mo, day, h + 1); continue; }
    const m = spec.minutes.indexOf(true, d.getUTCMinutes());
    if (m < 0) { t = Date.UTC(y, mo, day, h + 1); continue; }
    return Date.UTC(y, mo, day, h, m);
  }
  return null;
}

/**
 * The first instant strictly after `after` at which the expression fires in `zone`, or null if it
 * never does again (within 30 years). Works through the stretches of constant UTC offset between
 * `after` and the answer; see the DST rules in the header.
 */
export function cronNext(spec: CronSpec, zone: string, after: number): number | null {
  let start = after;
  let from = after; // first segment: walls strictly after wall(after)
  let skipBelow = -Infinity; // walls already run in the first occurrence of a repeated hour
  let best = Infinity;
  for (let segment = 0; segment < 256; segment++) {
    const offset = offsetAt(zone, start);
    const wall = nextWallMatch(spec, Math.max(from + offset, skipBelow - 1));
    if (wall === null) break;
    const candidate = wall - offset;
    if (candidate >= best) break;
    const change = nextTransition(zone, start, candidate);
    if (change === null) return candidate;
    const next = offsetAt(zone, change);
    if (next > offset && !spec.everyHour) {
      // clocks go forward: walls [change+offset, change+next) do not exist; run them shifted by the gap
      const skipped = nextWallMatch(spec, change + offset - 1);
      if (skipped !== null && skipped < change + next) best = Math.min(best, skipped - offset);
    }
    skipBelow = next < offset && !spec.everyHour ? change + offset : -Infinity;
    start = change;
    from = change - 1;
  }
  return best === Infinity ? null : best;
}
