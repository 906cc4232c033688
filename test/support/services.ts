/**
 * Where the external services of the adapter tests live, and gates that skip a suite when one is not
 * running: `describe('…', { skip: await redisGate() }, …)`. Under CI=true a missing service is an error,
 * so CI cannot go green by skipping.
 *
 *   REDIS_URL  base Redis URL (default redis://127.0.0.1:6379); redisUrl(db) picks the database
 *   AMQP_URL   RabbitMQ URL (default amqp://guest:guest@127.0.0.1:5672//)
 */
import net from 'node:net';
import { Redis } from 'ioredis';

/** The Redis URL for database `db` (each test file uses its own so they can clean up freely). */
export function redisUrl(db: number): string {
  const url = new URL(process.env['REDIS_URL'] || 'redis://127.0.0.1:6379');
  url.pathname = `/${db}`;
  return url.toString();
}

export function amqpUrl(): string {
  return process.env['AMQP_URL'] || 'amqp://guest:guest@127.0.0.1:5672//';
}

/**
 * false when `probe` resolves (the service is there), else a skip reason; under CI=true a failing probe
 * throws instead.
 */
export async function serviceGate(name: 'redis' | 'rabbitmq', probe: () => Promise<void>): Promise<string | false> {
  try {
    await probe();
    return false;
  } catch (err) {
    const reason = `${name} not available: ${err instanceof Error ? err.message : String(err)}`;
    if (process.env['CI'] === 'true') throw new Error(`${reason}; ${name} is required under CI=true`);
    return reason;
  }
}

/** PING through a throwaway connection that neither retries nor queues. */
export async function pingRedis(url: string, timeoutMs = 1000): Promise<void> {
  const client = new Redis(url, {
    lazyConnect: true,
    connectTimeout: timeoutMs,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  let cause: Error | undefined;
  client.on('error', (err: Error) => { cause ??= err; }); // the socket error says more than connect()'s
  try {
    await client.connect();
    await client.ping();
  } catch (err) {
    throw new Error(`${new URL(url).host}: ${(cause ?? (err as Error)).message}`);
  } finally {
    client.disconnect();
  }
}

/** A TCP connection to host:port succeeds within timeoutMs. */
export function tcpConnect(host: string, port: number, timeoutMs = 1000): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = net.connect({ host, port });
    const done = (err?: Error): void => {
      socket.destroy();
      if (err) reject(err);
      else resolve();
    };
    socket.setTimeout(timeoutMs, () => done(new Error(`no answer from ${host}:${port} within ${timeoutMs} ms`)));
    socket.once('connect', () => done());
    socket.once('error', (err) => done(err));
  });
}

export function redisGate(db = 0): Promise<string | false> {
  return serviceGate('redis', () => pingRedis(redisUrl(db)));
}

/** A TCP connect to the AMQP port is enough for now. */
export function rabbitGate(): Promise<string | false> {
  const url = new URL(amqpUrl());
  return serviceGate('rabbitmq', () => tcpConnect(url.hostname || '127.0.0.1', url.port ? Number(url.port) : 5672));
}
