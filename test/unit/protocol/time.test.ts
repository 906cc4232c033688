import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isoWithOffset, naiveUtcIso, parseIsoDate } from '../../../src/protocol/time.ts';

const utc = (y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): Date => new Date(Date.UTC(y, mo - 1, d, h, mi, s, ms));

describe('isoWithOffset', () => {
  it('omits the fraction when zero, like Python isoformat', () => {
    assert.equal(isoWithOffset(utc(2030, 1, 2, 3, 4, 5)), '2030-01-02T03:04:05+00:00');
  });
  it('writes milliseconds as 6-digit microseconds', () => {
    assert.equal(isoWithOffset(utc(2030, 1, 2, 3, 4, 5, 375)), '2030-01-02T03:04:05.375000+00:00');
    assert.equal(isoWithOffset(utc(2030, 1, 2, 3, 4, 5, 7)), '2030-01-02T03:04:05.007000+00:00');
  });
  it('zero-pads years below 1000', () => {
    const d = new Date(0);
    d.setUTCFullYear(999, 11, 31);
    assert.equal(isoWithOffset(d), '0999-12-31T00:00:00+00:00');
  });
  it('throws on an invalid Date or a year Python cannot hold', () => {
    assert.throws(() => isoWithOffset(new Date(Number.NaN)), RangeError);
    assert.throws(() => isoWithOffset(utc(10000, 1, 1)), RangeError);
  });
});

describe('naiveUtcIso (date_done)', () => {
  it('has no offset', () => {
    assert.equal(naiveUtcIso(new Date('2026-11-23T20:44:56.063Z')), '2026-11-23T20:44:56.063000');
    assert.equal(naiveUtcIso(utc(2026, 11, 23, 20, 44, 56)), '2026-11-23T20:44:56');
  });
});

describe('parseIsoDate', () => {
  const valid: [string, Date][] = [
    ['2030-01-02T03:04:05+00:00', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T03:04:05Z', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T03:04:05z', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T03:04:05', utc(2030, 1, 2, 3, 4, 5)], // naive = UTC
    ['2030-01-02 03:04:05', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T08:34:05+0530', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T08:34:05+05:30', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-01T19:04:05-08:00', utc(2030, 1, 2, 3, 4, 5)],
    ['2030-01-02T05:04:05+02', utc(2030, 1, 2, 3, 4, 5)],
    ['2026-11-23T20:43:15.503705+00:00', utc(2026, 11, 23, 20, 43, 15, 503)],
    ['2030-01-02T03:04:05.5', utc(2030, 1, 2, 3, 4, 5, 500)], // a real fraction, not 5 µs
    ['2030-01-02T03:04', utc(2030, 1, 2, 3, 4)],
    ['2030-01-02', utc(2030, 1, 2)],
    ['2020-02-29T00:00:00', utc(2020, 2, 29)],
  ];
  for (const [text, expected] of valid) {
    it(`parses ${text}`, () => assert.equal(parseIsoDate(text)?.getTime(), expected.getTime()));
  }

  it('keeps two-digit years as they are (no 19xx mapping)', () => {
    assert.equal(parseIsoDate('0050-06-01T00:00:00Z')?.getUTCFullYear(), 50);
  });

  const invalid = [
    '', 'garbage', '2020-13-45T00:00:00', '2020-13-01T00:00:00', '2021-02-29T00:00:00', '2030-04-31T00:00:00',
    '2030-01-02T24:00:00', '2030-01-02T03:60:00', '2030-01-02T03:04:60', '2030-01-02T03:04:05+25:00',
    '2030-01-02T03:04:05Zjunk', '2030-1-2T03:04:05', '0000-01-01T00:00:00', '2030-01-02T03:04:05.1234567890',
  ];
  for (const text of invalid) {
    it(`rejects ${JSON.stringify(text)}`, () => assert.equal(parseIsoDate(text), null));
  }

  it('round-trips isoWithOffset', () => {
    for (const ms of [0, 1, 375, 999]) {
      const d = utc(2026, 11, 23, 20, 44, 56, ms);
      assert.equal(parseIsoDate(isoWithOffset(d))?.getTime(), d.getTime());
      assert.equal(parseIsoDate(naiveUtcIso(d))?.getTime(), d.getTime());
    }
  });
});
