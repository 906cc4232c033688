/**
 * The core promise on RabbitMQ: the gateway's messages are run by a REAL Python Celery worker (results
 * through Redis and through rpc://), and a REAL Python client calls our Node worker through RabbitMQ.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { RpcBackend } from '../../src/backends/rpc.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { celeryGate, runCeleryClient, startCeleryWorker, type CeleryWorker } from '../support/python.ts';
import { amqpUrl, rabbitGate, redisGate } from '../support/services.ts';

const AMQP = amqpUrl();
const REDIS = 'redis://127.0.0.1:6379/5';
const skip = (await celeryGate()) || (await rabbitGate()) || (await redisGate(5));
const tag = `${process.pid}-${Date.now().toString(36)}`;

describe('gateway → RabbitMQ → real Python Celery worker', { skip }, () => {
  const queue = `amqp-py-${tag}`;
  let pyRedis: CeleryWorker;
  let gw: TestGateway;

  before(async () => {
    pyRedis = await startCeleryWorker({ brokerUrl: AMQP, backendUrl: REDIS, queues: [queue], concurrency: 2 });
    gw = await startGateway({ broker: new AmqpBroker({ url: AMQP, logger: silentLogger }), backend: new RedisBackend({ url: REDIS, logger: silentLogger }) });
  });
  after(async () => {
    await gw?.close();
    await pyRedis?.stop();
  });

  it('runs tasks.add with results on Redis (the common production setup)', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [20, 22], options: { queue } });
    assert.equal(sent.status, 202);
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'SUCCESS', pyRedis.logs());
    assert.equal(res.json.result, 42);
  });

  it('POST /tasks/:id/revoke reaches the Python worker through the celery.pidbox fanout', async () => {
    const sent = await gw.post('/tasks/tasks.add', { args: [1, 1], options: { queue, countdown: 2 } });
    await new Promise((r) => setTimeout(r, 500));
    assert.equal((await gw.post(`/tasks/${sent.json.id}/revoke`, {})).status, 202);
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'REVOKED', pyRedis.logs());
    assert.equal(res.json.error.message, 'revoked');
  });

  it('a failing Python task shows its error through the gateway', async () => {
    const sent = await gw.post('/tasks/tasks.fail', { options: { queue } });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'FAILURE');
    assert.equal(res.json.error.type, 'ValueError');
  });
});

describe('gateway → RabbitMQ → real Python worker, results over rpc://', { skip }, () => {
  const queue = `amqp-rpc-${tag}`;
  let py: CeleryWorker;
  let gw: TestGateway;

  before(async () => {
    py = await startCeleryWorker({ brokerUrl: AMQP, backendUrl: 'rpc://', queues: [queue], concurrency: 1 });
    const replyTo = randomUUID();
    gw = await startGateway({
      broker: new AmqpBroker({ url: AMQP, logger: silentLogger }),
      backend: new RpcBackend({ url: AMQP, replyTo, resultTtlSec: 600, logger: silentLogger }),
      replyTo,
    });
  });
  after(async () => {
    await gw?.close();
    await py?.stop();
  });

  it('the worker replies to our reply queue and GET /results/:id serves it', async () => {
    const sent = await gw.post('/tasks/tasks.mul', { args: [6, 7], options: { queue } });
    const res = await gw.get(`/results/${sent.json.id}?wait=20`);
    assert.equal(res.json.state, 'SUCCESS', py.logs());
    assert.equal(res.json.result, 42);
  });
});

describe('real Python client → RabbitMQ → our Node worker (Redis results)', { skip }, () => {
  const queue = `amqp-node-${tag}`;
  let worker: Worker;
  let broker: AmqpBroker;
  let backend: RedisBackend;
  const urls = { brokerUrl: AMQP, backendUrl: REDIS };

  before(async () => {
    broker = new AmqpBroker({ url: AMQP, logger: silentLogger });
    backend = new RedisBackend({ url: REDIS, logger: silentLogger });
    const registry = new TaskRegistry().registerAll({
      'tasks.add': (x: number, y: number) => x + y,
      'tasks.fail': () => { const e = new Error('node says no'); e.name = 'NodeError'; throw e; },
    });
    worker = new Worker({ broker, backend, registry, queues: [queue], concurrency: 4, prefetchMultiplier: 2, hostname: `amqp.${process.pid}@test`, logger: silentLogger, shutdownTimeout: 5 });
    await worker.start();
  });
  after(async () => {
    await worker?.close();
    await broker?.close();
    await backend?.close();
  });

  it('AsyncResult.get() returns what the Node handler computed', async () => {
    const r = await runCeleryClient(['send', 'tasks.add', '2', '3', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.result, 5);
  });

  it('countdown and priority messages from Python are run', async () => {
    const r = await runCeleryClient(['send', 'tasks.add', '1', '1', '--queue', queue, '--countdown', '1', '--timeout', '20'], urls);
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.result, 2);
  });

  it('celery inspect ping lists our Node worker (pidbox on RabbitMQ)', async () => {
    const ping = await runCeleryClient(['ping', '--timeout', '2'], urls);
    const replies = Object.assign({}, ...(ping.json.replies as object[]));
    assert.deepEqual(replies[`amqp.${process.pid}@test`], { ok: 'pong' }, ping.stdout);
    const registered = await runCeleryClient(['inspect', 'registered'], urls);
    assert.ok(registered.json.registered[`amqp.${process.pid}@test`].includes('tasks.add'), registered.stdout);
  });

  it('a throwing handler makes Python raise an exception of that name', async () => {
    const r = await runCeleryClient(['send', 'tasks.fail', '--queue', queue, '--timeout', '20'], urls);
    assert.equal(r.code, 1);
    assert.equal(r.json.exception.type, 'NodeError');
  });
});

describe('real Python client → RabbitMQ → our Node worker, results over rpc://', { skip }, () => {
  const queue = `amqp-node-rpc-${tag}`;
  let worker: Worker;
  let broker: AmqpBroker;
  let backend: RpcBackend;

  before(async () => {
    broker = new AmqpBroker({ url: AMQP, logger: silentLogger });
    backend = new RpcBackend({ url: AMQP, replyTo: randomUUID(), resultTtlSec: 600, logger: silentLogger });
    const registry = new TaskRegistry().registerAll({ 'tasks.mul': (x: number, y: number) => x * y });
    worker = new Worker({ broker, backend, registry, queues: [queue], concurrency: 2, prefetchMultiplier: 2, hostname: `amqp-rpc.${process.pid}@test`, logger: silentLogger, shutdownTimeout: 5 });
    await worker.start();
  });
  after(async () => {
    await worker?.close();
    await broker?.close();
    await backend?.close();
  });

  it("the result reaches the Python client's reply queue", async () => {
    const r = await runCeleryClient(['send', 'tasks.mul', '6', '7', '--queue', queue, '--timeout', '20'], { brokerUrl: AMQP, backendUrl: 'rpc://' });
    assert.equal(r.code, 0, r.stdout + r.stderr);
    assert.equal(r.json.state, 'SUCCESS');
    assert.equal(r.json.result, 42);
  });
});
