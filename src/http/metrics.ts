/**
 * Prometheus metrics of one gateway instance (prom-client, a registry per app so tests can build many).
 */
import { Counter, Gauge, Registry, collectDefaultMetrics } from 'prom-client';
import { BatchedCounter, BucketHistogram } from './metric-series.ts';

/** Task names come from clients: past this many distinct names, new ones are counted as "other". */
const MAX_TASK_LABELS = 500;

export class GatewayMetrics {
  readonly registry = new Registry();
  readonly #taskNames = new Set<string>();

  readonly httpRequests = new BatchedCounter({
    name: 'celery_gateway_http_requests_total', help: 'HTTP requests by route, method and status',
    labelNames: ['route', 'method', 'status'] as const, registers: [this.registry],
  });
  readonly httpDuration = new BucketHistogram({
    name: 'celery_gateway_http_request_duration_seconds', help: 'HTTP request duration by route',
    labelNames: ['route'] as const, buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5, 30, 60],
    registers: [this.registry],
  });
  readonly submissions = new BatchedCounter({
    name: 'celery_gateway_task_submissions_total', help: 'Task submissions by task name and outcome (accepted, refused, unavailable)',
    labelNames: ['task', 'outcome'] as const, registers: [this.registry],
  });
  readonly publishDuration = new BucketHistogram({
    name: 'celery_gateway_publish_duration_seconds', help: 'Time for the broker to take a message (publish until written / confirmed)',
    labelNames: ['outcome'] as const, buckets: [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.5, 1],
    registers: [this.registry],
  });
  readonly resultWaits = new Counter({
    name: 'celery_gateway_result_waits_total', help: 'GET /results long-polls by how they ended (ready, timeout, aborted)',
    labelNames: ['outcome'] as const, registers: [this.registry],
  });
  readonly openLongPolls = new Gauge({
    name: 'celery_gateway_open_long_polls', help: 'Long-polls waiting right now', registers: [this.registry],
  });

  readonly brokerReconnects = new Counter({
    name: 'celery_gateway_broker_reconnects_total', help: 'Broker connections re-established after a loss, by transport (redis, amqp)',
    labelNames: ['transport'] as const, registers: [this.registry],
  });
  readonly backendReconnects = new Counter({
    name: 'celery_gateway_backend_reconnects_total', help: 'Result backend connections (Redis, or AMQP for rpc://) re-established after a loss',
    registers: [this.registry],
  });

  /** Show the reconnect counters at 0 from the start, so a rate() works from the first scrape. */
  countReconnects(transport: string): void {
    this.brokerReconnects.inc({ transport }, 0);
    this.backendReconnects.inc(0);
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'celery_gateway_' });
  }

  taskLabel(task: string): string {
    if (this.#taskNames.has(task)) return task;
    if (this.#taskNames.size >= MAX_TASK_LABELS) return 'other';
    this.#taskNames.add(task);
    return task;
  }
}
