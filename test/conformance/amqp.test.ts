/**
 * The conformance suites on RabbitMQ: AmqpBroker (priority queues: higher first, x-max-priority 10 as
 * Celery's task_queue_max_priority; reject(true) requeues to the front) and the rpc:// backend.
 * Skipped when RabbitMQ is not running, except under CI=true where that is an error.
 */
// amqp-support first: it must load amqplib itself (int64 header decoding, see there)
import { amqplib } from '../../src/brokers/amqp-support.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { randomUUID } from 'node:crypto';
import { describe } from 'node:test';
import { RpcBackend } from '../../src/backends/rpc.ts';
import { silentLogger } from '../support/app.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';
import { backendConformance } from './backend-suite.ts';
import { brokerConformance } from './broker-suite.ts';

const url = amqpUrl();
const skip = await rabbitGate();

/** Delete the queues and their same-named exchanges (Celery declares one per queue). */
async function cleanQueues(queues: string[]): Promise<void> {
  const conn = await amqplib.connect(url);
  try {
    const ch = await conn.createChannel();
    for (const q of queues) {
      await ch.deleteQueue(q);
      await ch.deleteExchange(q);
    }
    await ch.close();
  } finally {
    await conn.close();
  }
}

if (skip) {
  describe('conformance on amqp', { skip }, () => {});
} else {
  brokerConformance('amqp', async () => new AmqpBroker({ url, logger: silentLogger, maxPriority: 10 }), {
    priority: 'higher-first',
    requeue: 'front',
    roundRobin: false,
    cleanup: cleanQueues,
  });
  // reply queues are auto-delete: they go away with the backend's consumer
  backendConformance('rpc', async () => new RpcBackend({ url, replyTo: randomUUID(), resultTtlSec: 3600, logger: silentLogger }));
}
