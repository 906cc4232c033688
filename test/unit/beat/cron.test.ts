/**
 * Cron math with fake time: parsing, month ends, leap days, and DST changes in Europe/Berlin and
 * America/New_York. Every expectation is an instant in UTC.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseCron } from '../../../src/beat/cron.ts';
import { cronSchedule, nextRuns } from '../../../src/beat/schedule.ts';
import { instantOfWall, isValidTimeZone, offsetAt } from '../../../src/beat/tz.ts';
import { isGatewayError } from '../../../src/errors.ts';

const runs = (expr: string, zone: string, from: string, count: number): string[] =>
  nextRuns(cronSchedule(expr, zone), Date.parse(from), count).map((t) => new Date(t).toISOString().replace('.000Z', 'Z'));

const badCron = (expr: string, pattern: RegExp) => {
  assert.throws(() => parseCron(expr), (err: unknown) => {
    assert.ok(isGatewayError(err));
    assert.equal(err.code, 'GW_ERR_SCHEDULE_BAD_CRON');
    assert.match(err.message, pattern);
    return true;
  }, expr);
};

describe('cron parsing', () => {
  it('reads values, ranges, steps, lists, names and macros', () => {
    const spec = parseCron('*/15 9-17 1,15 jan-mar mon-fri');
    assert.deepEqual(spec.minutes.flatMap((on, i) => (on ? [i] : [])), [0, 15, 30, 45]);
    assert.deepEqual(spec.hours.flatMap((on, i) => (on ? [i] : [])), [9, 10, 11, 12, 13, 14, 15, 16, 17]);
    assert.deepEqual(spec.days.flatMap((on, i) => (on ? [i] : [])), [1, 15]);
    assert.deepEqual(spec.months.flatMap((on, i) => (on ? [i] : [])), [1, 2, 3]);
    assert.deepEqual(spec.weekdays.flatMap((on, i) => (on ? [i] : [])), [1, 2, 3, 4, 5]);
    assert.equal(spec.everyHour, false);
    assert.deepEqual(parseCron('5/20 * * * *').minutes.flatMap((on, i) => (on ? [i] : [])), [5, 25, 45]);
    assert.deepEqual(parseCron('0 0 * * 7').weekdays.flatMap((on, i) => (on ? [i] : [])), [0], '7 is Sunday');
    assert.deepEqual(parseCron('0 0 * * SUN,Sat').weekdays.flatMap((on, i) => (on ? [i] : [])), [0, 6]);
    assert.equal(parseCron('@hourly').everyHour, true);
    assert.deepEqual(runs('@daily', 'UTC', '2025-01-01T10:00:00Z', 1), ['2025-01-02T00:00:00Z']);
  });

  it('refuses bad expressions, naming the field', () => {
    badCron('* * * *', /expected 5 fields/);
    badCron('61 * * * *', /minute 61 is out of range 0-59/);
    badCron('0 24 * * *', /hour 24 is out of range 0-23/);
    badCron('0 0 0 * *', /day of month 0 is out of range 1-31/);
    badCron('0 0 1 13 *', /month 13/);
    badCron('0 0 * * 8', /day of week 8/);
    badCron('0 0 * foo *', /month "foo" is not a number or a name/);
    badCron('*/0 * * * *', /step must be at least 1/);
    badCron('5-1 * * * *', /runs backwards/);
    badCron('1,,2 * * * *', /not a value, range or step/);
    badCron('@reboot', /unknown macro/);
    badCron('0 0 30 2 *', /never run/);
    badCron('0 0 31 4,6,9,11 *', /never run/);
  });
});

describe('cron next runs (UTC)', () => {
  it('every 5 minutes, across an hour and a day', () => {
    assert.deepEqual(runs('*/5 * * * *', 'UTC', '2025-12-31T23:52:10Z', 3), ['2025-12-31T23:55:00Z', '2026-01-01T00:00:00Z', '2026-01-01T00:05:00Z']);
  });

  it('is strictly after: a tick time gives the following tick', () => {
    assert.deepEqual(runs('0 * * * *', 'UTC', '2025-06-01T10:00:00Z', 1), ['2025-06-01T11:00:00Z']);
  });

  it('month ends: the 31st skips shorter months; the 1st follows the last day', () => {
    assert.deepEqual(runs('0 0 31 * *', 'UTC', '2025-01-31T00:00:00Z', 4), ['2025-03-31T00:00:00Z', '2025-05-31T00:00:00Z', '2025-07-31T00:00:00Z', '2025-08-31T00:00:00Z']);
    assert.deepEqual(runs('0 0 1 * *', 'UTC', '2024-02-29T23:59:00Z', 2), ['2024-03-01T00:00:00Z', '2024-04-01T00:00:00Z']);
    assert.deepEqual(runs('0 12 30 * *', 'UTC', '2025-01-30T12:00:00Z', 2), ['2025-03-30T12:00:00Z', '2025-04-30T12:00:00Z'], 'no 30 February');
  });

  it('leap days: 29 February comes every four years, not in 2100', () => {
    assert.deepEqual(runs('0 0 29 2 *', 'UTC', '2023-01-01T00:00:00Z', 3), ['2024-02-29T00:00:00Z', '2028-02-29T00:00:00Z', '2032-02-29T00:00:00Z']);
    assert.deepEqual(runs('0 0 29 2 *', 'UTC', '2096-03-01T00:00:00Z', 1), ['2104-02-29T00:00:00Z']);
    assert.deepEqual(runs('0 0 28-29 2 *', 'UTC', '2024-02-28T00:00:00Z', 2), ['2024-02-29T00:00:00Z', '2025-02-28T00:00:00Z']);
  });

  it('day of month OR day of week when both are restricted; AND when one starts with *', () => {
    // the 13th, or any Friday (Vixie cron)
    assert.deepEqual(runs('0 0 13 * 5', 'UTC', '2025-06-01T00:00:00Z', 3), ['2025-06-06T00:00:00Z', '2025-06-13T00:00:00Z', '2025-06-20T00:00:00Z']);
    // odd days that are Mondays
    assert.deepEqual(runs('0 0 */2 * 1', 'UTC', '2025-06-01T00:00:00Z', 2), ['2025-06-09T00:00:00Z', '2025-06-23T00:00:00Z']);
  });
});

describe('cron next runs in a time zone, across DST changes', () => {
  it('Europe/Berlin spring forward (2025-03-30, 02:00 → 03:00): a skipped 02:30 runs at 03:30 CEST', () => {
    assert.deepEqual(runs('30 2 * * *', 'Europe/Berlin', '2025-03-28T12:00:00Z', 3), [
      '2025-03-29T01:30:00Z', // 02:30 CET
      '2025-03-30T01:30:00Z', // 03:30 CEST (02:30 does not exist)
      '2025-03-31T00:30:00Z', // 02:30 CEST
    ]);
  });

  it('Europe/Berlin spring forward: an hour field of * follows real time, no extra run', () => {
    assert.deepEqual(runs('*/30 * * * *', 'Europe/Berlin', '2025-03-30T00:15:00Z', 3), ['2025-03-30T00:30:00Z', '2025-03-30T01:00:00Z', '2025-03-30T01:30:00Z']);
    assert.deepEqual(runs('0,30 2,3 * * *', 'Europe/Berlin', '2025-03-29T23:00:00Z', 3), ['2025-03-30T01:00:00Z', '2025-03-30T01:30:00Z', '2025-03-31T00:00:00Z'], 'the shifted 02:xx merge with 03:xx');
  });

  it('Europe/Berlin fall back (2025-10-26, 03:00 → 02:00): a repeated 02:30 runs once', () => {
    assert.deepEqual(runs('30 2 * * *', 'Europe/Berlin', '2025-10-25T12:00:00Z', 3), ['2025-10-26T00:30:00Z', '2025-10-27T01:30:00Z', '2025-10-28T01:30:00Z']);
  });

  it('Europe/Berlin fall back: an hour field of * runs in both 02:00 hours', () => {
    assert.deepEqual(runs('*/30 * * * *', 'Europe/Berlin', '2025-10-25T23:45:00Z', 6), [
      '2025-10-26T00:00:00Z', '2025-10-26T00:30:00Z', // 02:00, 02:30 CEST
      '2025-10-26T01:00:00Z', '2025-10-26T01:30:00Z', // 02:00, 02:30 CET
      '2025-10-26T02:00:00Z', '2025-10-26T02:30:00Z',
    ]);
    // starting inside the first 02:00 hour does not lose the second one
    assert.deepEqual(runs('*/30 * * * *', 'Europe/Berlin', '2025-10-26T00:45:00Z', 2), ['2025-10-26T01:00:00Z', '2025-10-26T01:30:00Z']);
  });

  it('America/New_York spring forward (2025-03-09) and fall back (2025-11-02)', () => {
    assert.deepEqual(runs('30 2 * * *', 'America/New_York', '2025-03-08T12:00:00Z', 2), ['2025-03-09T07:30:00Z', '2025-03-10T06:30:00Z']);
    assert.deepEqual(runs('30 1 * * *', 'America/New_York', '2025-11-01T12:00:00Z', 2), ['2025-11-02T05:30:00Z', '2025-11-03T06:30:00Z']);
    assert.deepEqual(runs('0 * * * *', 'America/New_York', '2025-11-02T04:30:00Z', 3), ['2025-11-02T05:00:00Z', '2025-11-02T06:00:00Z', '2025-11-02T07:00:00Z']);
  });

  it('weekday and new-year schedules use local dates', () => {
    assert.deepEqual(runs('0 9 * * mon-fri', 'Europe/Berlin', '2025-03-28T12:00:00Z', 2), ['2025-03-31T07:00:00Z', '2025-04-01T07:00:00Z']);
    assert.deepEqual(runs('0 0 1 1 *', 'America/New_York', '2025-06-01T00:00:00Z', 1), ['2026-01-01T05:00:00Z']);
    assert.deepEqual(runs('0 0 29 2 *', 'Europe/Berlin', '2025-01-01T00:00:00Z', 1), ['2028-02-28T23:00:00Z']);
  });
});

describe('time zone helpers', () => {
  it('knows IANA names and offsets', () => {
    assert.equal(isValidTimeZone('Europe/Berlin'), true);
    assert.equal(isValidTimeZone('Mars/Olympus'), false);
    assert.equal(offsetAt('Europe/Berlin', Date.parse('2025-01-15T00:00:00Z')), 3_600_000);
    assert.equal(offsetAt('Europe/Berlin', Date.parse('2025-07-15T00:00:00Z')), 7_200_000);
  });

  it('wall time → instant: the earlier of a repeated time, a skipped time shifted forward', () => {
    const wall = (s: string) => Date.parse(`${s}Z`);
    assert.equal(new Date(instantOfWall('Europe/Berlin', wall('2025-10-26T02:30:00'))).toISOString(), '2025-10-26T00:30:00.000Z');
    assert.equal(new Date(instantOfWall('Europe/Berlin', wall('2025-03-30T02:30:00'))).toISOString(), '2025-03-30T01:30:00.000Z');
    assert.equal(new Date(instantOfWall('America/New_York', wall('2025-07-04T09:00:00'))).toISOString(), '2025-07-04T13:00:00.000Z');
  });
});
