/**
 * celery_gateway_broker_reconnects_total{transport} and celery_gateway_backend_reconnects_total on the
 * real Redis and RabbitMQ: the adapters report re-established connections through the onReconnect
 * callback the CLI wires to the gateway's metrics, and GET /metrics shows them.
 *
 * Only this test's own connections are cut. Redis: the connection is named with CLIENT SETNAME, found
 * in CLIENT LIST and killed by id. RabbitMQ: the management plugin is not assumed (and never enabled on
 * the shared server), so the socket under our own AMQP connection is destroyed from the client side,
 * which takes the same reconnect path as a broker-side close.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { Redis } from 'ioredis';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { RedisBackend } from '../../src/backends/redis.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { createBackend, createBroker } from '../../src/compose.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import { GatewayMetrics } from '../../src/http/metrics.ts';
import { whenReady } from '../../src/redis/connection.ts';
import { silentLogger } from '../support/app.ts';
import { amqpUrl, rabbitGate, redisGate, redisUrl } from '../support/services.ts';

const redisSkip = await redisGate(0);
const rabbitSkip = await rabbitGate();

interface Gateway { app: FastifyInstance; broker: Broker; backend: ResultBackend; base: string }

/** The gateway as `celery-gateway serve` wires it: adapters count their reconnects into its metrics. */
async function startGateway(env: Record<string, string>): Promise<Gateway> {
  const config = loadConfig(env);
  const metrics = new GatewayMetrics();
  const broker: Broker = createBroker(config, silentLogger, { onReconnect: () => metrics.brokerReconnects.inc({ transport: broker.kind }) });
  const backend = createBackend(config, silentLogger, `h2-reply-${randomUUID()}`, { onReconnect: () => metrics.backendReconnects.inc() });
  const app = await buildApp({ broker, backend, config, logger: silentLogger, metrics });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, broker, backend, base: `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}` };
}

/** One sample of GET /metrics, or undefined when the series is absent. */
async function sample(base: string, series: string): Promise<number | undefined> {
  const text = await (await fetch(`${base}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? undefined : Number(line.slice(series.length + 1));
}

async function eventually(what: string, check: () => Promise<boolean>, timeoutMs = 8000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

const BROKER_REDIS = 'celery_gateway_broker_reconnects_total{transport="redis"}';
const BROKER_AMQP = 'celery_gateway_broker_reconnects_total{transport="amqp"}';
const BACKEND = 'celery_gateway_backend_reconnects_total';

describe('reconnect counters on Redis', { skip: redisSkip }, () => {
  let gw: Gateway;
  let admin: Redis;
  before(async () => {
    gw = await startGateway({ CELERY_BROKER_URL: redisUrl(0), CELERY_DEFAULT_QUEUE: `h2-reconnect-${randomUUID()}` });
    admin = new Redis(redisUrl(0));
  });
  after(async () => {
    await gw.app.close();
    await Promise.all([gw.broker.close(), gw.backend.close(), admin.quit()]);
  });

  /** Name one of our connections, find it in CLIENT LIST, CLIENT KILL it by id. */
  async function killOwn(client: Redis): Promise<void> {
    await whenReady(client, 'GW_ERR_BROKER_UNAVAILABLE');
    const name = `h2-reconnect-${randomUUID()}`;
    await client.client('SETNAME', name);
    const list = await admin.client('LIST') as string;
    const line = list.split('\n').find((l) => l.includes(` name=${name} `));
    const id = line && /\bid=(\d+)/.exec(line)?.[1];
    assert.ok(id, `our connection ${name} is in CLIENT LIST`);
    assert.equal(await admin.client('KILL', 'ID', id), 1);
  }

  it('counts 0 of each from the start', async () => {
    assert.equal(await sample(gw.base, BROKER_REDIS), 0);
    assert.equal(await sample(gw.base, BACKEND), 0);
  });

  it('a killed broker connection comes back and counts once, the backend counter stays', async () => {
    assert.ok(gw.broker instanceof RedisBroker);
    await killOwn(gw.broker.client);
    await eventually('the broker reconnect counted', async () => (await sample(gw.base, BROKER_REDIS)) === 1);
    assert.equal(await sample(gw.base, BACKEND), 0);
    const ready = await fetch(`${gw.base}/readyz`);
    assert.equal(ready.status, 200, 'the broker answers again');
  });

  it('a killed backend connection comes back and counts once', async () => {
    assert.ok(gw.backend instanceof RedisBackend);
    await killOwn(gw.backend.client);
    await eventually('the backend reconnect counted', async () => (await sample(gw.base, BACKEND)) === 1);
    assert.equal(await sample(gw.base, BROKER_REDIS), 1);
    assert.equal((await fetch(`${gw.base}/readyz`)).status, 200);
  });
});

describe('reconnect counters on RabbitMQ (rpc:// backend)', { skip: rabbitSkip }, () => {
  let gw: Gateway;
  before(async () => {
    gw = await startGateway({ CELERY_BROKER_URL: amqpUrl(), CELERY_RESULT_BACKEND: 'rpc://', CELERY_DEFAULT_QUEUE: `h2-reconnect-${randomUUID()}` });
    await gw.broker.ping();
    await gw.backend.ping();
  });
  after(async () => {
    await gw.app.close();
    await Promise.all([gw.broker.close(), gw.backend.close()]);
  });

  /** Destroy the socket under an open amqplib connection (the ManagedConnection of an adapter). */
  function dropSocket(conn: { current: unknown }): void {
    const stream = (conn.current as { connection?: { stream?: { destroy(err?: Error): void } } } | null)?.connection?.stream;
    assert.ok(stream, 'an open AMQP connection');
    stream.destroy(new Error('h2 test: connection cut'));
  }

  it('a lost broker connection is re-established and counted; the backend counter stays', async () => {
    assert.equal(await sample(gw.base, BROKER_AMQP), 0);
    assert.equal(await sample(gw.base, BACKEND), 0);
    dropSocket((gw.broker as unknown as { conn: { current: unknown } }).conn);
    await eventually('the AMQP broker reconnect counted', async () => (await sample(gw.base, BROKER_AMQP)) === 1);
    assert.equal(await sample(gw.base, BACKEND), 0);
    await gw.broker.ping();
  });

  it('a lost rpc:// backend connection is re-established and counted', async () => {
    dropSocket((gw.backend as unknown as { conn: { current: unknown } }).conn);
    await eventually('the rpc backend reconnect counted', async () => (await sample(gw.base, BACKEND)) === 1);
    assert.equal(await sample(gw.base, BROKER_AMQP), 1);
    await eventually('the backend answers again', async () => gw.backend.ping().then(() => true, () => false));
  });
});
