/**
 * Date formatting and parsing the way Celery writes and reads them (§1.1 eta/expires, §5.2 date_done).
 * Pure functions: callers pass the clock in.
 */

const pad = (n: number, width = 2): string => String(n).padStart(width, '0');

/** `YYYY-MM-DDTHH:MM:SS[.ffffff]` of the UTC fields; the fraction only when non-zero, as Python does. */
function isoFields(d: Date): string {
  const ms = d.getTime();
  if (!Number.isFinite(ms)) throw new RangeError('invalid Date');
  const year = d.getUTCFullYear();
  // Python's datetime only spans years 1..9999.
  if (year < 1 || year > 9999) throw new RangeError(`year ${year} is outside Python's datetime range`);
  const base =
    `${pad(year, 4)}-${pad(d.getUTCMonth() + 1)}-${pad(d.getUTCDate())}` +
    `T${pad(d.getUTCHours())}:${pad(d.getUTCMinutes())}:${pad(d.getUTCSeconds())}`;
  const millis = d.getUTCMilliseconds();
  // Always 6 digits: Celery 5.2.6's parse_iso8601 reads the fraction as an integer count of
  // microseconds, so ".375" would be 375 µs on the Python side, ".375000" is right.
  return millis === 0 ? base : `${base}.${pad(millis, 3)}000`;
}

/** Python `datetime.isoformat()` of an aware UTC datetime: `2030-01-02T03:04:05+00:00` (eta/expires headers). */
export function isoWithOffset(d: Date): string {
  return `${isoFields(d)}+00:00`;
}

/** Naive UTC ISO 8601, like Celery's `date_done`: `2026-11-23T20:44:56.063000`. */
export function naiveUtcIso(d: Date): string {
  return isoFields(d);
}

const ISO_RE =
  /^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:[.,](\d{1,9}))?)?(?:([Zz])|([+-])(\d{2})(?::?(\d{2}))?)?)?$/;

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

function daysInMonth(year: number, month: number): number {
  const leap = (year % 4 === 0 && year % 100 !== 0) || year % 400 === 0;
  return month === 2 && leap ? 29 : (DAYS_IN_MONTH[month - 1] ?? 0);
}

/**
 * Parse an ISO 8601 date-time: `Z`, `+00:00`, `+0530`, `+05` offsets, or naive (taken as UTC);
 * a bare date means midnight UTC. Returns null for anything invalid, including impossible dates
 * (`2020-13-45`, `2021-02-29`) and trailing text. Precision is cut to milliseconds.
 *
 * Stricter and more correct than Celery's own parser (which reads `.375` as 375 µs, silently
 * ignores a `+0530` offset and accepts trailing garbage), so anything accepted here means the same
 * instant to us as an ordinary ISO reader would take it.
 */
export function parseIsoDate(s: string): Date | null {
  if (typeof s !== 'string') return null;
  const m = ISO_RE.exec(s.trim());
  if (!m) return null;
  const [, y, mo, d, h = '0', mi = '0', sec = '0', frac = '', zulu, sign, oh, om = '0'] = m;
  const year = Number(y);
  const month = Number(mo);
  const day = Number(d);
  const hour = Number(h);
  const minute = Number(mi);
  const second = Number(sec);
  if (year < 1 || month < 1 || month > 12 || day < 1 || day > daysInMonth(year, month)) return null;
  if (hour > 23 || minute > 59 || second > 59) return null;
  let offsetMinutes = 0;
  if (!zulu && sign !== undefined) {
    const offH = Number(oh);
    const offM = Number(om);
    if (offH > 23 || offM > 59) return null;
    offsetMinutes = (sign === '-' ? -1 : 1) * (offH * 60 + offM);
  }
  const millis = frac === '' ? 0 : Number(frac.padEnd(3, '0').slice(0, 3));
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  date.setUTCFullYear(year, month - 1, day);
  date.setUTCHours(hour, minute, second, millis);
  return new Date(date.getTime() - offsetMinutes * 60_000);
}
