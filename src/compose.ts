/**
 * The composition root: picks adapters by URL scheme and wires gateway / worker. Nothing else imports
 * an adapter.
 */
import type { Logger } from 'pino';
import type { Broker } from './brokers/broker.ts';
import { MemoryBroker } from './brokers/memory.ts';
import { RedisBroker } from './brokers/redis.ts';
import type { ResultBackend } from './backends/backend.ts';
import { MemoryBackend } from './backends/memory.ts';
import { RedisBackend } from './backends/redis.ts';
import { redactUrl, type Config } from './config.ts';
import { GatewayError } from './errors.ts';

function scheme(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  return match?.[1]?.toLowerCase() ?? '';
}

export function createBroker(config: Config, logger: Logger): Broker {
  const url = config.brokerUrl;
  switch (scheme(url)) {
    case 'memory':
      return new MemoryBroker();
    case 'redis':
    case 'rediss':
      return new RedisBroker({ url, visibilityTimeoutSec: config.visibilityTimeout, logger: logger.child({ component: 'broker' }) });
    default:
      throw new GatewayError('GW_ERR_CONFIG', `CELERY_BROKER_URL=${redactUrl(url)}: unsupported scheme; use redis://, rediss:// or memory://`);
  }
}

export function createBackend(config: Config, logger: Logger): ResultBackend {
  const url = config.resultBackend;
  switch (scheme(url)) {
    case 'memory':
      return new MemoryBackend({ submittedTtlSec: config.resultExpires });
    case 'redis':
    case 'rediss':
      return new RedisBackend({ url, resultTtlSec: config.resultExpires, submittedTtlSec: config.resultExpires, logger: logger.child({ component: 'backend' }) });
    default:
      throw new GatewayError('GW_ERR_CONFIG', `CELERY_RESULT_BACKEND=${redactUrl(url)}: unsupported scheme; use redis://, rediss:// or memory://`);
  }
}
