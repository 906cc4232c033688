/**
 * Where schedule entries and their run state live, and the leader lock that makes one beat publish.
 * The memory store serves a single process (`dev`, tests); the Redis store (redis-store.ts) is shared
 * by every beat and gateway on the same Redis.
 */
import type { ScheduleEntry } from './entry.ts';

export interface StoredSchedule {
  entry: ScheduleEntry;
  /** every tick at or before this instant (epoch ms) has been dealt with */
  cursor: number;
  /** when the last run was published (epoch ms), or null */
  lastRunAt: number | null;
  totalRunCount: number;
}

export interface LeaderLock {
  /** this lock holder's id (stored as the lock's value in Redis) */
  readonly id: string;
  /**
   * Become leader, or stay leader (renewing the expiry). Resolves true when this holder leads for at
   * least the next TTL minus a margin (see valid()); rejects when the store cannot be reached.
   */
  acquire(): Promise<boolean>;
  /** true while the last successful acquire() still guarantees the lock, by the local clock */
  valid(): boolean;
  /** give the lock up (compare-and-delete: only if still ours) */
  release(): Promise<void>;
}

export interface ScheduleStore {
  /** "memory" | "redis" */
  readonly kind: string;
  list(): Promise<StoredSchedule[]>;
  get(name: string): Promise<StoredSchedule | null>;
  /**
   * Create or replace an entry; resolves true when it was created. A new entry's cursor is `now` (it
   * does not run for the past); so is that of an entry switched from disabled to enabled. Otherwise
   * the cursor is kept: replacing an entry neither repeats nor skips its ticks.
   */
  put(entry: ScheduleEntry, now: number): Promise<boolean>;
  /** resolves false when there was no such entry */
  delete(name: string): Promise<boolean>;
  /**
   * Move the cursor from `expected` to `next`, atomically, only if it is still `expected` and the
   * entry exists. Exactly one caller wins a given move: this is what makes each tick publish once.
   */
  claim(name: string, expected: number, next: number): Promise<boolean>;
  /** count a published run (informational) */
  recordRun(name: string, at: number): Promise<void>;
  /** the lock beats sharing this store use to elect one publisher */
  leaderLock(options: { ttlMs: number; id: string }): LeaderLock;
  /** idempotent */
  close(): Promise<void>;
}

/** A single process is always the leader. */
export class LocalLeaderLock implements LeaderLock {
  constructor(readonly id: string) {}
  async acquire(): Promise<boolean> { return true; }
  valid(): boolean { return true; }
  async release(): Promise<void> {}
}

interface MemoryRecord {
  json: string;
  cursor: number;
  lastRunAt: number | null;
  totalRunCount: number;
}

/** Entries in a Map; entries are copied in and out (as JSON), like the Redis store does. */
export class MemoryScheduleStore implements ScheduleStore {
  readonly kind = 'memory';
  readonly #records = new Map<string, MemoryRecord>();

  #view(record: MemoryRecord): StoredSchedule {
    return { entry: JSON.parse(record.json) as ScheduleEntry, cursor: record.cursor, lastRunAt: record.lastRunAt, totalRunCount: record.totalRunCount };
  }

  async list(): Promise<StoredSchedule[]> {
    return [...this.#records.values()].map((r) => this.#view(r)).sort((a, b) => (a.entry.name < b.entry.name ? -1 : 1));
  }

  async get(name: string): Promise<StoredSchedule | null> {
    const record = this.#records.get(name);
    return record ? this.#view(record) : null;
  }

  async put(entry: ScheduleEntry, now: number): Promise<boolean> {
    const old = this.#records.get(entry.name);
    const json = JSON.stringify(entry);
    if (!old) {
      this.#records.set(entry.name, { json, cursor: now, lastRunAt: null, totalRunCount: 0 });
      return true;
    }
    const wasDisabled = (JSON.parse(old.json) as ScheduleEntry).enabled === false;
    old.json = json;
    if (wasDisabled && entry.enabled) old.cursor = now;
    return false;
  }

  async delete(name: string): Promise<boolean> {
    return this.#records.delete(name);
  }

  async claim(name: string, expected: number, next: number): Promise<boolean> {
    const record = this.#records.get(name);
    if (!record || record.cursor !== expected) return false;
    record.cursor = next;
    return true;
  }

  /** Set an entry's run state to one persisted elsewhere (the AMQP store's state message); no-op without the entry. */
  restore(name: string, state: { cursor: number; lastRunAt: number | null; totalRunCount: number }): void {
    const record = this.#records.get(name);
    if (!record) return;
    record.cursor = state.cursor;
    record.lastRunAt = state.lastRunAt;
    record.totalRunCount = state.totalRunCount;
  }

  async recordRun(name: string, at: number): Promise<void> {
    const record = this.#records.get(name);
    if (!record) return;
    record.lastRunAt = at;
    record.totalRunCount += 1;
  }

  leaderLock(options: { ttlMs: number; id: string }): LeaderLock {
    return new LocalLeaderLock(options.id);
  }

  async close(): Promise<void> {}
}
