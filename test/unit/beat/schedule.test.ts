/**
 * Entries, intervals, one-offs and the catch-up plan, with fake time.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseAt, parseInterval, validateEntry } from '../../../src/beat/entry.ts';
import { parseScheduleData } from '../../../src/beat/file.ts';
import { atSchedule, compileSchedule, intervalSchedule, nextRuns, planRuns } from '../../../src/beat/schedule.ts';
import { isGatewayError, type ErrorCode } from '../../../src/errors.ts';

const T = (s: string): number => Date.parse(s);
const iso = (t: number): string => new Date(t).toISOString();

function rejects(fn: () => unknown, code: ErrorCode, pattern: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isGatewayError(err), String(err));
    assert.equal(err.code, code, err.message);
    assert.match(err.message, pattern);
    return true;
  });
}

describe('intervals', () => {
  it('reads seconds and durations', () => {
    assert.equal(parseInterval(10), 10_000);
    assert.equal(parseInterval('10'), 10_000);
    assert.equal(parseInterval('10s'), 10_000);
    assert.equal(parseInterval('5m'), 300_000);
    assert.equal(parseInterval('1h'), 3_600_000);
    assert.equal(parseInterval('1h30m'), 5_400_000);
    assert.equal(parseInterval('1d'), 86_400_000);
    assert.equal(parseInterval('1500ms'), 1500);
    assert.equal(parseInterval(2.5), 2500);
  });

  it('refuses negative, zero, too short and unreadable intervals', () => {
    rejects(() => parseInterval(-5), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /must be positive/);
    rejects(() => parseInterval(0), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /must be positive/);
    rejects(() => parseInterval('-5s'), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /not a duration/);
    rejects(() => parseInterval('0.5'), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /1 s minimum/);
    rejects(() => parseInterval('ten seconds'), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /not a duration/);
    rejects(() => parseInterval('400d'), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /366 days/);
  });

  it('ticks at multiples of the interval since the epoch, through month ends and leap days', () => {
    const every10 = intervalSchedule(10_000);
    assert.equal(iso(every10.next(T('2025-01-01T00:00:03Z'))!), '2025-01-01T00:00:10.000Z');
    assert.equal(iso(every10.next(T('2025-01-01T00:00:10Z'))!), '2025-01-01T00:00:20.000Z', 'strictly after');
    const daily = intervalSchedule(86_400_000);
    assert.deepEqual(nextRuns(daily, T('2024-02-28T12:00:00Z'), 3).map(iso), ['2024-02-29T00:00:00.000Z', '2024-03-01T00:00:00.000Z', '2024-03-02T00:00:00.000Z']);
    assert.deepEqual(nextRuns(daily, T('2025-12-31T00:00:00Z'), 1).map(iso), ['2026-01-01T00:00:00.000Z']);
  });
});

describe('one-off at', () => {
  it('runs once, at its instant; naive times are local to the timezone', () => {
    const at = atSchedule(T('2028-02-29T09:00:00Z'));
    assert.deepEqual(nextRuns(at, T('2028-01-01T00:00:00Z'), 5).map(iso), ['2028-02-29T09:00:00.000Z']);
    assert.equal(at.next(T('2028-02-29T09:00:00Z')), null);
    assert.equal(iso(parseAt('2030-01-01T09:00:00+01:00')!), '2030-01-01T08:00:00.000Z');
    assert.equal(iso(parseAt('2030-01-01T09:00:00', 'Europe/Berlin')!), '2030-01-01T08:00:00.000Z');
    assert.equal(iso(parseAt('2030-07-01T09:00', 'America/New_York')!), '2030-07-01T13:00:00.000Z');
    assert.equal(iso(parseAt('2030-07-01', 'Europe/Berlin')!), '2030-06-30T22:00:00.000Z', 'a bare date is local midnight');
    assert.equal(parseAt('2030-02-30T00:00:00Z'), null);
  });
});

describe('validateEntry', () => {
  it('normalizes a valid entry', () => {
    const entry = validateEntry({ task: 'tasks.add', args: [2, 3], every: '10s', options: { queue: 'q1' } }, { name: 'add' });
    assert.deepEqual(entry, { enabled: true, name: 'add', task: 'tasks.add', args: [2, 3], kwargs: {}, options: { queue: 'q1' }, source: 'api', every: '10s' });
    assert.ok(JSON.stringify(validateEntry({ task: 't', cron: '@daily', enabled: false }, { name: 'x' })).startsWith('{"enabled":false,'));
  });

  it('names the entry in every error, with a code per problem', () => {
    rejects(() => validateEntry({ every: 10 }, { name: 'e1' }), 'GW_ERR_SCHEDULE_INVALID', /^schedule entry "e1": must have required property 'task'/);
    rejects(() => validateEntry({ task: 'bad name', every: 10 }, { name: 'e2' }), 'GW_ERR_SCHEDULE_INVALID', /"e2": task must match pattern/);
    rejects(() => validateEntry({ task: 't' }, { name: 'e3' }), 'GW_ERR_SCHEDULE_INVALID', /needs one of every, cron or at/);
    rejects(() => validateEntry({ task: 't', every: 10, cron: '* * * * *' }, { name: 'e4' }), 'GW_ERR_SCHEDULE_INVALID', /has every and cron/);
    rejects(() => validateEntry({ task: 't', every: -10 }, { name: 'e5' }), 'GW_ERR_SCHEDULE_BAD_INTERVAL', /"e5": every -10 must be positive/);
    rejects(() => validateEntry({ task: 't', cron: '* * *' }, { name: 'e6' }), 'GW_ERR_SCHEDULE_BAD_CRON', /"e6": cron "\* \* \*": expected 5 fields/);
    rejects(() => validateEntry({ task: 't', cron: '0 9 * * *', timezone: 'Europe/Atlantis' }, { name: 'e7' }), 'GW_ERR_SCHEDULE_BAD_TIMEZONE', /"e7": unknown time zone "Europe\/Atlantis"/);
    rejects(() => validateEntry({ task: 't', every: 5, timezone: 'UTC' }, { name: 'e8' }), 'GW_ERR_SCHEDULE_INVALID', /timezone applies to cron and at/);
    rejects(() => validateEntry({ task: 't', at: 'tomorrow' }, { name: 'e9' }), 'GW_ERR_SCHEDULE_INVALID', /at "tomorrow" is not an ISO 8601/);
    rejects(() => validateEntry({ task: 't', every: 5, options: { countdown: 1, eta: '2030-01-01T00:00:00Z' } }, { name: 'e10' }), 'GW_ERR_BAD_OPTION', /"e10": options.countdown and options.eta are exclusive/);
    rejects(() => validateEntry({ task: 't', every: 5, catch_up: 'all' }, { name: 'e11' }), 'GW_ERR_SCHEDULE_INVALID', /catch_up must be equal to one of the allowed values: "once", "skip"/);
    rejects(() => validateEntry({ task: 't', every: 5, name: 'other' }, { name: 'e12' }), 'GW_ERR_SCHEDULE_INVALID', /name "other" differs/);
  });

  it('a schedule file: keyed object or array, the first bad entry stops it, named', () => {
    const entries = parseScheduleData({ a: { task: 't.a', every: 5 }, b: { task: 't.b', cron: '0 * * * *' } }, 'schedule file s.json');
    assert.deepEqual(entries.map((e) => [e.name, e.source]), [['a', 'file'], ['b', 'file']]);
    rejects(() => parseScheduleData({ ok: { task: 't', every: 5 }, nightly: { task: 't', cron: '0 25 * * *' } }, 'schedule file s.json'), 'GW_ERR_SCHEDULE_BAD_CRON', /^schedule file s\.json: schedule entry "nightly": cron "0 25 \* \* \*": hour 25/);
    rejects(() => parseScheduleData([{ task: 't', every: 5 }], 'schedule file s.json'), 'GW_ERR_SCHEDULE_INVALID', /schedule entry #1: must have a name/);
    rejects(() => parseScheduleData([{ name: 'a', task: 't', every: 5 }, { name: 'a', task: 't', every: 6 }], 'f'), 'GW_ERR_SCHEDULE_INVALID', /"a" appears twice/);
    rejects(() => parseScheduleData('nope', 'f'), 'GW_ERR_SCHEDULE_INVALID', /expected an object/);
  });

  it('compiles each kind', () => {
    assert.equal(compileSchedule({ every: '1m' }).kind, 'every');
    assert.equal(compileSchedule({ cron: '0 * * * *', timezone: 'Europe/Berlin' }).kind, 'cron');
    assert.equal(compileSchedule({ at: '2030-01-01T00:00:00Z' }).kind, 'at');
  });
});

describe('planRuns (which ticks a pass publishes)', () => {
  const every10 = intervalSchedule(10_000);
  const base = T('2025-05-01T12:00:00Z');
  const opts = { graceMs: 12_000, catchUp: 'once' as const };

  it('nothing before the first tick; one step per tick on time', () => {
    assert.deepEqual(planRuns(every10, base, base + 9_999, opts), []);
    assert.deepEqual(planRuns(every10, base, base + 10_050, opts), [{ tick: base + 10_000, cursor: base + 10_000, publish: true }]);
  });

  it('late ticks within the grace (a leader change) each run once, oldest first', () => {
    const steps = planRuns(every10, base, base + 21_000, opts);
    assert.deepEqual(steps.map((s) => [s.tick - base, s.publish]), [[10_000, true], [20_000, true]]);
  });

  it('missed ticks: "once" collapses them into one run now; "skip" drops them', () => {
    const now = base + 60_005; // ticks at +10 … +60 s; with a 5 s grace +60 s is on time, older ones are missed
    const once = planRuns(every10, base, now, { ...opts, graceMs: 5_000 });
    assert.deepEqual(once.map((s) => [s.tick - base, s.publish, s.missedSince! - base]), [[60_000, true, 10_000]], 'the on-time run stands for the missed ones');
    const skip = planRuns(every10, base, now, { graceMs: 5_000, catchUp: 'skip' });
    assert.deepEqual(skip.map((s) => [s.tick - base, s.publish]), [[60_000, true]]);

    const hourly = intervalSchedule(3_600_000);
    const later = base + 5 * 3_600_000 + 30 * 60_000; // 5½ hours later: 5 ticks missed, none on time
    assert.deepEqual(planRuns(hourly, base, later, opts), [{ tick: base + 3_600_000, cursor: later, publish: true, missedSince: base + 3_600_000 }]);
    assert.deepEqual(planRuns(hourly, base, later, { ...opts, catchUp: 'skip' }), [{ tick: base + 3_600_000, cursor: later, publish: false, missedSince: base + 3_600_000 }]);
    assert.deepEqual(planRuns(hourly, later, later + 1000, opts), [], 'then nothing until the next tick');
  });

  it('a one-off missed while down runs once (or not at all with skip)', () => {
    const at = atSchedule(base + 1000);
    assert.equal(planRuns(at, base, base + 86_400_000, opts)[0]?.publish, true);
    assert.equal(planRuns(at, base, base + 86_400_000, { ...opts, catchUp: 'skip' })[0]?.publish, false);
    assert.deepEqual(planRuns(at, base + 1000, base + 86_400_000, opts), [], 'already run');
  });

  it('caps the steps of one pass', () => {
    assert.equal(planRuns(intervalSchedule(1000), base, base + 60_000, { graceMs: 120_000, catchUp: 'once', max: 7 }).length, 7);
  });
});
