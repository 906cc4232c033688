/**
 * Schedule math, pure: when an entry's ticks fall, and which of them a beat pass publishes.
 * Times are epoch milliseconds; "now" is always a parameter.
 *
 * Each entry has a cursor in the store: every tick at or before it has been dealt with (published or
 * skipped). A pass publishes the ticks in (cursor, now]; see planRuns for late and missed ticks.
 */
import { cronNext, parseCron } from './cron.ts';
import { parseAt, parseInterval, type CatchUp, type ScheduleEntry } from './entry.ts';

export interface Schedule {
  readonly kind: 'every' | 'cron' | 'at';
  /** the first tick strictly after `after`, or null when there is none */
  next(after: number): number | null;
}

/** every: ticks at whole multiples of the interval since the Unix epoch (every 10 s → :00, :10, …). */
export function intervalSchedule(intervalMs: number): Schedule {
  return { kind: 'every', next: (after) => (Math.floor(after / intervalMs) + 1) * intervalMs };
}

export function atSchedule(instant: number): Schedule {
  return { kind: 'at', next: (after) => (after < instant ? instant : null) };
}

export function cronSchedule(expression: string, zone = 'UTC'): Schedule {
  const spec = parseCron(expression);
  // a pass asks for the tick after the same cursor again and again: remember the last answer
  let memo: { after: number; next: number | null } | undefined;
  return {
    kind: 'cron',
    next: (after) => {
      if (memo?.after !== after) memo = { after, next: cronNext(spec, zone, after) };
      return memo.next;
    },
  };
}

/** The schedule of a validated entry (validateEntry has checked every field already). */
export function compileSchedule(entry: Pick<ScheduleEntry, 'every' | 'cron' | 'at' | 'timezone'>): Schedule {
  if (entry.every !== undefined) return intervalSchedule(parseInterval(entry.every));
  if (entry.cron !== undefined) return cronSchedule(entry.cron, entry.timezone);
  if (entry.at !== undefined) {
    const instant = parseAt(entry.at, entry.timezone);
    if (instant !== null) return atSchedule(instant);
  }
  throw new TypeError(`schedule entry has no valid every, cron or at`);
}

/** The next `count` ticks strictly after `after`. */
export function nextRuns(schedule: Schedule, after: number, count: number): number[] {
  const out: number[] = [];
  for (let t = schedule.next(after); t !== null && out.length < count; t = schedule.next(t)) out.push(t);
  return out;
}

/** One step of a pass: move the cursor to `cursor` (compare-and-set), then publish if `publish`. */
export interface RunStep {
  /** the tick this step runs (for a collapsed catch-up run: the first missed tick) */
  tick: number;
  /** the cursor after this step */
  cursor: number;
  publish: boolean;
  /** set when this step also disposes of ticks missed since then (collapsed or skipped) */
  missedSince?: number;
}

export interface PlanOptions {
  /** a tick later than this is "late" and still runs on its own; older ones are "missed" */
  graceMs: number;
  catchUp: CatchUp;
  /** at most this many steps per pass (the rest come next pass) */
  max?: number;
}

/**
 * The steps a pass takes at `now` for an entry whose cursor is `cursor`:
 * - each tick in [now - grace, now] is run on its own, oldest first (a pass delayed by a leader change
 *   within the lock TTL publishes every tick of the gap, once each);
 * - ticks older than now - grace are "missed" (beat was down or had no leader for longer than grace):
 *   with catch-up "once" they collapse into a single run now, "skip" drops them; either way, when a
 *   late tick runs in the same pass, that run stands for them and nothing else is published.
 */
export function planRuns(schedule: Schedule, cursor: number, now: number, options: PlanOptions): RunStep[] {
  const max = options.max ?? 100;
  const first = schedule.next(cursor);
  if (first === null || first > now) return [];
  const boundary = now - options.graceMs;
  const missed = first < boundary;
  const steps: RunStep[] = [];
  for (let t = missed ? schedule.next(boundary - 1) : first; t !== null && t <= now && steps.length < max; t = schedule.next(t)) {
    steps.push({ tick: t, cursor: t, publish: true });
  }
  if (missed) {
    if (steps[0]) steps[0].missedSince = first;
    else steps.push({ tick: first, cursor: now, publish: options.catchUp === 'once', missedSince: first });
  }
  return steps;
}
