/**
 * `--pool threads`: handlers run in worker threads (node:worker_threads), one task per thread at a
 * time, for CPU-bound work that would otherwise stall the worker's event loop (consuming, acking,
 * heartbeats). Each thread loads the tasks module itself.
 *
 * Time limits and revoke are real here, unlike in the async pool: the hard limit, `revoke` with
 * terminate and a shutdown that stops waiting terminate the thread (its handler stops mid-computation)
 * and a fresh thread replaces it. The soft limit aborts ctx.signal inside the thread: a handler sees it
 * only when it yields to the event loop (a synchronous loop can poll `ctx.signal.aborted`).
 */
import { availableParallelism } from 'node:os';
import { Worker as Thread } from 'node:worker_threads';
import type { Logger } from 'pino';
import type { Json } from '../protocol/types.ts';
import { SoftTimeLimitExceeded } from './errors.ts';
import { limitTimers, type Limits, type Outcome } from './executor.ts';
import type { TaskContext } from './registry.ts';
import type { TaskAbort } from './task-abort.ts';
import { deserializeError, type RunRequest, type ThreadReply } from './thread-messages.ts';

/** A thread died under a task (process.exit, out of memory, a crash): billiard's WorkerLostError. */
export class WorkerLostError extends Error {
  override readonly name = 'WorkerLostError';
  readonly excType = 'WorkerLostError';
  readonly excModule = 'billiard.exceptions';
  constructor(detail: string) {
    super(`Worker exited prematurely: ${detail}.`);
  }
}

export interface ThreadPoolOptions {
  /** the tasks module (JS or TS), loaded by each thread */
  modulePath: string;
  /** threads (default: available parallelism) */
  size?: number;
  logger: Logger;
  /** pino level inside the threads (default: the logger's) */
  logLevel?: string;
}

interface Slot {
  thread: Thread;
  id: number;
  /** the run in progress: settle it at most once */
  busy: ((reply: ThreadReply | { type: 'lost'; error: Error }) => void) | null;
  /** we terminated it (its replacement is already on the way) */
  terminated?: boolean;
  /** the run in progress asked to store a state (ctx.updateState) */
  onState?: ((state: string, meta: Json) => void) | undefined;
}

const BOOT = new URL('./thread-boot.mjs', import.meta.url);

export class ThreadPool {
  readonly kind = 'threads';
  readonly size: number;
  readonly #o: ThreadPoolOptions;
  readonly #log: Logger;
  readonly #idle: Slot[] = [];
  readonly #all = new Set<Slot>();
  readonly #waiting: Array<(slot: Slot) => void> = [];
  #nextId = 1;
  #closed = false;

  constructor(options: ThreadPoolOptions) {
    this.#o = options;
    this.size = Math.max(1, options.size ?? availableParallelism());
    this.#log = options.logger.child({ component: 'thread-pool' });
  }

  /** Start every thread; rejects (and stops them) if the module cannot be loaded in a thread. */
  async start(): Promise<void> {
    try {
      await Promise.all(Array.from({ length: this.size }, () => this.#spawn().then((slot) => this.#release(slot))));
    } catch (err) {
      await this.close();
      throw err;
    }
  }

  #spawn(): Promise<Slot> {
    const id = this.#nextId++;
    const thread = new Thread(BOOT, {
      workerData: { modulePath: this.#o.modulePath, logLevel: this.#o.logLevel ?? this.#o.logger.level, threadId: id },
    });
    const slot: Slot = { thread, id, busy: null };
    this.#all.add(slot);
    return new Promise<Slot>((resolve, reject) => {
      let ready = false;
      thread.on('message', (reply: ThreadReply) => {
        if (reply.type === 'ready') {
          ready = true;
          resolve(slot);
        } else if (reply.type === 'load-failed') {
          reject(deserializeError(reply.error));
        } else if (reply.type === 'state') {
          slot.onState?.(reply.state, reply.meta);
        } else {
          const settle = slot.busy;
          slot.busy = null;
          settle?.(reply);
        }
      });
      thread.on('error', (err) => {
        if (!ready) reject(err);
        this.#log.error({ err, thread: id }, 'worker thread crashed');
      });
      thread.on('exit', (code) => {
        this.#all.delete(slot);
        const idle = this.#idle.indexOf(slot);
        if (idle >= 0) this.#idle.splice(idle, 1);
        if (!ready) reject(new Error(`worker thread exited with code ${code} before loading the tasks module`));
        const settle = slot.busy;
        slot.busy = null;
        if (settle) settle({ type: 'lost', error: new WorkerLostError(`thread exited with code ${code}`) });
        // replace a thread that died on its own (not one we terminated: that path spawns its own)
        if (ready && !this.#closed && !slot.terminated) this.#replace();
      });
    });
  }

  #replace(): void {
    this.#spawn().then((fresh) => this.#release(fresh), (err: unknown) => {
      this.#log.error({ err }, 'could not start a replacement worker thread');
    });
  }

  #release(slot: Slot): void {
    if (this.#closed) return;
    const next = this.#waiting.shift();
    if (next) next(slot);
    else this.#idle.push(slot);
  }

  #acquire(): Promise<Slot> {
    const slot = this.#idle.pop();
    if (slot) return Promise.resolve(slot);
    return new Promise((resolve) => this.#waiting.push(resolve));
  }

  /**
   * Run task `name` in a thread with the same contract as executor.ts's execute(): the soft limit aborts
   * ctx.signal in the thread; the hard limit or any other abort of `abort` terminates the thread.
   */
  async run(name: string, args: readonly Json[], ctx: TaskContext, abort: TaskAbort, limits: Limits): Promise<Outcome> {
    const started = performance.now();
    if (abort.stopped) return { ok: false, error: abort.stopReason, runtimeMs: 0 };
    const slot = await this.#acquire();
    let timers: NodeJS.Timeout[] = [];
    try {
      const reply = await new Promise<ThreadReply | { type: 'lost'; error: Error }>((resolve) => {
        slot.busy = resolve;
        slot.onState = (state, meta) => { void ctx.updateState(state, meta); };
        timers = limitTimers(abort, limits);
        abort.listen((reason) => {
          if (!abort.stopped) {
            // the soft limit: abort ctx.signal in the thread
            if (reason instanceof SoftTimeLimitExceeded) slot.thread.postMessage({ type: 'soft', seconds: limits.soft });
            return;
          }
          // anything else, even after a soft limit: stop it for real (terminate the thread, settle now,
          // start a fresh one)
          const stop = abort.stopReason;
          slot.busy = null;
          slot.terminated = true;
          void slot.thread.terminate();
          this.#replace();
          resolve({ type: 'lost', error: stop instanceof Error ? stop : new Error(String(stop)) });
        });
        const request: RunRequest = {
          type: 'run', name, args,
          ctx: {
            id: ctx.id, name: ctx.name, kwargs: ctx.kwargs, retries: ctx.retries, rootId: ctx.rootId, parentId: ctx.parentId,
            groupId: ctx.groupId, headers: ctx.headers, hostname: ctx.hostname, redelivered: ctx.redelivered,
          },
        };
        try {
          slot.thread.postMessage(request);
        } catch (err) {
          slot.busy = null;
          resolve({ type: 'lost', error: err instanceof Error ? err : new Error(String(err)) });
        }
      });
      if (reply.type === 'lost') return { ok: false, error: reply.error, runtimeMs: performance.now() - started };
      if (reply.type !== 'done') return { ok: false, error: new Error(`unexpected reply ${reply.type} from a worker thread`), runtimeMs: performance.now() - started };
      if (reply.ok) return { ok: true, value: reply.value, runtimeMs: reply.runtimeMs };
      return { ok: false, error: deserializeError(reply.error), runtimeMs: reply.runtimeMs };
    } finally {
      slot.onState = undefined;
      abort.listen(undefined);
      for (const timer of timers) clearTimeout(timer);
      if (!slot.terminated && this.#all.has(slot)) this.#release(slot);
    }
  }

  /** the live threads' ids (tests) */
  get threadIds(): number[] {
    return [...this.#all].map((s) => s.thread.threadId);
  }

  /** Terminate every thread (running handlers stop where they are). Idempotent. */
  async close(): Promise<void> {
    this.#closed = true;
    const slots = [...this.#all];
    this.#idle.length = 0;
    for (const slot of slots) slot.terminated = true;
    await Promise.all(slots.map((slot) => slot.thread.terminate().catch(() => 0)));
  }
}
