/**
 * The conformance suites on the Redis adapters (database 12 of REDIS_URL). Skipped when Redis is not
 * running, except under CI=true where that is an error.
 */
import { describe } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend, taskMetaKey } from '../../src/backends/redis.ts';
import { RedisBroker, UNACKED, UNACKED_INDEX } from '../../src/brokers/redis.ts';
import { consumeOrder } from '../../src/protocol/kombu-envelope.ts';
import { silentLogger } from '../support/app.ts';
import { redisGate, redisUrl } from '../support/services.ts';
import { backendConformance } from './backend-suite.ts';
import { brokerConformance } from './broker-suite.ts';

const DB = 12;
const url = redisUrl(DB);
const skip = await redisGate(DB);

/** Delete the lists and bindings of these queues, and unacked entries that point at them. */
async function cleanQueues(queues: string[]): Promise<void> {
  const redis = new Redis(url);
  try {
    const names = new Set(queues);
    const stale: string[] = [];
    for (const [tag, value] of Object.entries(await redis.hgetall(UNACKED))) {
      const routingKey = (JSON.parse(value) as unknown[])[2];
      if (typeof routingKey === 'string' && names.has(routingKey)) stale.push(tag);
    }
    if (stale.length > 0) await redis.multi().hdel(UNACKED, ...stale).zrem(UNACKED_INDEX, ...stale).exec();
    if (queues.length > 0) await redis.del(...consumeOrder(queues), ...queues.map((q) => `_kombu.binding.${q}`));
  } finally {
    redis.disconnect();
  }
}

async function cleanTasks(ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  const redis = new Redis(url);
  try {
    await redis.del(...ids.map(taskMetaKey));
  } finally {
    redis.disconnect();
  }
}

if (skip) {
  describe('conformance on redis', { skip }, () => {});
} else {
  brokerConformance('redis', async () => new RedisBroker({ url, logger: silentLogger, pollTimeoutSec: 1 }), { cleanup: cleanQueues });
  backendConformance('redis', async () => new RedisBackend({ url, logger: silentLogger }), { cleanup: cleanTasks });
}
