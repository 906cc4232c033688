/**
 * Connection loss under a stream of submissions, on the real brokers: every 202 reaches the queue (none
 * lost), every other answer is a 503 with a code, and the gateway recovers on its own.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { promisify } from 'node:util';
import { describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { takeDeliveries } from '../support/consume.ts';
import { amqpUrl, rabbitGate, redisGate } from '../support/services.ts';

const run = promisify(execFile);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Submit `count` tasks at a steady pace, calling `fault` after `faultAfter` of them. */
async function streamWithFault(broker: Broker, queue: string, count: number, faultAfter: number, fault: () => Promise<void>) {
  const gw = await startGateway({ broker, backend: new MemoryBackend() });
  const accepted: string[] = [];
  const refused: { status: number; code: string }[] = [];
  try {
    const inflight: Promise<void>[] = [];
    for (let i = 0; i < count; i += 1) {
      if (i === faultAfter) inflight.push(fault());
      inflight.push(gw.post('/tasks/tasks.add', { args: [i, 0], options: { queue } }).then((res) => {
        if (res.status === 202) accepted.push(res.json.id);
        else refused.push({ status: res.status, code: res.json.code });
      }));
      await sleep(5);
    }
    await Promise.all(inflight);
    // recovered: a submission after the fault is accepted again
    let recovered = false;
    for (let i = 0; i < 100 && !recovered; i += 1) {
      const res = await gw.post('/tasks/tasks.add', { args: [-1, 0], options: { queue } });
      if (res.status === 202) { accepted.push(res.json.id); recovered = true; } else await sleep(100);
    }
    assert.ok(recovered, 'the gateway accepts submissions again after the fault');
  } finally {
    await gw.app.close();
  }
  for (const r of refused) assert.deepEqual(r, { status: 503, code: 'GW_ERR_BROKER_UNAVAILABLE' });
  const deliveries = await takeDeliveries(broker, queue, accepted.length + 50, 3000);
  const seen = new Set(deliveries.map((d) => d.message.headers['id'] as string));
  await Promise.all(deliveries.map((d) => d.ack()));
  const lost = accepted.filter((id) => !seen.has(id));
  assert.deepEqual(lost, [], `${lost.length} of ${accepted.length} accepted tasks were lost`);
  return { accepted: accepted.length, refused: refused.length };
}

const redisSkip = await redisGate(4);
const rabbitSkip = await rabbitGate();

describe('broker connection loss under load', () => {
  it('Redis: CLIENT KILL of every connection mid-stream loses no 202', { skip: redisSkip }, async () => {
    const url = 'redis://127.0.0.1:6379/4';
    const admin = new Redis(url);
    const broker = new RedisBroker({ url, logger: silentLogger });
    try {
      const result = await streamWithFault(broker, `fault-redis-${randomUUID()}`, 200, 80, async () => {
        await admin.client('KILL', 'TYPE', 'normal', 'SKIPME', 'yes');
      });
      assert.ok(result.accepted >= 100, `accepted ${result.accepted}`);
    } finally {
      await broker.close();
      admin.disconnect();
    }
  });

  it('RabbitMQ: closing every connection mid-stream loses no 202 (publisher confirms)', { skip: rabbitSkip }, async () => {
    const broker = new AmqpBroker({ url: amqpUrl(), logger: silentLogger });
    const queue = `fault-amqp-${randomUUID()}`;
    try {
      const result = await streamWithFault(broker, queue, 200, 80, async () => {
        await run('rabbitmqctl', ['close_all_connections', 'celery-gateway fault test']);
      });
      assert.ok(result.accepted >= 100, `accepted ${result.accepted}`);
    } finally {
      await broker.close();
    }
  });
});
