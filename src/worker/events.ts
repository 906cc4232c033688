/**
 * The worker's event dispatcher (Celery's EventDispatcher + heartbeat bootstep): worker-online at start,
 * worker-heartbeat every 2 s, worker-offline on close, always; task-* events only while task events are
 * enabled (`-E` / CELERY_WORKER_SEND_TASK_EVENTS, or the `enable_events` remote control command).
 *
 * Publishing never blocks or fails a task: events are fire-and-forget (as Celery's, delivery_mode 1) and
 * a broker error is logged once until a publish succeeds again.
 */
import { loadavg, type as osType } from 'node:os';
import type { Logger } from 'pino';
import type { Broker } from '../brokers/broker.ts';
import {
  buildEvent, EVENT_EXCHANGE, eventMessage, eventRoutingKey, HEARTBEAT_FREQ, workerFields, type TaskEventType, type WorkerEventType,
} from '../protocol/events.ts';
import type { JsonObject } from '../protocol/types.ts';

export interface EventDispatcherOptions {
  broker: Broker;
  hostname: string;
  logger: Logger;
  /** send task-* events from the start */
  taskEvents: boolean;
  /** active / processed counts for worker-* events */
  status: () => { active: number; processed: number };
  /** software version in worker-* events (sw_ver) */
  version: string;
  /** heartbeat period, seconds (Celery: 2.0) */
  heartbeatFreq?: number;
  now?: () => Date;
}

export class EventDispatcher {
  readonly #o: EventDispatcherOptions;
  readonly #now: () => Date;
  readonly #freq: number;
  #taskEvents: boolean;
  /** Lamport clock, one tick per event sent */
  #clock = 0;
  #heartbeat: NodeJS.Timeout | undefined;
  #failing = false;
  /** publishes still in flight; close() waits for them so worker-offline really leaves */
  readonly #pending = new Set<Promise<void>>();

  constructor(options: EventDispatcherOptions) {
    this.#o = options;
    this.#now = options.now ?? (() => new Date());
    this.#freq = options.heartbeatFreq ?? HEARTBEAT_FREQ;
    this.#taskEvents = options.taskEvents;
  }

  /** whether task-* events are sent now */
  get taskEvents(): boolean {
    return this.#taskEvents;
  }

  /** Celery's `enable_events` / `disable_events` remote control (Flower sends enable_events). */
  setTaskEvents(enabled: boolean): void {
    this.#taskEvents = enabled;
  }

  /** worker-online, then a heartbeat every freq seconds */
  start(): void {
    this.#worker('worker-online');
    this.#heartbeat = setInterval(() => this.#worker('worker-heartbeat'), this.#freq * 1000);
    this.#heartbeat.unref();
  }

  /** worker-offline, waiting (briefly) until the broker has it */
  async close(): Promise<void> {
    if (this.#heartbeat) clearInterval(this.#heartbeat);
    this.#heartbeat = undefined;
    this.#worker('worker-offline');
    const pending = Promise.allSettled([...this.#pending]);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([pending, new Promise((resolve) => { timer = setTimeout(resolve, 2000); })]);
    clearTimeout(timer);
  }

  /** A worker-heartbeat now (Celery's `heartbeat` remote control, sent by a Receiver's wakeup). */
  heartbeat(): void {
    this.#worker('worker-heartbeat');
  }

  /** A task event, if task events are on. */
  task(type: TaskEventType, fields: JsonObject): void {
    if (this.#taskEvents) this.send(type, fields);
  }

  #worker(type: WorkerEventType): void {
    const { active, processed } = this.#o.status();
    this.send(type, workerFields({
      freq: this.#freq, active, processed, loadavg: loadavg(), swIdent: 'celery-gateway', swVer: this.#o.version, swSys: osType(),
    }));
  }

  send(type: string, fields: JsonObject): void {
    this.#clock += 1;
    const event = buildEvent(type, fields, { hostname: this.#o.hostname, pid: process.pid }, this.#clock, this.#now());
    const sent = this.#o.broker.publishEvent(eventMessage(event), EVENT_EXCHANGE, eventRoutingKey(type)).then(
      () => { this.#failing = false; },
      (err: unknown) => {
        if (!this.#failing) this.#o.logger.warn({ err, type }, 'could not publish a Celery event (logged once until one gets through)');
        this.#failing = true;
      },
    );
    this.#pending.add(sent);
    void sent.finally(() => this.#pending.delete(sent));
  }
}
