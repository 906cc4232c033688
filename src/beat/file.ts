/**
 * Schedule files: `--schedule schedule.json` or a JS/TS module whose default export (or `schedule`
 * export) is the same data. Either an object keyed by entry name, or an array of entries with `name`:
 *
 *   { "add-every-10s": { "task": "tasks.add", "args": [2, 3], "every": "10s" } }
 *
 * Every entry is validated at start-up; the first bad one stops it with an error naming file and entry.
 */
import { readFile } from 'node:fs/promises';
import { extname, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { Logger } from 'pino';
import { GatewayError, isGatewayError } from '../errors.ts';
import { validateEntry, type ScheduleEntry } from './entry.ts';
import type { ScheduleStore } from './store.ts';

async function readSource(path: string): Promise<unknown> {
  try {
    if (extname(path).toLowerCase() === '.json') return JSON.parse(await readFile(path, 'utf8')) as unknown;
    const mod = (await import(pathToFileURL(resolve(path)).href)) as { default?: unknown; schedule?: unknown };
    return mod.default ?? mod.schedule;
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `cannot load schedule file ${path}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
  }
}

/** Parse and validate the entries of a schedule value (what a file holds). */
export function parseScheduleData(data: unknown, origin: string): ScheduleEntry[] {
  let items: Array<[string | undefined, unknown]>;
  if (Array.isArray(data)) items = data.map((raw) => [undefined, raw]);
  else if (data && typeof data === 'object') items = Object.entries(data);
  else throw new GatewayError('GW_ERR_SCHEDULE_INVALID', `${origin}: expected an object keyed by entry name, or an array of entries with a name`);
  const seen = new Set<string>();
  return items.map(([name, raw], index) => {
    let entry: ScheduleEntry;
    try {
      entry = validateEntry(raw, { ...(name !== undefined ? { name } : {}), source: 'file' });
    } catch (err) {
      if (!isGatewayError(err)) throw err;
      const message = err.message.startsWith('schedule entry "?"') ? err.message.replace('"?"', `#${index + 1}`) : err.message;
      throw new GatewayError(err.code, `${origin}: ${message}`, { cause: err, ...(err.details ? { details: err.details } : {}) });
    }
    if (seen.has(entry.name)) throw new GatewayError('GW_ERR_SCHEDULE_INVALID', `${origin}: schedule entry ${JSON.stringify(entry.name)} appears twice`, { details: { entry: entry.name } });
    seen.add(entry.name);
    return entry;
  });
}

/** Load and validate a schedule file; throws GW_ERR_CONFIG (unreadable) or GW_ERR_SCHEDULE_* (bad entry). */
export async function loadScheduleFile(path: string): Promise<ScheduleEntry[]> {
  return parseScheduleData(await readSource(path), `schedule file ${path}`);
}

/**
 * Make the store's file entries those of the file: upsert each (keeping run state), remove stored
 * entries that came from a file and are no longer in it. Entries created through the API stay.
 */
export async function syncFileEntries(store: ScheduleStore, entries: readonly ScheduleEntry[], now: number, logger?: Logger): Promise<void> {
  const names = new Set(entries.map((e) => e.name));
  for (const stored of await store.list()) {
    if (stored.entry.source === 'file' && !names.has(stored.entry.name)) {
      await store.delete(stored.entry.name);
      logger?.info({ entry: stored.entry.name }, 'schedule entry removed: no longer in the schedule file');
    }
  }
  for (const entry of entries) await store.put(entry, now);
}
