/**
 * The worker's Redis writes are coalesced per event-loop turn (src/redis/batch.ts): results stored in
 * the same turn are one STORE_MANY call, acks one ACK call, the gateway's publishes one LPUSH per list. Same semantics as one call each: a stored
 * SUCCESS (ours or Celery's, whatever its key order) is never overwritten, every acked message leaves
 * `unacked` and `unacked_index`. Also here: the result reads of GET /results (src/backends/wait.ts) as Redis sees them.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend, taskMetaKey } from '../../src/backends/redis.ts';
import { RedisBroker, UNACKED, UNACKED_INDEX } from '../../src/brokers/redis.ts';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import { TickBatcher } from '../../src/redis/batch.ts';
import { connectRedis } from '../../src/redis/connection.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import { silentLogger } from '../support/app.ts';
import { takeDeliveries } from '../support/consume.ts';
import { redisGate, redisUrl } from '../support/services.ts';

describe('TickBatcher', () => {
  it('one flush per event-loop turn, items in call order, one result each', async () => {
    const flushes: number[][] = [];
    const batcher = new TickBatcher<number, number>(async (items) => { flushes.push(items); return items.map((n) => n * 10); });
    const first = await Promise.all([1, 2, 3].map((n) => batcher.add(n)));
    const second = await batcher.add(4);
    assert.deepEqual(first, [10, 20, 30]);
    assert.equal(second, 40);
    assert.deepEqual(flushes, [[1, 2, 3], [4]]);
  });

  it('splits at max; a failed flush rejects every call of its batch and only those', async () => {
    const flushes: number[][] = [];
    const batcher = new TickBatcher<number, number>(async (items) => {
      flushes.push(items);
      if (items.includes(3)) throw new Error('boom');
      return items;
    }, 2);
    const results = await Promise.allSettled([1, 2, 3, 4, 5].map((n) => batcher.add(n)));
    assert.deepEqual(flushes, [[1, 2], [3, 4], [5]]);
    assert.deepEqual(results.map((r) => r.status), ['fulfilled', 'fulfilled', 'rejected', 'rejected', 'fulfilled']);
  });
});

const URL = redisUrl(11);
const skip = await redisGate(11);

describe('batched Redis writes', { skip }, () => {
  const redis = new Redis(URL);
  const backend = new RedisBackend({ url: URL, logger: silentLogger });
  const broker = new RedisBroker({ url: URL, logger: silentLogger, pollTimeoutSec: 1 });
  const keys: string[] = [];

  after(async () => {
    if (keys.length) await redis.del(...keys);
    await Promise.all([backend.close(), broker.close()]);
    redis.disconnect();
  });

  it('command connections do not use ioredis auto-pipelining (its Pipeline objects cost every long-lived process ~8 ms scavenges)', () => {
    // why: see connectRedis. Measured on the gateway under sequential submit + long-poll: ~20 KB promoted
    // per round trip, scavenges of 6-10 ms instead of ~2 ms.
    assert.equal(broker.client.options.enableAutoPipelining, false);
    assert.equal(backend.client.options.enableAutoPipelining, false);
    const plain = connectRedis(URL, undefined, { lazyConnect: true });
    assert.equal(plain.options.enableAutoPipelining, false, 'every connection connectRedis makes (shared state, blocking consumers)');
    plain.disconnect();
  });

  it('stores of one turn: all written, a stored SUCCESS (ours or Celery\'s, any key order) kept', async () => {
    const ids = Array.from({ length: 5 }, () => randomUUID());
    keys.push(...ids.map(taskMetaKey));
    const celerySuccess = JSON.stringify({ status: 'SUCCESS', result: 1, traceback: null, children: [], date_done: '2026-01-01T00:00:00.000000', task_id: ids[0] }).replace(/":/g, '": ').replace(/,"/g, ', "');
    const otherOrder = JSON.stringify({ result: 2, status: 'SUCCESS', task_id: ids[1] });
    const started = JSON.stringify({ status: 'STARTED', result: { pid: 1 }, task_id: ids[2] }).replace(/":/g, '": ');
    await redis.set(taskMetaKey(ids[0]!), celerySuccess);
    await redis.set(taskMetaKey(ids[1]!), otherOrder);
    await redis.set(taskMetaKey(ids[2]!), started);
    const now = new Date();
    await Promise.all(ids.map((id, i) => backend.store(buildMeta({ taskId: id, status: 'SUCCESS', result: 100 + i, traceback: null, children: [], groupId: null, parentId: null, now }))));
    const stored = await redis.mget(...ids.map(taskMetaKey));
    assert.equal(stored[0], celerySuccess, 'Celery\'s SUCCESS kept');
    assert.equal(stored[1], otherOrder, 'a SUCCESS with another key order kept');
    for (const i of [2, 3, 4]) {
      const meta = JSON.parse(stored[i]!) as { status: string; result: number };
      assert.deepEqual([meta.status, meta.result], ['SUCCESS', 100 + i], `task ${i} stored`);
    }
    const ttl = await redis.ttl(taskMetaKey(ids[3]!));
    assert.ok(ttl > 86000 && ttl <= 86400, `result TTL ${ttl}`);
  });

  it('acks of one turn: every message leaves unacked and unacked_index', async () => {
    const queue = `batch-ack-${randomUUID().slice(0, 8)}`;
    keys.push(queue);
    for (let i = 0; i < 6; i++) {
      await broker.publish(buildTaskMessage({ task: 't', id: randomUUID(), args: [i], kwargs: {}, origin: 'test', replyTo: '' }, new Date()), { queue });
    }
    const deliveries = await takeDeliveries(broker, queue, 6);
    assert.equal(deliveries.length, 6);
    const held = Object.entries(await redis.hgetall(UNACKED)).filter(([, payload]) => payload.includes(queue));
    const tags = held.map(([tag]) => tag);
    assert.equal(tags.length, 6, 'held in unacked while running');
    assert.equal((await Promise.all(tags.map((t) => redis.zscore(UNACKED_INDEX, t)))).filter((s) => s !== null).length, 6);
    await Promise.all(deliveries.map((d) => d.ack()));
    assert.deepEqual((await redis.hmget(UNACKED, ...tags)).filter(Boolean), [], 'gone from unacked');
    assert.deepEqual((await Promise.all(tags.map((t) => redis.zscore(UNACKED_INDEX, t)))).filter((s) => s !== null), [], 'gone from unacked_index');
  });

  it('publishes of one turn: one LPUSH per list, consumed in call order; a list that fails fails only its own', async () => {
    const queue = `batch-pub-${randomUUID().slice(0, 8)}`;
    const broken = `batch-pub-broken-${randomUUID().slice(0, 8)}`;
    keys.push(queue, broken, `_kombu.binding.${queue}`, `_kombu.binding.${broken}`);
    await redis.set(broken, 'not a list');
    await broker.publish(buildTaskMessage({ task: 't', id: randomUUID(), args: [-1], kwargs: {}, origin: 'test', replyTo: '' }, new Date()), { queue }); // binding declared
    const monitor = await redis.monitor(); // a connection of its own
    const lpushes: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => { if (args[0]?.toLowerCase() === 'lpush' && (args[1] === queue || args[1] === broken)) lpushes.push(`${args[1]}:${args.length - 2}`); });
    const ids = Array.from({ length: 8 }, () => randomUUID());
    const results = await Promise.allSettled([
      ...ids.map((id, i) => broker.publish(buildTaskMessage({ task: 't', id, args: [i], kwargs: {}, origin: 'test', replyTo: '' }, new Date()), { queue })),
      broker.publish(buildTaskMessage({ task: 't', id: randomUUID(), args: [], kwargs: {}, origin: 'test', replyTo: '' }, new Date()), { queue: broken }),
    ]);
    await new Promise((r) => setTimeout(r, 50));
    monitor.disconnect();
    assert.deepEqual(results.map((r) => r.status), [...ids.map(() => 'fulfilled'), 'rejected']);
    assert.deepEqual(lpushes.sort(), [`${broken}:1`, `${queue}:8`].sort(), 'one LPUSH per list for the whole turn');
    const deliveries = await takeDeliveries(broker, queue, 9);
    assert.deepEqual(deliveries.map((d) => d.message.headers['id']).slice(1), ids, 'consumed in call order');
    await Promise.all(deliveries.map((d) => d.ack()));
  });

  it('result reads on Redis: a poll is one GET and no SUBSCRIBE; a stored result answers a long-poll from its first GET', async () => {
    const polled = randomUUID();
    const stored = randomUUID();
    keys.push(taskMetaKey(stored));
    await backend.store(buildMeta({ taskId: stored, status: 'SUCCESS', result: 5, traceback: null, children: [], groupId: null, parentId: null, now: new Date() }));
    const monitor = await redis.monitor();
    const seen: string[] = [];
    monitor.on('monitor', (_time: string, args: string[]) => {
      const key = args[1] ?? '';
      if (key === taskMetaKey(polled) || key === taskMetaKey(stored)) seen.push(`${args[0]?.toLowerCase()} ${key === taskMetaKey(polled) ? 'polled' : 'stored'}`);
    });
    assert.equal(await waitForResult(backend, polled, 0), null);
    assert.equal((await waitForResult(backend, stored, 5000))?.result, 5);
    await new Promise((r) => setTimeout(r, 100));
    monitor.disconnect();
    assert.deepEqual(seen.filter((c) => c.endsWith('polled')), ['get polled'], 'a poll: one GET, no SUBSCRIBE');
    assert.equal(seen.filter((c) => c === 'get stored').length, 1, `a stored result: one GET (${seen.join(', ')})`);
  });
});
