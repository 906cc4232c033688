/**
 * ioredis connections as the adapters need them: fail fast while Redis is down (no offline queue, so a
 * request gets a 503 instead of hanging), reconnect in the background with capped backoff.
 */
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { GatewayError, type ErrorCode } from '../errors.ts';
import { redactUrl } from '../config.ts';
import { isSentinelUrl, sentinelTarget } from './sentinel-url.ts';

/** How long a command waits for a connection that is still being made, before failing. */
const CONNECT_WAIT_MS = 2000;

export interface ConnectionHooks {
  /** called each time the connection is ready again after having been ready (not on the first connect) */
  onReconnect?: (() => void) | undefined;
}

/** What callers may set: never auto-pipelining (see connectRedis). */
export type ConnectionOptions = Omit<RedisOptions, 'enableAutoPipelining'>;

/**
 * An ioredis client for `url` (redis://, rediss://, sentinel://), logging connection errors and recoveries.
 * Never with ioredis' auto-pipelining: every ioredis Pipeline gets its own hidden class (a per-instance
 * `length` accessor), so each one, with all it holds, survives the young-generation GC until a full one
 * (6-10 ms scavenges measured, ~2 ms without); our TickBatchers coalesce the writes that matter.
 */
export function connectRedis(url: string, logger: Logger | undefined, options: ConnectionOptions = {}, hooks: ConnectionHooks = {}): Redis {
  const defaults: RedisOptions = {
    enableAutoPipelining: false,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: 2000,
    retryStrategy: (times) => Math.min(50 * 2 ** Math.min(times, 6), 2000),
  };
  const client = isSentinelUrl(url) ? new Redis({ ...defaults, ...sentinelOptions(url), ...options }) : new Redis(url, { ...defaults, ...options });
  let lastError = '';
  client.on('error', (err: Error) => {
    // ioredis emits on every failed reconnect: log each distinct error once
    if (err.message !== lastError) logger?.warn({ err: err.message, url: redactUrl(url) }, 'redis connection error');
    lastError = err.message;
  });
  let wasReady = false;
  client.on('ready', () => {
    if (lastError) logger?.info({ url: redactUrl(url) }, 'redis connection restored');
    lastError = '';
    if (wasReady) hooks.onReconnect?.();
    wasReady = true;
  });
  return client;
}

/**
 * ioredis' Sentinel mode for a `sentinel://…;sentinel://…` URL (see sentinel-url.ts): it asks the
 * sentinels for the master of `master_name` on every (re)connect, so after a failover (the master's
 * connection drops) it lands on the promoted replica. A READONLY answer (we are still talking to a
 * demoted master) forces that reconnect too.
 */
function sentinelOptions(url: string): RedisOptions {
  const t = sentinelTarget(url);
  if (!t.masterName) {
    throw new GatewayError('GW_ERR_CONFIG', `${redactUrl(url)}: the 'master_name' transport option must be specified (CELERY_BROKER_TRANSPORT_OPTIONS / CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS = {"master_name":"mymaster"})`);
  }
  return {
    sentinels: t.sentinels,
    name: t.masterName,
    role: 'master',
    db: t.db,
    ...(t.username === undefined ? {} : { username: t.username }),
    ...(t.password === undefined ? {} : { password: t.password }),
    ...(t.sentinelUsername === undefined ? {} : { sentinelUsername: t.sentinelUsername }),
    ...(t.sentinelPassword === undefined ? {} : { sentinelPassword: t.sentinelPassword }),
    ...(t.tls ? { tls: {}, enableTLSForSentinelMode: true } : {}),
    sentinelRetryStrategy: (times: number) => Math.min(100 * times, 1000),
    // each reconnect asks the sentinels (cheap): retry faster than for a lone Redis to catch the promotion
    retryStrategy: (times: number) => Math.min(50 * 2 ** Math.min(times, 4), 500),
    reconnectOnError: (err: Error) => (err.message.startsWith('READONLY') ? 2 : false),
  };
}

/**
 * Resolve once the client is ready. Reject with `code` at once when the connection already failed
 * (reconnecting) or fails while we wait, and after a short wait for a first connection: while Redis is
 * down every request gets its 503 now.
 */
export async function whenReady(client: Redis, code: ErrorCode): Promise<void> {
  if (client.status === 'ready') return;
  if (client.status === 'end') throw new GatewayError(code, 'redis connection closed');
  if (client.status === 'reconnecting') throw new GatewayError(code, 'redis not reachable (reconnecting)');
  await new Promise<void>((resolve, reject) => {
    const done = (err?: Error): void => {
      clearTimeout(timer);
      client.off('ready', onReady);
      client.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onReady = (): void => done();
    const onError = (err: Error): void => done(new GatewayError(code, `redis not reachable: ${err.message}`, { cause: err }));
    const timer = setTimeout(() => done(new GatewayError(code, `redis not reachable (${client.status})`)), CONNECT_WAIT_MS);
    client.on('ready', onReady);
    client.on('error', onError);
  });
}

/** Wrap a Redis failure in a GatewayError with `code` (a 503 at the HTTP layer). */
export function unavailable(err: unknown, code: ErrorCode): GatewayError {
  if (err instanceof GatewayError) return err;
  const message = err instanceof Error ? err.message : String(err);
  return new GatewayError(code, `redis: ${message}`, { cause: err });
}

/** Run `fn` once the client is ready; any failure becomes a GatewayError with `code` (a 503). */
export async function withRedis<T>(client: Redis, code: ErrorCode, fn: () => Promise<T>): Promise<T> {
  try {
    await whenReady(client, code);
    return await fn();
  } catch (err) {
    throw unavailable(err, code);
  }
}
