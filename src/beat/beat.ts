/**
 * The beat loop: every `tickMs` each beat tries to take or renew the leader lock; the leader reads the
 * schedule table and publishes the due ticks through the Producer (ordinary task messages, routed by
 * the entry's options, as Celery beat's apply_async).
 *
 * Exactly once per tick: before publishing, the leader moves the entry's cursor past the tick with a
 * compare-and-set in the store. Only one beat can win that move, even when two believe they lead
 * (a paused leader whose lock expired), and a restarted or new leader starts from the stored cursor.
 * If publishing fails the cursor is moved back, so the next pass retries; a beat that dies between
 * the move and the publish loses that one run (at most once, never twice).
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Logger } from 'pino';
import { isGatewayError } from '../errors.ts';
import type { Producer } from '../producer.ts';
import type { CatchUp, ScheduleEntry } from './entry.ts';
import { loadScheduleFile, syncFileEntries } from './file.ts';
import { compileSchedule, planRuns, type Schedule } from './schedule.ts';
import type { LeaderLock, ScheduleStore } from './store.ts';

export interface BeatOptions {
  producer: Pick<Producer, 'send'>;
  store: ScheduleStore;
  logger: Logger;
  /** a schedule file (JSON or JS/TS module) loaded into the store at start (startBeat only) */
  scheduleFile?: string;
  /** what to do with ticks missed by more than graceMs, for entries without catch_up (default "once") */
  catchUp?: CatchUp;
  /** leader lock expiry (default 10 s): a dead leader is replaced within about this long */
  lockTtlMs?: number;
  /** pass period, and the longest a follower waits before trying the lock (default 1 s, at most TTL / 3) */
  tickMs?: number;
  /**
   * a tick at most this late still runs on its own; older ones are "missed" and follow catchUp.
   * Default 2 × lockTtlMs: more than a leader change takes, so a failover never counts as missing.
   */
  graceMs?: number;
  /** lock holder id (default beat.<pid>@<host>.<random>) */
  id?: string;
  /** the schedule clock, epoch ms (default Date.now) */
  now?: () => number;
  /** called after each published run (metrics, tests) */
  onPublish?: (run: PublishedRun) => void;
}

export interface PublishedRun {
  name: string;
  task: string;
  /** the tick it ran for (a collapsed catch-up run: the first missed tick) */
  tick: number;
  taskId: string;
  queue: string;
  /** set when this run also stands for ticks missed since then */
  missedSince?: number;
}

export class Beat {
  readonly id: string;
  readonly catchUp: CatchUp;
  readonly lockTtlMs: number;
  readonly tickMs: number;
  readonly graceMs: number;
  readonly #producer: Pick<Producer, 'send'>;
  readonly #store: ScheduleStore;
  readonly #log: Logger;
  readonly #lock: LeaderLock;
  readonly #now: () => number;
  readonly #onPublish: ((run: PublishedRun) => void) | undefined;
  readonly #compiled = new Map<string, Schedule | null>();
  #leader = false;
  #storeDown = false;
  /** a publish failed this pass: wait a full tick before retrying */
  #failed = false;
  #closed = false;
  #loop: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #wake: (() => void) | undefined;

  constructor(options: BeatOptions) {
    this.id = options.id ?? `beat.${process.pid}@${hostname()}.${randomUUID().slice(0, 8)}`;
    this.catchUp = options.catchUp ?? 'once';
    this.lockTtlMs = options.lockTtlMs ?? 10_000;
    this.tickMs = Math.max(10, Math.min(options.tickMs ?? 1000, Math.floor(this.lockTtlMs / 3)));
    this.graceMs = options.graceMs ?? 2 * this.lockTtlMs;
    this.#producer = options.producer;
    this.#store = options.store;
    this.#log = options.logger.child({ component: 'beat', beat: this.id });
    this.#now = options.now ?? Date.now;
    this.#onPublish = options.onPublish;
    this.#lock = options.store.leaderLock({ ttlMs: this.lockTtlMs, id: this.id });
  }

  /** true while this beat holds the leader lock */
  get isLeader(): boolean {
    return this.#leader && this.#lock.valid();
  }

  /** Start the loop (the first pass runs at once). */
  start(): void {
    if (this.#loop || this.#closed) return;
    this.#log.info({ store: this.#store.kind, lockTtlMs: this.lockTtlMs, tickMs: this.tickMs, graceMs: this.graceMs, catchUp: this.catchUp }, 'beat: starting');
    this.#loop = this.#run();
  }

  async #run(): Promise<void> {
    while (!this.#closed) {
      let wait = this.tickMs;
      try {
        wait = await this.runPass();
      } catch (err) {
        this.#log.error({ err }, 'beat pass failed');
      }
      if (this.#closed) break;
      await new Promise<void>((resolve) => {
        this.#wake = resolve;
        this.#timer = setTimeout(resolve, wait);
      });
    }
  }

  #setLeader(leader: boolean): void {
    if (leader !== this.#leader) this.#log.info(leader ? 'beat: leader, publishing the schedule' : 'beat: not the leader (standby)');
    this.#leader = leader;
  }

  #schedule(entry: ScheduleEntry): Schedule | null {
    const key = JSON.stringify([entry.every, entry.cron, entry.at, entry.timezone]);
    if (!this.#compiled.has(key)) {
      try {
        this.#compiled.set(key, compileSchedule(entry));
      } catch (err) {
        this.#log.error({ entry: entry.name, err }, 'schedule entry has an invalid schedule: ignored');
        this.#compiled.set(key, null);
      }
    }
    return this.#compiled.get(key) ?? null;
  }

  /**
   * One pass: take/renew the lock; as leader, publish what is due. Resolves with the milliseconds
   * until the next pass should run. Exposed for tests (drive it with a fake `now`).
   */
  async runPass(): Promise<number> {
    const now = this.#now();
    try {
      this.#setLeader(await this.#lock.acquire());
      if (this.#storeDown) this.#log.info('beat: schedule store reachable again');
      this.#storeDown = false;
    } catch (err) {
      if (!this.#storeDown) this.#log.warn({ err: err instanceof Error ? err.message : String(err) }, 'beat: schedule store unreachable; not publishing');
      this.#storeDown = true;
      this.#setLeader(false);
      return this.tickMs;
    }
    if (!this.#leader) return this.tickMs;
    this.#failed = false;
    let wake = now + this.tickMs;
    for (const stored of await this.#store.list()) {
      const { entry } = stored;
      if (!entry.enabled) continue;
      const schedule = this.#schedule(entry);
      if (!schedule) continue;
      const cursor = await this.#runEntry(entry, schedule, stored.cursor, now);
      if (cursor === null) return 0; // closed or lock lost mid-pass
      const due = schedule.next(cursor);
      if (due !== null) wake = Math.min(wake, due);
    }
    if (this.#failed) return this.tickMs;
    return Math.max(10, Math.min(this.tickMs, wake - this.#now()));
  }

  /** Run an entry's due steps; resolves with its cursor afterwards, or null to end the pass. */
  async #runEntry(entry: ScheduleEntry, schedule: Schedule, start: number, now: number): Promise<number | null> {
    let cursor = start;
    const steps = planRuns(schedule, cursor, now, { graceMs: this.graceMs, catchUp: entry.catch_up ?? this.catchUp });
    for (const step of steps) {
      if (this.#closed || !this.#lock.valid()) return null;
      if (!(await this.#store.claim(entry.name, cursor, step.cursor))) return cursor; // another beat ran it, or the entry changed
      const previous = cursor;
      cursor = step.cursor;
      const missed = step.missedSince === undefined ? {} : { missedSince: new Date(step.missedSince).toISOString() };
      if (!step.publish) {
        this.#log.warn({ entry: entry.name, ...missed, until: new Date(cursor).toISOString() }, `Scheduler: skipped missed runs of ${entry.name} (catch_up: skip)`);
        continue;
      }
      try {
        const sent = await this.#producer.send({ task: entry.task, args: entry.args, kwargs: entry.kwargs, options: entry.options });
        this.#log.info({ entry: entry.name, taskId: sent.id, tick: new Date(step.tick).toISOString(), ...missed }, `Scheduler: Sending due task ${entry.name} (${entry.task})`);
        this.#onPublish?.({ name: entry.name, task: entry.task, tick: step.tick, taskId: sent.id, queue: sent.queue, ...(step.missedSince !== undefined ? { missedSince: step.missedSince } : {}) });
        await this.#store.recordRun(entry.name, this.#now()).catch((err: unknown) => this.#log.warn({ err, entry: entry.name }, 'could not record the run'));
      } catch (err) {
        if (isGatewayError(err) && err.statusCode < 500) {
          // the entry itself is wrong (e.g. an options.expires now in the past): retrying cannot help
          this.#log.error({ err, entry: entry.name, tick: new Date(step.tick).toISOString() }, `Scheduler: ${entry.name} (${entry.task}) cannot be sent: run dropped`);
          continue;
        }
        this.#log.error({ err, entry: entry.name }, `Scheduler: could not send ${entry.name} (${entry.task}); retrying next pass`);
        // give the tick back so the next pass (on this or another beat) publishes it
        await this.#store.claim(entry.name, cursor, previous).catch(() => {
          this.#log.error({ entry: entry.name, tick: new Date(step.tick).toISOString() }, 'could not give the tick back: that run is lost');
        });
        this.#failed = true;
        return previous;
      }
    }
    return cursor;
  }

  /**
   * Stop: finish the pass under way, then release the lock (a standby takes over at its next pass).
   * `releaseLock: false` leaves the lock to expire, as a crash would (tests).
   */
  async close(options: { releaseLock?: boolean } = {}): Promise<void> {
    if (this.#closed) return this.#loop;
    this.#closed = true;
    clearTimeout(this.#timer);
    this.#wake?.();
    await this.#loop;
    this.#leader = false;
    if (options.releaseLock !== false) {
      await this.#lock.release().catch((err: unknown) => this.#log.warn({ err }, 'could not release the beat lock'));
    }
  }
}

/**
 * Start a beat: load `scheduleFile` (if any) into the store — a bad file or entry throws before
 * anything runs — then start the loop. Close it with `beat.close()`; the store stays the caller's.
 */
export async function startBeat(options: BeatOptions): Promise<Beat> {
  if (options.scheduleFile !== undefined) {
    const entries = await loadScheduleFile(options.scheduleFile);
    await syncFileEntries(options.store, entries, (options.now ?? Date.now)(), options.logger);
  }
  const beat = new Beat(options);
  beat.start();
  return beat;
}
