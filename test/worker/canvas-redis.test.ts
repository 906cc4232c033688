import { RedisBackend } from '../../src/backends/redis.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { silentLogger } from '../support/app.ts';
import { redisGate } from '../support/python.ts';
import { canvasSuite } from './canvas-suite.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/14';
const skip = await redisGate(REDIS_URL);

if (skip) {
  const { describe } = await import('node:test');
  describe('workflows on redis', { skip }, () => {});
} else {
  canvasSuite('redis', async () => ({
    broker: new RedisBroker({ url: REDIS_URL, logger: silentLogger, pollTimeoutSec: 1 }),
    backend: new RedisBackend({ url: REDIS_URL, logger: silentLogger }),
  }));
}
