/**
 * Publishes Celery task messages: the one place the gateway (and later workflows and beat) send tasks.
 */
import { randomUUID } from 'node:crypto';
import { hostname } from 'node:os';
import type { Broker, Route } from './brokers/broker.ts';
import type { ResultBackend } from './backends/backend.ts';
import { buildTaskMessage, celeryOrigin, type TaskCall } from './protocol/message.ts';
import { isGatewayTaskId, newTaskId } from './protocol/task-id.ts';
import type { Json, JsonObject } from './protocol/types.ts';
import { applyRoutes, type TaskRoute } from './routing.ts';
import { resolveOptions, type TaskOptions } from './task-options.ts';
import type { Logger } from 'pino';

export interface SendRequest {
  task: string;
  args?: Json[];
  kwargs?: JsonObject;
  options?: TaskOptions;
  /** told where the message will go (after task_routes); throws to refuse it, with nothing published */
  authorize?: ((route: Route) => void) | undefined;
  /** the caller has recorded options.task_id already (POST /workflows records every id of the tree at once) */
  idRecorded?: boolean;
}

export interface SentTask {
  id: string;
  task: string;
  queue: string;
  eta: Date | null;
  expires: Date | null;
}

export interface ProducerOptions {
  broker: Broker;
  backend: ResultBackend;
  defaultQueue: string;
  logger: Logger;
  now?: () => Date;
  /** Celery's task_routes: defaults by task-name glob */
  routes?: readonly TaskRoute[];
  /** reply_to of every task (the process oid); a fresh uuid by default */
  replyTo?: string;
  /** told how long each publish took, for metrics */
  onPublished?: (seconds: number, ok: boolean) => void;
}

export class Producer {
  readonly #broker: Broker;
  readonly #backend: ResultBackend;
  readonly #defaultQueue: string;
  readonly #logger: Logger;
  readonly #now: () => Date;
  readonly #onPublished: ((seconds: number, ok: boolean) => void) | undefined;
  readonly #routes: readonly TaskRoute[];
  /** Celery's `origin` header: gen<pid>@<host> */
  readonly origin = celeryOrigin(process.pid, hostname());
  /** this process's reply queue name (Celery's thread oid); rpc:// results travel there */
  readonly replyTo: string;
  /** queues this process published to (GET /queues lists them with the default queue) */
  readonly queues = new Set<string>();

  constructor(options: ProducerOptions) {
    this.#broker = options.broker;
    this.#backend = options.backend;
    this.#defaultQueue = options.defaultQueue;
    this.#logger = options.logger;
    this.#now = options.now ?? (() => new Date());
    this.#onPublished = options.onPublished;
    this.replyTo = options.replyTo ?? randomUUID();
    this.#routes = options.routes ?? [];
    this.queues.add(options.defaultQueue);
  }

  /**
   * Publish one task. Resolves once the broker has the message; rejects (nothing published) with a
   * GatewayError when an option is invalid or the broker is unreachable.
   */
  async send(request: SendRequest, extra: Partial<TaskCall> = {}): Promise<SentTask> {
    const now = this.#now();
    const options = this.#routes.length > 0 ? applyRoutes(this.#routes, request.task, request.options ?? {}) : (request.options ?? {});
    const resolved = resolveOptions(options, this.#defaultQueue, now);
    request.authorize?.(resolved.route);
    const id = options.task_id ?? newTaskId();
    const call: TaskCall = {
      task: request.task,
      id,
      args: request.args ?? [],
      kwargs: request.kwargs ?? {},
      eta: resolved.eta,
      expires: resolved.expires,
      timeLimit: resolved.timeLimit,
      ignoreResult: resolved.ignoreResult,
      origin: this.origin,
      replyTo: this.replyTo,
      priority: resolved.priority ?? 0,
      ...extra,
    };
    const message = buildTaskMessage(call, now);
    // The record of submitted ids only lets GET /results tell "unknown" from "pending", and our own ids
    // tell it by their checksum: only an id the client chose is recorded. A failure to write the record
    // must not turn a published task into an error the client would retry (a duplicate).
    const chosen = options.task_id !== undefined && request.idRecorded !== true && !isGatewayTaskId(id);
    const remembered = chosen ? this.#backend.rememberSubmitted([id]).catch((err: unknown) => {
      this.#logger.warn({ err, taskId: id }, 'could not record the submitted task id');
    }) : undefined;
    const started = performance.now();
    try {
      await this.#broker.publish(message, resolved.route);
      this.#onPublished?.((performance.now() - started) / 1000, true);
    } catch (err) {
      this.#onPublished?.((performance.now() - started) / 1000, false);
      throw err;
    }
    if (remembered) await remembered;
    if (this.queues.size < 1000) this.queues.add(resolved.route.queue);
    return { id, task: request.task, queue: resolved.route.queue, eta: resolved.eta, expires: resolved.expires };
  }
}
