/**
 * The composition root: picks adapters by URL scheme and wires gateway / worker. Nothing else imports
 * an adapter.
 */
import { readFileSync } from 'node:fs';
import type { Redis } from 'ioredis';
import type { Logger } from 'pino';
import { KeyRing, parseApiKeys } from './auth/keys.ts';
import { connectRedis } from './redis/connection.ts';
import { MemoryState, RedisState, type SharedState } from './state/shared-state.ts';
import { MemoryScheduleStore, type ScheduleStore } from './beat/store.ts';
import { RedisScheduleStore } from './beat/redis-store.ts';
import { AmqpScheduleStore } from './beat/amqp-store.ts';
import type { Broker } from './brokers/broker.ts';
import { MemoryBroker } from './brokers/memory.ts';
import { AmqpBroker } from './brokers/amqp.ts';
import { RedisBroker } from './brokers/redis.ts';
import { RpcBackend } from './backends/rpc.ts';
import type { ResultBackend } from './backends/backend.ts';
import { MemoryBackend } from './backends/memory.ts';
import { RedisBackend } from './backends/redis.ts';
import { redactUrl, type Config } from './config.ts';
import { parseTransportOptions, withTransportOptions } from './redis/sentinel-url.ts';
import { GatewayError } from './errors.ts';

function scheme(url: string): string {
  const match = /^([a-z][a-z0-9+.-]*):\/\//i.exec(url);
  return match?.[1]?.toLowerCase() ?? '';
}

/** Callbacks an adapter calls about its connections (the gateway's metrics count them). */
export interface AdapterHooks {
  /** a connection was re-established after a loss */
  onReconnect?: () => void;
}

export function createBroker(config: Config, logger: Logger, hooks: AdapterHooks = {}): Broker {
  const reconnect = hooks.onReconnect ? { onReconnect: hooks.onReconnect } : {};
  const url = config.brokerUrl;
  switch (scheme(url)) {
    case 'memory':
      return new MemoryBroker();
    case 'redis':
    case 'rediss':
    case 'sentinel':
    case 'sentinels':
      return new RedisBroker({
        url: brokerRedisUrl(config), visibilityTimeoutSec: config.visibilityTimeout, logger: logger.child({ component: 'broker' }), ...reconnect,
        ...(config.redisWaitReplicas > 0 ? { waitReplicas: config.redisWaitReplicas, waitTimeoutMs: config.redisWaitTimeoutMs } : {}),
      });
    case 'amqp':
    case 'amqps':
    case 'pyamqp':
      return new AmqpBroker({
        url, logger: logger.child({ component: 'broker' }), ...reconnect,
        ...(config.queueMaxPriority > 0 ? { maxPriority: config.queueMaxPriority } : {}),
        ...(config.queueType === 'quorum' ? { queueArguments: { 'x-queue-type': 'quorum' }, globalQos: false } : {}),
      });
    default:
      throw new GatewayError('GW_ERR_CONFIG', `CELERY_BROKER_URL=${redactUrl(url)}: unsupported scheme; use redis://, rediss://, sentinel://, amqp://, amqps:// or memory://`);
  }
}

/** `replyTo` is this process's oid: the reply_to of the tasks it publishes, and its rpc:// reply queue. */
export function createBackend(config: Config, logger: Logger, replyTo: string, hooks: AdapterHooks = {}): ResultBackend {
  const url = config.resultBackend;
  const reconnect = hooks.onReconnect ? { onReconnect: hooks.onReconnect } : {};
  switch (scheme(url)) {
    case 'rpc': {
      if (!['amqp', 'amqps', 'pyamqp'].includes(scheme(config.brokerUrl))) {
        throw new GatewayError('GW_ERR_CONFIG', 'CELERY_RESULT_BACKEND=rpc:// needs an AMQP broker (CELERY_BROKER_URL=amqp://…)');
      }
      return new RpcBackend({ url: config.brokerUrl, replyTo, resultTtlSec: config.resultExpires, logger: logger.child({ component: 'backend' }), ...reconnect });
    }
    case 'memory':
      return new MemoryBackend({ submittedTtlSec: config.resultExpires });
    case 'redis':
    case 'rediss':
    case 'sentinel':
    case 'sentinels':
      return new RedisBackend({ url: backendRedisUrl(config), resultTtlSec: config.resultExpires, submittedTtlSec: config.resultExpires, logger: logger.child({ component: 'backend' }), ...reconnect });
    default:
      throw new GatewayError('GW_ERR_CONFIG', `CELERY_RESULT_BACKEND=${redactUrl(url)}: unsupported scheme; use redis://, rediss://, sentinel://, rpc:// or memory://`);
  }
}

const REDIS_SCHEMES = new Set(['redis', 'rediss', 'sentinel', 'sentinels']);

/** The broker URL with CELERY_BROKER_TRANSPORT_OPTIONS folded in (Sentinel: the master name). */
export function brokerRedisUrl(config: Config): string {
  return withTransportOptions(config.brokerUrl, parseTransportOptions(config.brokerTransportOptions, 'CELERY_BROKER_TRANSPORT_OPTIONS'));
}

/**
 * The result backend URL with CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS folded in; when those are not set
 * and the backend is the broker's URL, the broker's transport options.
 */
export function backendRedisUrl(config: Config): string {
  if (config.resultBackendTransportOptions === '' && config.resultBackend === config.brokerUrl) return brokerRedisUrl(config);
  return withTransportOptions(config.resultBackend, parseTransportOptions(config.resultBackendTransportOptions, 'CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS'));
}

/** The Redis URL gateway instances share state through: the result backend's, else the broker's. */
export function sharedRedisUrl(config: Config): string | undefined {
  if (REDIS_SCHEMES.has(scheme(config.resultBackend))) return backendRedisUrl(config);
  if (REDIS_SCHEMES.has(scheme(config.brokerUrl))) return brokerRedisUrl(config);
  return undefined;
}

export function createSharedState(config: Config, logger: Logger): { state: SharedState; rateLimitRedis?: Redis } {
  const url = sharedRedisUrl(config);
  if (!url) return { state: new MemoryState() };
  const log = logger.child({ component: 'shared-state' });
  return {
    state: new RedisState(connectRedis(url, log)),
    rateLimitRedis: connectRedis(url, log, { enableOfflineQueue: true, maxRetriesPerRequest: 1, lazyConnect: true }),
  };
}

/**
 * The API keys, or undefined when authentication is off. `serve` requires keys unless AUTH=none;
 * `dev` runs open unless keys are given.
 */
export function loadKeys(config: Config, command: string): KeyRing | undefined {
  let text = config.apiKeys;
  if (config.apiKeysFile) {
    try {
      text = readFileSync(config.apiKeysFile, 'utf8');
    } catch (err) {
      throw new GatewayError('GW_ERR_CONFIG', `API_KEYS_FILE=${config.apiKeysFile}: ${(err as Error).message}`);
    }
  }
  const mode = config.auth || (command === 'dev' && !text ? 'none' : 'required');
  if (mode === 'none') return undefined;
  if (!text) {
    throw new GatewayError('GW_ERR_CONFIG', 'API keys are required: set API_KEYS or API_KEYS_FILE (make a hash with `celery-gateway hash-key <key>`), or AUTH=none to run without authentication');
  }
  const ring = new KeyRing(parseApiKeys(text));
  if (ring.size === 0) throw new GatewayError('GW_ERR_CONFIG', 'API keys are required but the key list is empty (or set AUTH=none)');
  return ring;
}

/**
 * The beat schedule table: in Redis (shared by every beat and gateway) when there is one; with only
 * RabbitMQ, entries in-process with the leader lock and run state on RabbitMQ; else in-process.
 */
export function createScheduleStore(config: Config, logger: Logger): ScheduleStore {
  const url = sharedRedisUrl(config);
  const log = logger.child({ component: 'beat-store' });
  if (url) return new RedisScheduleStore({ url, logger: log });
  if (['amqp', 'amqps', 'pyamqp'].includes(scheme(config.brokerUrl))) {
    return new AmqpScheduleStore({ url: config.brokerUrl, logger: log, heartbeatSec: Math.max(1, Math.ceil(config.beatLockTtl)) });
  }
  return new MemoryScheduleStore();
}
