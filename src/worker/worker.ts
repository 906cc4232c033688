/**
 * The Node worker: consumes Celery messages, runs registered handlers with bounded concurrency, stores
 * results in Celery's format and acks after the handler (late ack: at-least-once).
 */
import type { Logger } from 'pino';
import type { Broker, Delivery, Subscription } from '../brokers/broker.ts';
import type { ResultBackend, StoreOptions } from '../backends/backend.ts';
import type { RevokedSet } from '../state/revoked.ts';
import { parseTaskMessage } from '../protocol/message.ts';
import { buildMeta, celeryException, encodeError } from '../protocol/result-meta.ts';
import { parseIsoDate } from '../protocol/time.ts';
import { States, type Json, type JsonObject, type ResultMeta, type TaskMessage } from '../protocol/types.ts';
import { Continuation } from './continuation.ts';
import { TaskRevoked, WorkerShutdown } from './errors.ts';
import { execute } from './executor.ts';
import { decideRetry, Retry, retryMessage } from './retry.ts';
import { startRemoteControl, type ControlTarget } from './control.ts';
import type { TaskContext, TaskRegistry, TaskSpec } from './registry.ts';

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
  /** queue for canvas signatures without a queue option (Celery's task_default_queue); default "celery" */
  defaultQueue?: string;
  /** the durable revoked set, checked before each task runs */
  revoked?: Pick<RevokedSet, 'get'>;
  /** answer Celery remote control on the pidbox (ping, inspect, revoke); default true */
  remoteControl?: boolean;
}

interface Job {
  delivery: Delivery;
  message: TaskMessage;
  spec: TaskSpec;
  /** set when a shutdown gave up waiting: the message was requeued, the late outcome is discarded */
  abandoned?: boolean;
  /** unix seconds when it started running */
  started?: number;
}

/** setTimeout's ceiling; longer ETAs are waited for in steps */
const MAX_TIMER_MS = 2 ** 31 - 1;
const STORE_RETRY_DELAYS_MS = [100, 500, 2000];

export class Worker {
  readonly #o: WorkerOptions;
  readonly #now: () => Date;
  readonly #log: Logger;
  #subscription: Subscription | undefined;
  /** waiting for a free slot */
  readonly #ready: Job[] = [];
  /** held until their ETA */
  readonly #scheduled = new Map<Job, NodeJS.Timeout>();
  /** running, with the controller that aborts their handler */
  readonly #active = new Map<Job, AbortController>();
  #idle: (() => void) | undefined;
  #closing: Promise<void> | undefined;
  #processed = 0;
  /** ids revoked through remote control (Celery keeps the same in memory) */
  readonly #revokedHere = new Set<string>();
  #stopControl: (() => Promise<void>) | undefined;
  readonly #perTask = new Map<string, number>();
  /** canvas: callbacks, chain steps, chords and Celery's built-in tasks (src/worker/continuation.ts) */
  readonly #canvas: Continuation;

  constructor(options: WorkerOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#log = options.logger.child({ component: 'worker', hostname: options.hostname });
    this.#canvas = new Continuation({
      broker: options.broker, backend: options.backend, registry: options.registry,
      defaultQueue: options.defaultQueue ?? 'celery', logger: this.#log, now: this.#now,
    });
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
  }

  /** What `celery inspect` sees (same shapes as a Python worker's replies). */
  #controlTarget(): ControlTarget {
    const request = (job: Job): JsonObject => {
      const { headers, args, kwargs } = job.message;
      return {
        id: headers.id, name: headers.task, args, kwargs, type: headers.task, hostname: this.#o.hostname,
        time_start: job.started ?? null, acknowledged: false, worker_pid: process.pid,
        delivery_info: { exchange: '', routing_key: job.delivery.queue, priority: job.message.properties.priority ?? 0, redelivered: job.delivery.redelivered },
      };
    };
    return {
      hostname: this.#o.hostname,
      registered: () => this.#o.registry.names(),
      active: () => [...this.#active.keys()].map(request),
      reserved: () => this.#ready.map(request),
      scheduled: () => [...this.#scheduled.keys()].map((job) => ({ eta: job.message.headers.eta, priority: job.message.properties.priority ?? 0, request: request(job) })),
      stats: () => ({
        pid: process.pid,
        total: Object.fromEntries(this.#perTask),
        pool: { 'max-concurrency': this.#o.concurrency, implementation: 'celery-gateway:async' },
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
    };
  }

  /** Warm shutdown, memoised: stop consuming, requeue what has not started, wait for running tasks. */
  close(): Promise<void> {
    this.#closing ??= this.#shutdown();
    return this.#closing;
  }

  async #receive(delivery: Delivery): Promise<void> {
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
      await this.#settle(() => delivery.reject(false));
      return;
    }
    if (this.#closing) {
      await this.#settle(() => delivery.reject(true));
      return;
    }
    this.#log.info({ task, taskId: id, eta: message.headers.eta }, `Task ${task}[${id}] received`);
    const job: Job = { delivery, message, spec };
    if (await this.#revokeIfExpired(job)) return;
    const eta = message.headers.eta ? parseIsoDate(message.headers.eta) : null;
    const wait = eta ? eta.getTime() - this.#now().getTime() : 0;
    if (wait > 0) this.#schedule(job, wait);
    else this.#enqueue(job);
  }

  #schedule(job: Job, waitMs: number): void {
    const timer = setTimeout(() => {
      this.#scheduled.delete(job);
      this.#updatePrefetch();
      const eta = parseIsoDate(job.message.headers.eta ?? '');
      const left = eta ? eta.getTime() - this.#now().getTime() : 0;
      if (left > 0) this.#schedule(job, left);
      else this.#enqueue(job);
    }, Math.min(waitMs, MAX_TIMER_MS));
    this.#scheduled.set(job, timer);
    this.#updatePrefetch();
  }

  /** Like Celery, an ETA task held in memory does not count against the prefetch bound. */
  #updatePrefetch(): void {
    this.#subscription?.setPrefetch(this.#basePrefetch + this.#scheduled.size);
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
      return (await this.#o.revoked?.get(taskId)) != null;
    } catch (err) {
      this.#log.warn({ err, taskId }, 'could not read the revoked set; running the task');
      return false;
    }
  }

  async #run(job: Job): Promise<void> {
    const abort = new AbortController();
    this.#active.set(job, abort);
    const { message, spec, delivery } = job;
    const { task, id } = message.headers;
    try {
      if (await this.#revokeIfExpired(job, true)) return;
      job.started = Date.now() / 1000;
      this.#perTask.set(task, (this.#perTask.get(task) ?? 0) + 1);
      if (spec.trackStarted !== false) this.#storeStarted(message);
      const [hard, soft] = message.headers.timelimit;
      const outcome = await execute(spec, message.args, this.#context(job, abort.signal), abort, {
        hard: hard ?? spec.timeLimit ?? null,
        soft: soft ?? spec.softTimeLimit ?? null,
      });
      if (job.abandoned) return;
      if (abort.signal.reason instanceof TaskRevoked) {
        // revoked with terminate: REVOKED whatever the handler did after its signal fired (as Celery)
        this.#log.info({ task, taskId: id }, `Task ${task}[${id}] terminated (revoked)`);
        const stored = await this.#store(message, States.REVOKED, celeryException('TaskRevokedError', 'terminated') as unknown as Json);
        await this.#settle(() => (stored ? delivery.ack() : delivery.reject(true)));
        return;
      }
      const seconds = (outcome.runtimeMs / 1000).toFixed(6);
      let stored: boolean;
      if (outcome.ok) {
        this.#log.info({ task, taskId: id, runtime: outcome.runtimeMs }, `Task ${task}[${id}] succeeded in ${seconds}s`);
        const ignore = spec.ignoreResult === true || message.headers.ignore_result === true;
        // [canvas] callbacks and the next chain step are published before SUCCESS is stored (its
        // meta lists them in children); the chord part is recorded after. A failure requeues the task.
        const children = await this.#continue(message, () => this.#canvas.beforeSuccess(message, outcome.value));
        stored = children !== null && (ignore || await this.#store(message, States.SUCCESS, outcome.value, null, children.value));
        if (stored) stored = await this.#continue(message, () => this.#canvas.afterSuccess(message, outcome.value)) !== null;
      } else if (await this.#retryIfAsked(job, outcome.error, seconds)) {
        return;
      } else {
        const { exc, traceback } = encodeError(outcome.error);
        this.#log.info({ task, taskId: id, runtime: outcome.runtimeMs, err: outcome.error }, `Task ${task}[${id}] raised ${exc.exc_type} in ${seconds}s`);
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
    await this.#store(message, States.RETRY, exc as unknown as Json, traceback, [[[id, null], null]]);
    await this.#settle(() => delivery.ack());
    this.#processed += 1;
    return true;
  }

  #context(job: Job, signal: AbortSignal): TaskContext {
    const { headers, kwargs } = job.message;
    const parent = this.#log;
    let log: Logger | undefined;
    return {
      id: headers.id,
      name: headers.task,
      kwargs,
      retries: headers.retries,
      rootId: headers.root_id,
      parentId: headers.parent_id,
      groupId: headers.group,
      headers,
      hostname: this.#o.hostname,
      redelivered: job.delivery.redelivered,
      signal,
      retry: (options) => { throw new Retry(options); },
      // created on first use: a child logger per task is measurable at thousands of tasks/s
      get log(): Logger {
        log ??= parent.child({ task: headers.task, taskId: headers.id });
        return log;
      },
    };
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
    const unstarted = [...this.#ready, ...this.#scheduled.keys()];
    for (const timer of this.#scheduled.values()) clearTimeout(timer);
    this.#scheduled.clear();
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
  }
}
