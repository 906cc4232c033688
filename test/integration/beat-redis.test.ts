/**
 * Beat against a real Redis (db 7): two beats share one schedule table and lock; every 1 s tick is
 * published exactly once (counted on a queue of its own), a crashed leader is replaced within the lock
 * TTL without a duplicate or a gap, and a restarted beat carries on from the persisted state.
 */
import assert from 'node:assert/strict';
import { Redis } from 'ioredis';
import { after, before, describe, it } from 'node:test';
import { startBeat, type Beat, type PublishedRun } from '../../src/beat/beat.ts';
import { validateEntry } from '../../src/beat/entry.ts';
import { RedisScheduleStore } from '../../src/beat/redis-store.ts';
import { RedisBackend } from '../../src/backends/redis.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { Producer } from '../../src/producer.ts';
import { silentLogger } from '../support/app.ts';
import { bodyOf, takeDeliveries } from '../support/consume.ts';
import { redisGate } from '../support/python.ts';
import { assertConsecutive, sleep, tickSeconds, waitFor } from '../support/beat.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/7';
const skip = await redisGate(REDIS_URL);
const tag = `${process.pid}-${Date.now().toString(36)}`;
const PREFIX = `celery-gateway-beat-test-${tag}-`;
const QUEUE = `beat-it-${tag}`;
const TTL = 1500;
const TICK = 100;


describe('beat on Redis: two beats, one publisher', { skip }, () => {
  const redis = new Redis(REDIS_URL, { lazyConnect: true });
  const broker = new RedisBroker({ url: REDIS_URL, logger: silentLogger, pollTimeoutSec: 1 });
  const backend = new RedisBackend({ url: REDIS_URL, logger: silentLogger });
  const producer = new Producer({ broker, backend, defaultQueue: 'celery', logger: silentLogger });
  const stores: RedisScheduleStore[] = [];
  const beats: Beat[] = [];
  const events: Array<PublishedRun & { by: string }> = [];

  /** a beat "process": its own store connection and lock id */
  async function beat(id: string, extra: { catchUp?: 'once' | 'skip'; graceMs?: number } = {}): Promise<{ beat: Beat; store: RedisScheduleStore }> {
    const store = new RedisScheduleStore({ url: REDIS_URL, prefix: PREFIX, logger: silentLogger });
    stores.push(store);
    const b = await startBeat({ producer, store, logger: silentLogger, id, lockTtlMs: TTL, tickMs: TICK, onPublish: (run) => events.push({ ...run, by: id }), ...extra });
    beats.push(b);
    return { beat: b, store };
  }



  before(async () => {
    await redis.connect();
    const setup = new RedisScheduleStore({ url: REDIS_URL, prefix: PREFIX, logger: silentLogger });
    stores.push(setup);
    await setup.put(validateEntry({ task: 'tasks.add', args: [1, 2], every: 1, options: { queue: QUEUE } }, { name: 'every-second' }), Date.now());
  });

  after(async () => {
    await Promise.all(beats.map((b) => b.close()));
    await Promise.all(stores.map((s) => s.close()));
    const keys = await redis.keys(`${PREFIX}*`);
    if (keys.length > 0) await redis.del(...keys);
    await redis.del(QUEUE);
    await Promise.all([broker.close(), backend.close()]);
    redis.disconnect();
  });

  it('publishes each tick exactly once; killing the leader hands over within the TTL', async () => {
    const started = Date.now();
    const a = await beat('A');
    await waitFor('A to lead', () => a.beat.isLeader, 3000);
    const b = await beat('B');
    await sleep(4200);
    assert.ok(!b.beat.isLeader, 'B stands by while A leads');
    assert.deepEqual(events.filter((e) => e.by === 'B'), [], 'only the leader publishes');
    const fromA = tickSeconds(events);
    assert.ok(fromA.length >= 3, `A published ${fromA.length} ticks`);
    assert.ok(fromA[0]! * 1000 - started <= 1000 + TICK * 3, 'the first tick after start ran');
    assertConsecutive(fromA);

    // crash A: stop its loop and drop its connection without releasing the lock
    await a.beat.close({ releaseLock: false });
    await a.store.close();
    const crashedAt = Date.now();
    assert.equal(await redis.get(`${PREFIX}leader`), 'A', 'the dead leader still holds the lock');
    await waitFor('B to take over', () => b.beat.isLeader, TTL + 2000);
    const handover = Date.now() - crashedAt;
    assert.ok(handover <= TTL + 3 * TICK, `took over after ${handover} ms (TTL ${TTL} ms)`);
    await waitFor('B to publish 3 ticks', () => events.filter((e) => e.by === 'B').length >= 3, 6000);
    await b.beat.close();

    const all = tickSeconds(events);
    assertConsecutive(all);
    assert.ok(events.every((e) => e.missedSince === undefined), 'no tick counted as missed across the handover');
    assert.equal(await broker.queueLength(QUEUE), events.length, 'messages on the queue = ticks published');
    const stored = await stores[0]!.get('every-second');
    assert.equal(stored!.totalRunCount, events.length);
    assert.equal(stored!.cursor, events.at(-1)!.tick);

    const [d] = await takeDeliveries(broker, QUEUE, 1);
    assert.equal(d!.message.headers['task'], 'tasks.add');
    assert.deepEqual(bodyOf(d!)[0], [1, 2]);
    await d!.ack();
  });

  it('a restarted beat resumes from the stored cursor: no repeat, missed ticks run once', async () => {
    const before = events.length;
    const lastTick = events.at(-1)!.tick;
    await sleep(2600); // nobody runs: two or three ticks are missed (grace 500 ms below)
    const c = await beat('C', { catchUp: 'once', graceMs: 500 });
    await waitFor('C to publish 3 runs', () => events.length >= before + 3, 5000);
    await c.beat.close();
    const resumed = events.slice(before);
    assert.ok(resumed[0]!.tick > lastTick, 'no tick repeated');
    assert.equal(resumed[0]!.missedSince, lastTick + 1000, 'the missed ticks were caught up, once');
    assert.equal(await redis.hget(`${PREFIX}cursor`, 'every-second'), String(resumed.at(-1)!.tick));
    assertConsecutive(tickSeconds(resumed.slice(1)));
  });
});
