/**
 * The Node worker: consumes Celery messages, runs registered handlers with bounded concurrency, stores
 * results in Celery's format and acks after the handler (late ack: at-least-once).
 */
import type { Logger } from 'pino';
import type { Broker, Delivery, Subscription } from '../brokers/broker.ts';
import type { ResultBackend, StoreOptions } from '../backends/backend.ts';
import { parseTaskMessage } from '../protocol/message.ts';
import { buildMeta, celeryException, encodeError } from '../protocol/result-meta.ts';
import { saferepr } from '../protocol/repr.ts';
import { parseIsoDate } from '../protocol/time.ts';
import { States, type Json, type JsonObject, type ResultMeta, type TaskMessage } from '../protocol/types.ts';
import { Continuation } from './continuation.ts';
import { Ignore, Reject, TaskRevoked, WorkerShutdown } from './errors.ts';
import { execute, type Limits, type Outcome } from './executor.ts';
import { TaskAbort } from './task-abort.ts';
import { decideRetry, retryMessage } from './retry.ts';
import { startRemoteControl, type ControlTarget } from './control.ts';
import { EventDispatcher } from './events.ts';
import { parseRate, TokenBucket } from './rate-limit.ts';
import {
  taskErrorFields, taskReceivedFields, taskRejectedFields, taskRevokedFields, taskStartedFields, taskSucceededFields,
} from '../protocol/events.ts';
import type { TaskContext, TaskRegistry, TaskSpec } from './registry.ts';
import { RunContext, type ContextHost } from './run-context.ts';

/** Where handlers run instead of this thread (`--pool threads`: src/worker/thread-pool.ts). */
export interface TaskPool {
  /** "threads" */
  readonly kind: string;
  run(name: string, args: readonly Json[], ctx: TaskContext, abort: TaskAbort, limits: Limits): Promise<Outcome>;
  close(): Promise<void>;
}

export interface WorkerOptions {
  broker: Broker;
  backend: ResultBackend;
  registry: TaskRegistry;
  queues: readonly string[];
  concurrency: number;
  prefetchMultiplier: number;
  /** node name, e.g. node.123@host */
  hostname: string;
  logger: Logger;
  /** seconds a warm shutdown waits for running tasks */
  shutdownTimeout: number;
  now?: () => Date;
  /** run registered handlers in this pool (its size should be `concurrency`); closed with the worker */
  pool?: TaskPool;
  /** queue for canvas signatures without a queue option (Celery's task_default_queue); default "celery" */
  defaultQueue?: string;
  /** the durable revoked set, checked before each task runs (a RevokedCache: no round trip per task) */
  revoked?: { isRevoked(taskId: string): boolean | Promise<boolean> };
  /** answer Celery remote control on the pidbox (ping, inspect, revoke); default true */
  remoteControl?: boolean;
  /** send task-* Celery events from the start (`-E`); worker-* events are always sent */
  taskEvents?: boolean;
  /** worker-heartbeat period, seconds (Celery: 2) */
  heartbeatFreq?: number;
  /** sw_ver of worker events */
  version?: string;
  /** larger task messages (body, bytes) are rejected unparsed; default 10 MiB */
  maxMessageBytes?: number;
  /** what the `shutdown` remote-control command does; default: close() (the CLI exits after it) */
  onShutdown?: (reason: string) => void;
}

interface Job {
  delivery: Delivery;
  message: TaskMessage;
  spec: TaskSpec;
  /** set when a shutdown gave up waiting: the message was requeued, the late outcome is discarded */
  abandoned?: boolean;
  /** unix seconds when it started running */
  started?: number;
  /** acked before running (acksLate: false): later settles are no-ops */
  acked?: boolean;
}

/** A delivery already acked: settling it again does nothing. */
function settledDelivery(delivery: Delivery): Delivery {
  return { message: delivery.message, queue: delivery.queue, redelivered: delivery.redelivered, ack: async () => {}, reject: async () => {} };
}

/** A task's rate-limit state: its bucket and the jobs waiting for a token, in arrival order. */
interface RateLimited {
  bucket: TokenBucket;
  waiting: Job[];
  timer: NodeJS.Timeout | undefined;
}

export const DEFAULT_MAX_MESSAGE_BYTES = 10 * 1024 * 1024;
/** at most this many messages held for a rate limit raise the prefetch bound (memory stays bounded) */
const RATE_HELD_PREFETCH_MAX = 1000;

/** setTimeout's ceiling; longer ETAs are waited for in steps */
const MAX_TIMER_MS = 2 ** 31 - 1;
const STORE_RETRY_DELAYS_MS = [100, 500, 2000];

export class Worker {
  readonly #o: WorkerOptions;
  readonly #now: () => Date;
  readonly #log: Logger;
  /** what every run's TaskContext shares */
  readonly #contextHost: ContextHost;
  #subscription: Subscription | undefined;
  /** waiting for a free slot */
  readonly #ready: Job[] = [];
  /** held until their ETA */
  readonly #scheduled = new Map<Job, NodeJS.Timeout>();
  /** running, with the controller that aborts their handler */
  readonly #active = new Map<Job, TaskAbort>();
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #processed = 0;
  /** ids revoked through remote control (Celery keeps the same in memory) */
  readonly #revokedHere = new Set<string>();
  #stopControl: (() => Promise<void>) | undefined;
  readonly #perTask = new Map<string, number>();
  /** canvas: callbacks, chain steps, chords and Celery's built-in tasks (src/worker/continuation.ts) */
  readonly #canvas: Continuation;
  /** Celery events: worker-* always, task-* when enabled */
  readonly #events: EventDispatcher;
  /** rate limits set by the `rate_limit` command (tasks per second, null = none), over the TaskSpec's */
  readonly #rateOverrides = new Map<string, number | null>();
  /** time limits set by the `time_limit` command, over the TaskSpec's */
  readonly #timeLimitOverrides = new Map<string, { hard: number | null; soft: number | null }>();
  /** per task name: its token bucket and the jobs waiting for a token */
  readonly #limited = new Map<string, RateLimited>();

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#log = options.logger.child({ component: 'worker', hostname: options.hostname });
    this.#contextHost = {
      hostname: options.hostname,
      log: this.#log,
      storeState: (message, state, meta) => {
        const fail = (err?: unknown): void => {
          this.#log.warn({ err, task: message.headers.task, taskId: message.headers.id, state }, 'could not store the state asked by updateState');
        };
        return this.#store(message, state, meta).then((stored) => { if (!stored) fail(); }, fail);
      },
    };
    this.#canvas = new Continuation({
      broker: options.broker, backend: options.backend, registry: options.registry,
      defaultQueue: options.defaultQueue ?? 'celery', logger: this.#log, now: this.#now,
    });
    this.#events = new EventDispatcher({
      broker: options.broker, hostname: options.hostname, logger: this.#log, taskEvents: options.taskEvents === true,
      version: options.version ?? '0.1.0', now: this.#now,
      status: () => ({ active: this.#active.size, processed: this.#processed }),
      ...(options.heartbeatFreq === undefined ? {} : { heartbeatFreq: options.heartbeatFreq }),
    });
  }

  /** whether task-* events are being sent */
  get taskEvents(): boolean {
    return this.#events.taskEvents;
  }

  get stats(): { active: number; scheduled: number; reserved: number; processed: number } {
    return { active: this.#active.size, scheduled: this.#scheduled.size, reserved: this.#ready.length, processed: this.#processed };
  }

  get #basePrefetch(): number {
    return this.#o.concurrency * this.#o.prefetchMultiplier;
  }

  async start(): Promise<void> {
    if (this.#o.remoteControl !== false) this.#stopControl = await startRemoteControl(this.#o.broker, this.#controlTarget(), this.#log);
    this.#subscription = await this.#o.broker.consume(
      { queues: this.#o.queues, prefetch: this.#basePrefetch },
      (delivery) => { void this.#receive(delivery); },
    );
    this.#events.start();
  }

  /** What `celery inspect` sees (same shapes as a Python worker's replies). */
  #controlTarget(): ControlTarget {
    const request = (job: Job): JsonObject => {
      const { headers, args, kwargs } = job.message;
      return {
        id: headers.id, name: headers.task, args, kwargs, type: headers.task, hostname: this.#o.hostname,
        time_start: job.started ?? null, acknowledged: job.acked === true, worker_pid: process.pid,
        delivery_info: { exchange: '', routing_key: job.delivery.queue, priority: job.message.properties.priority ?? 0, redelivered: job.delivery.redelivered },
      };
    };
    return {
      hostname: this.#o.hostname,
      registered: () => this.#o.registry.names(),
      active: () => [...this.#active.keys()].map(request),
      // waiting for a free slot or for a rate-limit token, as Celery lists both
      reserved: () => [...this.#ready, ...[...this.#limited.values()].flatMap((state) => state.waiting)].map(request),
      scheduled: () => [...this.#scheduled.keys()].map((job) => ({ eta: job.message.headers.eta, priority: job.message.properties.priority ?? 0, request: request(job) })),
      stats: () => ({
        pid: process.pid,
        total: Object.fromEntries(this.#perTask),
        pool: { 'max-concurrency': this.#o.concurrency, implementation: `celery-gateway:${this.#o.pool?.kind ?? 'async'}` },
        prefetch_count: this.#basePrefetch + this.#scheduled.size,
        uptime: Math.round(process.uptime()),
        sw_ident: 'celery-gateway',
        broker: { transport: this.#o.broker.kind },
      }),
      revoked: () => [...this.#revokedHere],
      revoke: (ids, terminate) => {
        for (const id of ids) {
          this.#revokedHere.add(id);
          if (!terminate) continue;
          for (const [job, abort] of this.#active) if (job.message.headers.id === id) abort.abort(new TaskRevoked(id));
        }
      },
      setTaskEvents: (enabled) => {
        if (this.#events.taskEvents === enabled) return false;
        this.#events.setTaskEvents(enabled);
        this.#log.info(`Events of group {task} ${enabled ? 'enabled' : 'disabled'} by remote.`);
        return true;
      },
      rateLimit: (taskName, rate): JsonObject => {
        let perSecond: number | null;
        try {
          perSecond = parseRate(rate);
        } catch (err) {
          return { error: `Invalid rate limit string: ${(err as Error).message}` };
        }
        if (!this.#o.registry.get(taskName)) {
          this.#log.error({ task: taskName }, `Rate limit attempt for unknown task ${taskName}`);
          return { error: 'unknown task' };
        }
        this.#rateOverrides.set(taskName, perSecond);
        this.#resetRateLimit(taskName);
        if (perSecond === null) {
          this.#log.info({ task: taskName }, `Rate limits disabled for tasks of type ${taskName}`);
          return { ok: 'rate limit disabled successfully' };
        }
        this.#log.info({ task: taskName, rate }, `New rate limit for tasks of type ${taskName}: ${String(rate)}.`);
        return { ok: 'new rate limit set successfully' };
      },
      timeLimit: (taskName, hard, soft): JsonObject => {
        if (!this.#o.registry.get(taskName)) {
          this.#log.error({ task: taskName }, `Change time limit attempt for unknown task ${taskName}`);
          return { error: 'unknown task' };
        }
        this.#timeLimitOverrides.set(taskName, { hard, soft });
        this.#log.info({ task: taskName, hard, soft }, `New time limits for tasks of type ${taskName}: soft=${soft} hard=${hard}`);
        return { ok: 'time limits set successfully' };
      },
      heartbeat: () => this.#events.heartbeat(),
      shutdown: (reason) => {
        this.#log.warn(reason);
        // after this reply round: the listener is stopped by the shutdown itself
        setImmediate(() => { if (this.#o.onShutdown) this.#o.onShutdown(reason); else void this.close(); });
      },
    };
  }

  /**
   * The task's rate in tasks per second (a `rate_limit` command wins over the TaskSpec), null = none.
   * Parsed once per task name: this runs for every task received.
   */
  #rateOf(task: string, spec: TaskSpec): number | null {
    if (this.#rateOverrides.has(task)) return this.#rateOverrides.get(task) ?? null;
    let rate = this.#specRates.get(task);
    if (rate === undefined) {
      try {
        rate = parseRate(spec.rateLimit);
      } catch {
        rate = null; // checked at registration
      }
      this.#specRates.set(task, rate);
    }
    return rate;
  }

  /** the TaskSpecs' rates, parsed */
  readonly #specRates = new Map<string, number | null>();

  /** A new rate for a task: a new bucket; waiting jobs are admitted again under it. */
  #resetRateLimit(task: string): void {
    const state = this.#limited.get(task);
    if (!state) return;
    clearTimeout(state.timer);
    this.#limited.delete(task);
    const waiting = state.waiting;
    this.#updatePrefetch();
    for (const job of waiting) this.#admit(job);
  }

  /** Run when a token is there: unlimited tasks go straight to the ready queue, limited ones wait their turn. */
  #admit(job: Job): void {
    const task = job.message.headers.task;
    const rate = this.#rateOf(task, job.spec);
    if (rate === null) {
      this.#enqueue(job);
      return;
    }
    let state = this.#limited.get(task);
    if (!state || state.bucket.fillRate !== rate) {
      if (state) clearTimeout(state.timer);
      state = { bucket: new TokenBucket(rate, 1), waiting: state?.waiting ?? [], timer: undefined };
      this.#limited.set(task, state);
    }
    state.waiting.push(job);
    this.#updatePrefetch();
    this.#drainLimited(task, state);
  }

  #drainLimited(task: string, state: RateLimited): void {
    state.timer = undefined;
    if (this.#closing) return;
    while (state.waiting.length > 0 && state.bucket.canConsume(1)) {
      this.#enqueue(state.waiting.shift() as Job);
    }
    this.#updatePrefetch();
    if (state.waiting.length > 0) {
      state.timer = setTimeout(() => this.#drainLimited(task, state), Math.max(1, Math.ceil(state.bucket.expectedTime(1))));
    }
  }

  /** jobs held for a rate-limit token */
  get #rateWaiting(): number {
    let n = 0;
    for (const state of this.#limited.values()) n += state.waiting.length;
    return n;
  }

  /** Warm shutdown, memoised: stop consuming, requeue what has not started, wait for running tasks. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #receive(delivery: Delivery): Promise<void> {
    const limit = this.#o.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES;
    const body = delivery.message.body;
    // a UTF-8 byte count is only needed near the limit (length <= bytes <= 3 × length)
    if (body.length * 3 > limit && Buffer.byteLength(body, 'utf8') > limit) {
      this.#log.error(
        { queue: delivery.queue, bytes: Buffer.byteLength(body, 'utf8'), limit, task: delivery.message.headers['task'], taskId: delivery.message.headers['id'] },
        'rejecting a message larger than WORKER_MAX_MESSAGE_BYTES (not parsed)',
      );
      await this.#settle(() => delivery.reject(false));
      return;
    }
    let message: TaskMessage;
    try {
      message = parseTaskMessage(delivery.message);
    } catch (err) {
      this.#log.error({ err, queue: delivery.queue, headers: delivery.message.headers }, 'rejecting invalid message');
      await this.#settle(() => delivery.reject(false));
      return;
    }
    const { task, id } = message.headers;
    const spec = this.#o.registry.get(task) ?? this.#canvas.builtin(task);
    if (!spec) {
      this.#log.error({ task, taskId: id }, `Received unregistered task of type '${task}'`);
      await this.#store(message, States.FAILURE, celeryException('NotRegistered', task) as unknown as Json);
      // as Celery's consumer does for an unknown task (a task-group event: only with task events on)
      this.#events.task('task-failed', { uuid: id, exception: `NotRegistered(${saferepr(task)})` });
      await this.#settle(() => delivery.reject(false));
      return;
    }
    if (this.#closing) {
      await this.#settle(() => delivery.reject(true));
      return;
    }
    // per-task lines and events are built only when they go somewhere (thousands a second otherwise;
    // task-succeeded carries a repr of the result)
    if (this.#log.isLevelEnabled('info')) this.#log.info({ task, taskId: id, eta: message.headers.eta }, `Task ${task}[${id}] received`);
    if (this.#events.taskEvents) this.#events.task('task-received', taskReceivedFields(message));
    const job: Job = { delivery, message, spec };
    if (await this.#revokeIfExpired(job)) return;
    const eta = message.headers.eta ? parseIsoDate(message.headers.eta) : null;
    const wait = eta ? eta.getTime() - this.#now().getTime() : 0;
    if (wait > 0) this.#schedule(job, wait);
    else this.#admit(job);
  }

  #schedule(job: Job, waitMs: number): void {
    const timer = setTimeout(() => {
      this.#scheduled.delete(job);
      this.#updatePrefetch();
      const eta = parseIsoDate(job.message.headers.eta ?? '');
      const left = eta ? eta.getTime() - this.#now().getTime() : 0;
      if (left > 0) this.#schedule(job, left);
      else this.#admit(job);
    }, Math.min(waitMs, MAX_TIMER_MS));
    this.#scheduled.set(job, timer);
    this.#updatePrefetch();
  }

  /**
   * Like Celery, an ETA task held in memory does not count against the prefetch bound. Unlike Celery, a
   * task held for its rate limit does not either (up to RATE_HELD_PREFETCH_MAX of them), so a backlog of a
   * limited task does not starve the others.
   */
  #updatePrefetch(): void {
    this.#subscription?.setPrefetch(this.#basePrefetch + this.#scheduled.size + Math.min(this.#rateWaiting, RATE_HELD_PREFETCH_MAX));
  }

  #enqueue(job: Job): void {
    this.#ready.push(job);
    this.#pump();
  }

  #pump(): void {
    while (!this.#closing && this.#active.size < this.#o.concurrency && this.#ready.length > 0) {
      const job = this.#ready.shift() as Job;
      void this.#run(job);
    }
  }

  /** Expired or revoked: store REVOKED as Celery does, ack, and tell the caller not to run it. */
  async #revokeIfExpired(job: Job, checkRevoked = false): Promise<boolean> {
    const expires = job.message.headers.expires ? parseIsoDate(job.message.headers.expires) : null;
    const expired = expires !== null && expires.getTime() <= this.#now().getTime();
    const revoked = !expired && (this.#revokedHere.has(job.message.headers.id) || (checkRevoked && this.#o.revoked ? await this.#isRevoked(job.message.headers.id) : false));
    if (!expired && !revoked) return false;
    const { task, id } = job.message.headers;
    this.#log.info({ task, taskId: id }, `Discarding ${expired ? 'expired' : 'revoked'} task ${task}[${id}]`);
    this.#events.task('task-revoked', taskRevokedFields(id, { terminated: false, expired }));
    const exc = celeryException('TaskRevokedError', expired ? 'expired' : 'revoked');
    const stored = await this.#store(job.message, States.REVOKED, exc as unknown as Json);
    // [canvas] a revoked chord member still counts towards its chord
    if (stored) await this.#continue(job.message, () => this.#canvas.afterRevoked(job.message, exc));
    await this.#settle(() => job.delivery.ack());
    return true;
  }

  /** A revoked-set outage must not stop the worker: the task then runs (logged). */
  async #isRevoked(taskId: string): Promise<boolean> {
    try {
      return (await this.#o.revoked?.isRevoked(taskId)) === true;
    } catch (err) {
      this.#log.warn({ err, taskId }, 'could not read the revoked set; running the task');
      return false;
    }
  }

  async #run(job: Job): Promise<void> {
    const abort = new TaskAbort();
    this.#active.set(job, abort);
    const { message, spec } = job;
    const { task, id } = message.headers;
    try {
      if (await this.#revokeIfExpired(job, true)) return;
      if (spec.acksLate === false) {
        // Celery's default (acks_late=False): acked when the task starts; a crash from here loses it
        await this.#settle(() => job.delivery.ack());
        job.acked = true;
        job.delivery = settledDelivery(job.delivery);
      }
      const { delivery } = job;
      job.started = Date.now() / 1000;
      this.#perTask.set(task, (this.#perTask.get(task) ?? 0) + 1);
      if (this.#events.taskEvents) this.#events.task('task-started', taskStartedFields(id));
      if (spec.trackStarted !== false) this.#storeStarted(message);
      const [hard, soft] = message.headers.timelimit;
      const override = this.#timeLimitOverrides.get(task);
      const limits = {
        hard: hard ?? (override ? override.hard : spec.timeLimit ?? null),
        soft: soft ?? (override ? override.soft : spec.softTimeLimit ?? null),
      };
      const ctx = new RunContext(job.message, job.delivery.redelivered, abort, this.#contextHost);
      // registered handlers go to the pool when there is one; canvas built-ins run here
      const outcome = this.#o.pool && this.#o.registry.get(task)
        ? await this.#o.pool.run(task, message.args, ctx, abort, limits)
        : await execute(spec, message.args, ctx, abort, limits);
      if (job.abandoned) return;
      if (abort.stopReason instanceof TaskRevoked) {
        // revoked with terminate: REVOKED whatever the handler did after its signal fired (as Celery)
        this.#log.info({ task, taskId: id }, `Task ${task}[${id}] terminated (revoked)`);
        this.#events.task('task-revoked', taskRevokedFields(id, { terminated: true, expired: false, signum: 15 }));
        const stored = await this.#store(message, States.REVOKED, celeryException('TaskRevokedError', 'terminated') as unknown as Json);
        await this.#settle(() => (stored ? delivery.ack() : delivery.reject(true)));
        return;
      }
      const seconds = (outcome.runtimeMs / 1000).toFixed(6);
      let stored: boolean;
      if (outcome.ok) {
        if (this.#log.isLevelEnabled('info')) this.#log.info({ task, taskId: id, runtime: outcome.runtimeMs }, `Task ${task}[${id}] succeeded in ${seconds}s`);
        if (this.#events.taskEvents) this.#events.task('task-succeeded', taskSucceededFields(id, outcome.value, outcome.runtimeMs / 1000));
        const ignore = spec.ignoreResult === true || message.headers.ignore_result === true;
        // [canvas] callbacks and the next chain step are published before SUCCESS is stored (its
        // meta lists them in children); the chord part is recorded after. A failure requeues the task.
        if (this.#canvas.isPlainSuccess(message)) {
          stored = ignore || await this.#store(message, States.SUCCESS, outcome.value);
        } else {
          const children = await this.#continue(message, () => this.#canvas.beforeSuccess(message, outcome.value));
          stored = children !== null && (ignore || await this.#store(message, States.SUCCESS, outcome.value, null, children.value));
          if (stored) stored = await this.#continue(message, () => this.#canvas.afterSuccess(message, outcome.value)) !== null;
        }
      } else if (outcome.error instanceof Reject) {
        await this.#rejectAsked(job, outcome.error, seconds);
        return;
      } else if (outcome.error instanceof Ignore) {
        // Celery's Ignore: ack, store nothing, no event
        this.#log.info({ task, taskId: id }, `Task ${task}[${id}] ignored in ${seconds}s`);
        stored = true;
      } else if (await this.#retryIfAsked(job, outcome.error, seconds)) {
        return;
      } else {
        const { exc, traceback } = encodeError(outcome.error);
        this.#log.info({ task, taskId: id, runtime: outcome.runtimeMs, err: outcome.error }, `Task ${task}[${id}] raised ${exc.exc_type} in ${seconds}s`);
        this.#events.task('task-failed', taskErrorFields(id, exc, traceback));
        stored = await this.#store(message, States.FAILURE, exc as unknown as Json, traceback);
        // [canvas] chord part, FAILURE for the remaining chain steps, errbacks
        if (stored) stored = await this.#continue(message, () => this.#canvas.afterFailure(message, exc, traceback)) !== null;
      }
      // Late ack: only once the outcome is stored. If it could not be, run the task again later.
      await this.#settle(() => (stored ? delivery.ack() : delivery.reject(true)));
      this.#processed += 1;
    } finally {
      this.#active.delete(job);
      if (this.#active.size === 0) this.#idle?.();
      this.#pump();
    }
  }

  /**
   * The handler refused its message (ctx.reject), as Celery's Request.reject: no result, no canvas; an
   * unacknowledged message is rejected (requeued or not) and task-rejected sent; an acked one is left.
   */
  async #rejectAsked(job: Job, error: Reject, seconds: string): Promise<void> {
    const { task, id } = job.message.headers;
    const requeue = error.options.requeue === true;
    const why = error.options.reason === undefined ? '' : `: ${error.options.reason}`;
    if (job.acked) {
      this.#log.info({ task, taskId: id }, `Task ${task}[${id}] rejected in ${seconds}s${why} (already acked: acksLate is false)`);
    } else {
      this.#log.info({ task, taskId: id, requeue }, `Task ${task}[${id}] rejected in ${seconds}s${why} (${requeue ? 'requeued' : 'dropped'})`);
      await this.#settle(() => job.delivery.reject(requeue));
      this.#events.task('task-rejected', taskRejectedFields(id, requeue));
    }
    this.#processed += 1;
  }

  /**
   * A retry asked for (ctx.retry or autoretryFor): publish the same task again with retries + 1 and an eta,
   * store RETRY (its children: the retried task), then ack. Past the limit: store FAILURE and ack.
   * Returns false for a plain failure.
   */
  async #retryIfAsked(job: Job, error: unknown, seconds: string): Promise<boolean> {
    const { message, spec, delivery } = job;
    const { task, id } = message.headers;
    const decision = decideRetry(error, message.headers, spec, this.#now());
    if (!decision) return false;
    const { exc, traceback } = encodeError(decision.exc);
    if (!decision.retry) {
      this.#log.info({ task, taskId: id }, `Task ${task}[${id}] exceeded its retries`);
      this.#events.task('task-failed', taskErrorFields(id, decision.exceeded ?? exc, traceback));
      let stored = await this.#store(message, States.FAILURE, (decision.exceeded ?? exc) as unknown as Json, traceback);
      if (stored) stored = await this.#continue(message, () => this.#canvas.afterFailure(message, decision.exceeded ?? exc, traceback)) !== null;
      await this.#settle(() => (stored ? delivery.ack() : delivery.reject(true)));
      return true;
    }
    this.#log.info({ task, taskId: id, eta: decision.eta.toISOString() }, `Task ${task}[${id}] retry: Retry in ${((decision.eta.getTime() - this.#now().getTime()) / 1000).toFixed(1)}s (ran ${seconds}s)`);
    try {
      await this.#o.broker.publish(retryMessage(delivery.message, message.headers, decision.eta), { queue: delivery.queue });
    } catch (err) {
      this.#log.warn({ err, task, taskId: id }, 'could not publish the retry; returning the task to the queue');
      await this.#settle(() => delivery.reject(true));
      return true;
    }
    this.#events.task('task-retried', taskErrorFields(id, exc, traceback));
    await this.#store(message, States.RETRY, exc as unknown as Json, traceback, [[[id, null], null]]);
    await this.#settle(() => delivery.ack());
    this.#processed += 1;
    return true;
  }

  #meta(message: TaskMessage, status: string, result: Json, traceback: string | null = null, children: Json[] = []): ResultMeta {
    const { id, group, parent_id: parentId } = message.headers;
    return buildMeta({ taskId: id, status, result, traceback, children, groupId: group, parentId, now: this.#now() });
  }

  /** [canvas] Run a continuation step; null (logged) when it failed, so the task is requeued. */
  async #continue<T>(message: TaskMessage, step: () => Promise<T>): Promise<{ value: T } | null> {
    try {
      return { value: await step() };
    } catch (err) {
      const { task, id } = message.headers;
      this.#log.error({ err, task, taskId: id }, `Task ${task}[${id}]: could not continue its workflow; returning it to the queue`);
      return null;
    }
  }

  /**
   * STARTED, not awaited and not retried: the handler starts at once (one round trip less per task).
   * It is queued before the outcome on the same backend connection, so it never lands after it.
   */
  #storeStarted(message: TaskMessage): void {
    const replyTo = message.properties.reply_to;
    const meta = this.#meta(message, States.STARTED, { pid: process.pid, hostname: this.#o.hostname });
    this.#o.backend.store(meta, replyTo ? { replyTo } : {}).catch((err: unknown) => {
      this.#log.warn({ err, taskId: message.headers.id }, 'could not store STARTED');
    });
  }

  /** Store a state of this message's task (to its reply_to with rpc://). */
  #store(message: TaskMessage, status: string, result: Json, traceback: string | null = null, children: Json[] = []): Promise<boolean> {
    const replyTo = message.properties.reply_to;
    return this.#storeSafely(this.#meta(message, status, result, traceback, children), replyTo ? { replyTo } : {});
  }

  /** Store a result, retrying a few times; false when the backend stayed unreachable. */
  async #storeSafely(meta: ResultMeta, options: StoreOptions = {}): Promise<boolean> {
    for (let attempt = 0; ; attempt += 1) {
      try {
        await this.#o.backend.store(meta, options);
        return true;
      } catch (err) {
        if (err instanceof TypeError || err instanceof RangeError) {
          // not JSON-serializable (BigInt, circular): store that as the task's failure instead
          if (meta.status === States.SUCCESS) {
            const { exc } = encodeError(new TypeError(`result is not JSON serializable: ${err.message}`));
            return this.#storeSafely({ ...meta, status: States.FAILURE, result: exc as unknown as Json }, options);
          }
        }
        const delay = STORE_RETRY_DELAYS_MS[attempt];
        if (delay === undefined) {
          this.#log.error({ err, taskId: meta.task_id, state: meta.status }, 'could not store the result');
          return false;
        }
        await new Promise((resolve) => setTimeout(resolve, delay));
      }
    }
  }

  /** Settle a delivery; a failure here (broker gone) is logged, the broker redelivers later. */
  async #settle(action: () => Promise<void>): Promise<void> {
    try {
      await action();
    } catch (err) {
      this.#log.warn({ err }, 'could not settle a delivery; the broker will deliver it again');
    }
  }

  async #shutdown(): Promise<void> {
    this.#log.info('warm shutdown: no new tasks; waiting for running ones');
    await this.#stopControl?.().catch(() => {});
    await this.#subscription?.cancel();
    const unstarted = [...this.#ready, ...this.#scheduled.keys(), ...[...this.#limited.values()].flatMap((state) => state.waiting)];
    for (const timer of this.#scheduled.values()) clearTimeout(timer);
    this.#scheduled.clear();
    for (const state of this.#limited.values()) clearTimeout(state.timer);
    this.#limited.clear();
    this.#ready.length = 0;
    await Promise.all(unstarted.map((job) => this.#settle(() => job.delivery.reject(true))));
    if (this.#active.size > 0) {
      const idle = new Promise<void>((resolve) => { this.#idle = resolve; });
      let timer: NodeJS.Timeout | undefined;
      const timedOut = new Promise<'timeout'>((resolve) => { timer = setTimeout(() => resolve('timeout'), this.#o.shutdownTimeout * 1000); });
      const result = await Promise.race([idle, timedOut]);
      clearTimeout(timer);
      if (result === 'timeout') {
        this.#log.warn({ running: this.#active.size }, 'shutdown timeout: returning running tasks to the queue');
        const running = [...this.#active.entries()];
        this.#active.clear();
        for (const [job, abort] of running) {
          job.abandoned = true;
          abort.abort(new WorkerShutdown());
        }
        await Promise.all(running.map(([job]) => this.#settle(() => job.delivery.reject(true))));
      }
    }
    await this.#events.close();
    await this.#o.pool?.close();
  }
}
