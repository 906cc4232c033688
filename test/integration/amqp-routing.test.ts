/**
 * Routing beyond the default exchange on RabbitMQ (Celery's routing guide): `options.exchange` and
 * `options.routing_key` through the gateway reach the queues bound to a topic or fanout exchange.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { amqplib } from '../../src/brokers/amqp-support.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { parseTaskRoutes } from '../../src/routing.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';

describe('AMQP exchange routing through the gateway (task options and a routing table)', { skip: await rabbitGate() }, () => {
  it('topic and fanout exchanges deliver to their bound queues', async () => {
    const id = randomUUID().slice(0, 8);
    const conn = await amqplib.connect(amqpUrl());
    const ch = await conn.createChannel();
    const topic = `gw-topic-${id}`;
    const fanout = `gw-fanout-${id}`;
    const [reports, everything, fan1, fan2] = ['reports', 'all', 'f1', 'f2'].map((q) => `gw-${q}-${id}`) as [string, string, string, string];
    await ch.assertExchange(topic, 'topic', { durable: true });
    await ch.assertExchange(fanout, 'fanout', { durable: true });
    for (const q of [reports, everything, fan1, fan2]) await ch.assertQueue(q, { durable: true });
    await ch.bindQueue(reports, topic, 'reports.*');
    await ch.bindQueue(everything, topic, '#');
    await ch.bindQueue(fan1, fanout, '');
    await ch.bindQueue(fan2, fanout, '');
    // a routing table (Celery's task_routes) sends audit.* through the topic exchange without options
    const routes = parseTaskRoutes(JSON.stringify({ 'audit.*': { exchange: topic, routing_key: 'audit.log', queue: everything } }));
    const gw = await startGateway({ broker: new AmqpBroker({ url: amqpUrl(), logger: silentLogger }), backend: new MemoryBackend(), routes });
    try {
      const a = await gw.post('/tasks/reports.render', { args: [1], options: { exchange: topic, routing_key: 'reports.daily', queue: reports } });
      assert.equal(a.status, 202, JSON.stringify(a.json));
      const b = await gw.post('/tasks/billing.charge', { args: [2], options: { exchange: topic, routing_key: 'billing.monthly', queue: everything } });
      assert.equal(b.status, 202);
      const c = await gw.post('/tasks/cache.flush', { options: { exchange: fanout, queue: fan1 } });
      assert.equal(c.status, 202);
      const d = await gw.post('/tasks/audit.write', { args: [3] });
      assert.equal(d.status, 202);
      assert.equal(d.json.queue, everything);
      const count = async (q: string) => (await ch.checkQueue(q)).messageCount;
      assert.equal(await count(reports), 1, 'reports.* matched reports.daily only');
      assert.equal(await count(everything), 3, '# matched all three');
      assert.equal(await count(fan1), 1);
      assert.equal(await count(fan2), 1, 'fanout copies to every bound queue');
      const got = await ch.get(reports, { noAck: true });
      assert.ok(got);
      assert.equal(got.properties.headers?.['task'], 'reports.render');
      assert.equal(got.fields.exchange, topic);
      assert.equal(got.fields.routingKey, 'reports.daily');
    } finally {
      await gw.close();
      for (const q of [reports, everything, fan1, fan2]) await ch.deleteQueue(q);
      await ch.deleteExchange(topic);
      await ch.deleteExchange(fanout);
      await conn.close();
    }
  });
});
