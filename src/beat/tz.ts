/**
 * Time zone arithmetic on top of Intl (the ICU data Node ships with): offsets, transitions and wall-clock
 * ↔ instant conversion. Pure: every function takes the instant it works on, never reads the clock.
 *
 * A "wall" time is a local date-time encoded as the milliseconds of the same fields in UTC
 * (Date.UTC(y, m, d, h, mi)), so calendar arithmetic on it never meets a DST change.
 */

const DAY = 86_400_000;

const formatters = new Map<string, Intl.DateTimeFormat>();

function formatter(zone: string): Intl.DateTimeFormat {
  let f = formatters.get(zone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone: zone,
      hourCycle: 'h23',
      year: 'numeric',
      month: 'numeric',
      day: 'numeric',
      hour: 'numeric',
      minute: 'numeric',
      second: 'numeric',
      era: 'short',
    });
    formatters.set(zone, f);
  }
  return f;
}

/** True when Intl knows the IANA zone name ("Europe/Berlin", "UTC", …). */
export function isValidTimeZone(zone: string): boolean {
  if (typeof zone !== 'string' || zone === '' || zone.length > 64) return false;
  try {
    formatter(zone);
    return true;
  } catch {
    return false;
  }
}

function isUtc(zone: string): boolean {
  return zone === 'UTC' || zone === 'Etc/UTC' || zone === 'Etc/GMT' || zone === 'GMT';
}

/** The zone's offset from UTC at `instant`, in milliseconds (+3_600_000 for CET). */
export function offsetAt(zone: string, instant: number): number {
  if (isUtc(zone)) return 0;
  const parts = formatter(zone).formatToParts(new Date(instant));
  const field = (type: Intl.DateTimeFormatPartTypes): number => Number(parts.find((p) => p.type === type)?.value ?? 0);
  let year = field('year');
  if (parts.find((p) => p.type === 'era')?.value === 'BC') year = 1 - year;
  const d = new Date(0);
  d.setUTCFullYear(year, field('month') - 1, field('day'));
  d.setUTCHours(field('hour'), field('minute'), field('second'), 0);
  const seconds = Math.floor(instant / 1000) * 1000;
  return d.getTime() - seconds;
}

/** The wall time (see above) at `instant` in `zone`. */
export function wallAt(zone: string, instant: number): number {
  return instant + offsetAt(zone, instant);
}

/**
 * The first instant in (from, to] whose offset differs from the offset at `from`, or null.
 * Scans day by day (real zones never change offset twice within a day), then bisects to the millisecond.
 */
export function nextTransition(zone: string, from: number, to: number): number | null {
  if (isUtc(zone) || to <= from) return null;
  const base = offsetAt(zone, from);
  let lo = from;
  let hi = Math.min(from + DAY, to);
  while (offsetAt(zone, hi) === base) {
    if (hi >= to) return null;
    lo = hi;
    hi = Math.min(hi + DAY, to);
  }
  while (hi - lo > 1) {
    const mid = lo + Math.floor((hi - lo) / 2);
    if (offsetAt(zone, mid) === base) lo = mid;
    else hi = mid;
  }
  return hi;
}

/**
 * The instant a wall time names in `zone`, with the "compatible" rule of Temporal (and of most cron
 * implementations): a wall time that occurs twice (clocks turned back) is its earlier occurrence; one
 * that does not exist (clocks turned forward) is moved forward by the length of the gap.
 */
export function instantOfWall(zone: string, wall: number): number {
  if (isUtc(zone)) return wall;
  const before = offsetAt(zone, wall - DAY);
  const after = offsetAt(zone, wall + DAY);
  const candidates = [before, after].map((o) => wall - o).filter((t) => wallAt(zone, t) === wall);
  if (candidates.length > 0) return Math.min(...candidates);
  // In a gap: read the wall time with the offset in force before the change.
  return wall - before;
}
