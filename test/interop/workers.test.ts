/**
 * GET /workers and Flower's /api/workers list a REAL Python Celery worker and our Node worker side by
 * side, through Celery's remote control, on Redis and on RabbitMQ.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { celeryGate, startCeleryWorker, type CeleryWorker } from '../support/python.ts';
import { amqpUrl, rabbitGate, redisGate } from '../support/services.ts';

const REDIS = 'redis://127.0.0.1:6379/13';
const celerySkip = (await celeryGate()) || (await redisGate(13));
const amqpSkip = celerySkip || (await rabbitGate());

function workersSuite(name: string, brokerUrl: string, makeBroker: () => Broker, skip: string | false, dropConnections?: () => Promise<void>): void {
  describe(`GET /workers on ${name}: Python and Node workers`, { skip }, () => {
    const queue = `workers-${name}-${process.pid}`.replace(/\W/g, '-');
    let py: CeleryWorker;
    let worker: Worker;
    let gw: TestGateway;
    let broker: Broker;
    let backend: RedisBackend;
    const nodeName = `node-workers.${process.pid}@test`;

    before(async () => {
      broker = makeBroker();
      backend = new RedisBackend({ url: REDIS, logger: silentLogger });
      worker = new Worker({ broker, backend, registry: new TaskRegistry().register('node.only', () => 1), queues: [queue], concurrency: 1, prefetchMultiplier: 1, hostname: nodeName, logger: silentLogger, shutdownTimeout: 1 });
      [py] = await Promise.all([startCeleryWorker({ brokerUrl, backendUrl: REDIS, queues: [`${queue}-py`], concurrency: 1 }), worker.start()]);
      gw = await startGateway({ broker: makeBroker(), backend: new RedisBackend({ url: REDIS, logger: silentLogger }) });
    });
    after(async () => {
      await gw?.close();
      await worker?.close();
      await broker?.close();
      await backend?.close();
      await py?.stop();
    });

    it('lists both, with what each has registered', async () => {
      const res = await gw.get('/workers?timeout=1.5');
      assert.equal(res.status, 200);
      const byName = new Map(res.json.workers.map((w: any) => [w.hostname, w]));
      const node: any = byName.get(nodeName);
      const python: any = byName.get(py.nodeName);
      assert.ok(node, `node worker listed: ${JSON.stringify(res.json)}`);
      assert.ok(python, `python worker listed: ${JSON.stringify(res.json)}`);
      assert.equal(node.ok, true);
      assert.deepEqual(node.registered, ['node.only']);
      assert.equal(python.ok, true);
      assert.ok(python.registered.some((t: string) => t.startsWith('tasks.add')), python.registered.join(','));
    });

    if (dropConnections) it('still answers after the broker dropped every connection (listener set up again)', async () => {
      await dropConnections();
      let listed = false;
      for (let i = 0; i < 10 && !listed; i += 1) {
        await new Promise((r) => setTimeout(r, 500));
        const res = await gw.get('/workers?timeout=1').catch(() => null);
        listed = res?.status === 200 && res.json.workers.some((w: any) => w.hostname === nodeName && w.ok);
      }
      assert.ok(listed, 'the Node worker answers ping again after reconnecting');
    });

    it("Flower's /api/workers gives their inspect data", async () => {
      const res = await gw.get('/api/workers?timeout=1.5');
      assert.equal(res.status, 200);
      assert.equal(res.json[nodeName].stats.pid, process.pid);
      assert.ok(res.json[py.nodeName].stats, JSON.stringify(Object.keys(res.json)));
      assert.deepEqual(res.json[nodeName].active, []);
    });
  });
}

workersSuite('redis', REDIS, () => new RedisBroker({ url: REDIS, logger: silentLogger }), celerySkip);
workersSuite('rabbitmq', amqpUrl(), () => new AmqpBroker({ url: amqpUrl(), logger: silentLogger }), amqpSkip, async () => {
  await promisify(execFile)('rabbitmqctl', ['close_all_connections', 'celery-gateway reconnect test']);
});
