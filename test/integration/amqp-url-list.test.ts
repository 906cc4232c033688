/**
 * The AMQP URL list (`amqp://a;amqp://b`, kombu's failover form) against the shared RabbitMQ: the
 * connection skips an unreachable first node and publishes with confirms through the next one.
 * Node loss under load is in test/chaos/amqp-failover.chaos.ts.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import { silentLogger } from '../support/app.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';

describe('AMQP URL list', { skip: await rabbitGate() }, () => {
  it('connects to the first reachable node of the list and publishes there', async () => {
    const queue = `h4-list-${randomUUID().slice(0, 8)}`;
    // port 1 on loopback refuses at once: the list moves on to the real broker
    const broker = new AmqpBroker({ url: `amqp://guest:guest@127.0.0.1:1//;${amqpUrl()}`, logger: silentLogger });
    try {
      const message = buildTaskMessage({ task: 'tasks.add', id: randomUUID(), args: [1, 2], kwargs: {}, origin: 'h4', replyTo: 'h4' }, new Date());
      await broker.publish(message, { queue });
      assert.equal(broker.conn.currentNode, 1, 'the second node of the list');
      assert.equal(await broker.queueLength(queue), 1, 'confirmed and queued');
      const model = await broker.conn.get();
      const ch = await model.createChannel();
      await ch.deleteQueue(queue);
      await ch.deleteExchange(queue);
      await ch.close();
    } finally {
      await broker.close();
    }
  });

  it('a list whose nodes are all unreachable fails with GW_ERR_BROKER_UNAVAILABLE naming each node', async () => {
    const broker = new AmqpBroker({ url: 'amqp://127.0.0.1:1//;amqp://127.0.0.1:2//', logger: silentLogger });
    try {
      await assert.rejects(broker.ping(), (err: Error & { code?: string }) =>
        err.code === 'GW_ERR_BROKER_UNAVAILABLE' && /127\.0\.0\.1:1: .*127\.0\.0\.1:2: /.test(err.message));
    } finally {
      await broker.close();
    }
  });
});
