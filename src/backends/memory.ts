/**
 * An in-process result store with the Redis backend's semantics (never overwrite SUCCESS, notify
 * listeners, expire results and submitted-id records). For `npm start` and fast tests.
 */
import { States, type Json, type ResultMeta } from '../protocol/types.ts';
import type { ChordPart, ResultBackend } from './backend.ts';
import { pyJsonDumps } from '../canvas/python.ts';

/** A chord's bookkeeping, as the Redis keys `.j` (parts by member, scored), `.t` and `.s` hold it. */
interface ChordEntry {
  parts: Map<string, { score: number; part: ChordPart }>;
  added: number;
  size: number | null;
  expires: number;
}

export interface MemoryBackendOptions {
  /** seconds a result is kept */
  resultTtlSec?: number;
  /** seconds a submitted id is remembered */
  submittedTtlSec?: number;
  now?: () => number;
}

export class MemoryBackend implements ResultBackend {
  readonly kind = 'memory';
  readonly displayUrl = 'memory://';
  readonly #results = new Map<string, { meta: ResultMeta; expires: number }>();
  readonly #submitted = new Map<string, number>();
  readonly #listeners = new Map<string, Set<(meta: ResultMeta) => void>>();
  readonly #chords = new Map<string, ChordEntry>();
  readonly #workflows = new Map<string, { tree: string; expires: number }>();
  readonly #resultTtlMs: number;
  readonly #submittedTtlMs: number;
  readonly #now: () => number;
  #closed = false;

  constructor(options: MemoryBackendOptions = {}) {
    this.#resultTtlMs = (options.resultTtlSec ?? 86400) * 1000;
    this.#submittedTtlMs = (options.submittedTtlSec ?? 86400) * 1000;
    this.#now = options.now ?? Date.now;
  }

  #check(): void {
    if (this.#closed) throw new Error('backend closed');
  }

  async get(taskId: string): Promise<ResultMeta | null> {
    this.#check();
    const entry = this.#results.get(taskId);
    if (!entry) return null;
    if (entry.expires <= this.#now()) {
      this.#results.delete(taskId);
      return null;
    }
    return structuredClone(entry.meta);
  }

  async store(meta: ResultMeta): Promise<void> {
    this.#check();
    const copy = JSON.parse(JSON.stringify(meta)) as ResultMeta; // also refuses what Redis could not hold
    const current = await this.get(meta.task_id);
    if (current?.status === States.SUCCESS) return;
    this.#results.set(meta.task_id, { meta: copy, expires: this.#now() + this.#resultTtlMs });
    this.#sweep();
    for (const listener of this.#listeners.get(meta.task_id) ?? []) listener(structuredClone(copy));
  }

  async listen(taskId: string, listener: (meta: ResultMeta) => void): Promise<() => void> {
    this.#check();
    let set = this.#listeners.get(taskId);
    if (!set) {
      set = new Set();
      this.#listeners.set(taskId, set);
    }
    set.add(listener);
    return () => {
      set.delete(listener);
      if (set.size === 0) this.#listeners.delete(taskId);
    };
  }

  async rememberSubmitted(taskIds: readonly string[]): Promise<void> {
    this.#check();
    const expires = this.#now() + this.#submittedTtlMs;
    for (const id of taskIds) this.#submitted.set(id, expires);
  }

  async wasSubmitted(taskId: string): Promise<boolean> {
    this.#check();
    const expires = this.#submitted.get(taskId);
    return expires !== undefined && expires > this.#now();
  }

  /** Drop expired entries now and then, so a long `npm start` does not grow without bound. */
  #sweep(): void {
    if (this.#results.size % 1024 !== 0) return;
    const now = this.#now();
    for (const [id, entry] of this.#results) if (entry.expires <= now) this.#results.delete(id);
    for (const [id, expires] of this.#submitted) if (expires <= now) this.#submitted.delete(id);
    for (const [id, entry] of this.#chords) if (entry.expires <= now) this.#chords.delete(id);
    for (const [id, entry] of this.#workflows) if (entry.expires <= now) this.#workflows.delete(id);
  }

  // -- canvas: chord bookkeeping with the Redis backend's semantics, and workflow trees

  #chord(groupId: string): ChordEntry {
    let entry = this.#chords.get(groupId);
    if (!entry || entry.expires <= this.#now()) {
      entry = { parts: new Map(), added: 0, size: null, expires: 0 };
      this.#chords.set(groupId, entry);
    }
    entry.expires = this.#now() + this.#resultTtlMs;
    return entry;
  }

  async setChordSize(groupId: string, size: number): Promise<void> {
    this.#check();
    this.#chord(groupId).size = size;
  }

  async chordPartReturn(groupId: string, groupIndex: number | null, part: ChordPart): Promise<ChordPart[] | null> {
    this.#check();
    const entry = this.#chord(groupId);
    const copy = JSON.parse(JSON.stringify(part)) as ChordPart;
    entry.parts.set(pyJsonDumps([1, copy.taskId, copy.state, copy.result]), { score: groupIndex ?? Infinity, part: copy });
    if (entry.size === null || entry.parts.size !== entry.size + entry.added) return null;
    // ZRANGE order: by score, ties by member
    return [...entry.parts.entries()]
      .sort(([ma, a], [mb, b]) => a.score - b.score || (ma < mb ? -1 : ma > mb ? 1 : 0))
      .map(([, { part: p }]) => structuredClone(p));
  }

  async clearChord(groupId: string): Promise<void> {
    this.#check();
    this.#chords.delete(groupId);
  }

  async saveWorkflow(id: string, tree: Json, ttlSec?: number): Promise<void> {
    this.#check();
    this.#workflows.set(id, { tree: JSON.stringify(tree), expires: this.#now() + (ttlSec === undefined ? this.#resultTtlMs : ttlSec * 1000) });
  }

  async getWorkflow(id: string): Promise<Json | null> {
    this.#check();
    const entry = this.#workflows.get(id);
    if (!entry || entry.expires <= this.#now()) return null;
    return JSON.parse(entry.tree) as Json;
  }

  async ping(): Promise<void> {
    this.#check();
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#listeners.clear();
  }
}
