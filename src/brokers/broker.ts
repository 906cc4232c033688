import type { RawMessage } from '../protocol/types.ts';

/**
 * Where a message goes. Celery's default is the anonymous exchange "" with routing key = queue name.
 * With an explicit `exchange`, the broker routes through that exchange's bindings (Celery's routing guide).
 */
export interface Route {
  queue: string;
  exchange?: string;
  routingKey?: string;
}

/** One message handed to a consumer. Settle it exactly once with ack() or reject(). */
export interface Delivery {
  readonly message: RawMessage;
  /** the queue it was consumed from */
  readonly queue: string;
  /** true when the broker delivered it before (restore after a crash, AMQP redelivery) */
  readonly redelivered: boolean;
  /** the message is done: remove it for good */
  ack(): Promise<void>;
  /** give it back (`requeue`) or drop it */
  reject(requeue: boolean): Promise<void>;
}

export interface ConsumeOptions {
  queues: readonly string[];
  /** at most this many unsettled deliveries at once (Celery: concurrency × prefetch multiplier) */
  prefetch: number;
}

export interface Subscription {
  /** change the unsettled-delivery bound (Celery raises it for each ETA task it holds) */
  setPrefetch(prefetch: number): void;
  /**
   * Stop fetching. Resolves once no further delivery will be made. Deliveries already handed out stay
   * the consumer's to settle.
   */
  cancel(): Promise<void>;
}

/**
 * The port every transport adapter implements: queue semantics only (publish, consume with manual ack,
 * queue depth). Connection handling, reconnects and transport knobs belong to the adapter.
 * It is not a result store: see ResultBackend.
 */
export interface Broker {
  /** "memory" | "redis" | "amqp" */
  readonly kind: string;
  /** the URL with any password hidden, for banners and logs */
  readonly displayUrl: string;
  /** resolves once the broker has the message (written / confirmed); rejects with a GatewayError otherwise */
  publish(message: RawMessage, route: Route): Promise<void>;
  consume(options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription>;
  /**
   * Publish to a fanout exchange (Celery's `celery.pidbox` remote control): every consumer bound at that
   * moment gets a copy, nothing is kept for later ones. Redis: PUBLISH on `/<db>.<exchange>`.
   */
  broadcast(message: RawMessage, exchange: string): Promise<void>;
  /**
   * Receive what is broadcast on a fanout exchange (Celery's `celery.pidbox`) while this node is up.
   * AMQP: a queue `queue` (non-durable, auto-delete, as Celery's `<node>.celery.pidbox`) bound to it;
   * Redis: SUBSCRIBE `/<db>.<exchange>`. Resolves with a function that stops listening.
   */
  listenBroadcast(exchange: string, queue: string, onMessage: (message: RawMessage) => void): Promise<() => Promise<void>>;
  /**
   * Publish a Celery event (`celeryev`, §9): AMQP: to the topic exchange (declared durable as Celery does)
   * with `routingKey` (`worker.heartbeat`, `task.succeeded`…); Redis: PUBLISH on
   * `/<db>.<exchange>/<routingKey>` (kombu's fanout with patterns). Nothing is kept for absent listeners.
   * Memory: reaches this process's `listenBroadcast(exchange)` listeners.
   */
  publishEvent(message: RawMessage, exchange: string, routingKey: string): Promise<void>;
  /** Publish to a direct exchange by routing key only (Celery's `reply.celery.pidbox` replies). */
  publishToExchange(message: RawMessage, exchange: string, routingKey: string): Promise<void>;
  /**
   * Collect replies sent to a direct exchange with `routingKey` (Celery's `<oid>.reply.celery.pidbox`
   * queue) for `timeoutMs`. `send` is called once the reply queue is ready, to send the request.
   */
  gatherReplies(exchange: string, routingKey: string, queue: string, timeoutMs: number, send: () => Promise<void>): Promise<RawMessage[]>;
  /** messages waiting in a queue (all priority levels) */
  queueLength(queue: string): Promise<number>;
  /** rejects when the broker cannot be reached */
  ping(): Promise<void>;
  /** idempotent */
  close(): Promise<void>;
}
