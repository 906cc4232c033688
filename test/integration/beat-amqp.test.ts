/**
 * Beat with only RabbitMQ (no Redis): the leader lock is an exclusive queue, the run state a one-message
 * durable queue. Two beats publish every 1 s tick exactly once (counted on a queue of their own), a
 * crashed leader's lock goes with its connection and the standby takes over with no duplicate or gap,
 * and a restarted beat carries on from the persisted state.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { AmqpScheduleStore, withHeartbeat } from '../../src/beat/amqp-store.ts';
import { startBeat, type Beat, type PublishedRun } from '../../src/beat/beat.ts';
import { validateEntry } from '../../src/beat/entry.ts';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { amqplib } from '../../src/brokers/amqp-support.ts';
import { Producer } from '../../src/producer.ts';
import { silentLogger } from '../support/app.ts';
import { bodyOf, takeDeliveries } from '../support/consume.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';
import { assertConsecutive, sleep, tickSeconds, waitFor } from '../support/beat.ts';

const AMQP = amqpUrl();
const skip = await rabbitGate();
const tag = `${process.pid}-${Date.now().toString(36)}`;
const PREFIX = `beat-amqp-test-${tag}-`;
const QUEUE = `beat-amqp-it-${tag}`;
const TTL = 1500;
const TICK = 100;


describe('withHeartbeat', () => {
  it('adds heartbeat= to each URL of a list that has none', () => {
    assert.equal(withHeartbeat('amqp://a//', 5), 'amqp://a//?heartbeat=5');
    assert.equal(withHeartbeat('amqp://a//?frame_max=8192;amqp://b//?heartbeat=2', 5), 'amqp://a//?frame_max=8192&heartbeat=5;amqp://b//?heartbeat=2');
    assert.equal(withHeartbeat('amqp://a//', undefined), 'amqp://a//');
  });
});

describe('beat on RabbitMQ only: two beats, one publisher', { skip }, () => {
  const broker = new AmqpBroker({ url: AMQP, logger: silentLogger });
  const backend = new MemoryBackend();
  const producer = new Producer({ broker, backend, defaultQueue: 'celery', logger: silentLogger });
  const stores: AmqpScheduleStore[] = [];
  const beats: Beat[] = [];
  const events: Array<PublishedRun & { by: string }> = [];
  const entry = validateEntry({ task: 'tasks.add', args: [1, 2], every: 1, options: { queue: QUEUE } }, { name: 'every-second', source: 'file' });

  /** a beat "process": its own store (connection) and lock id, the same file entry */
  async function beat(id: string, extra: { catchUp?: 'once' | 'skip'; graceMs?: number } = {}): Promise<{ beat: Beat; store: AmqpScheduleStore }> {
    const store = new AmqpScheduleStore({ url: AMQP, prefix: PREFIX, logger: silentLogger, heartbeatSec: 2 });
    stores.push(store);
    await store.put(entry, Date.now());
    const b = await startBeat({ producer, store, logger: silentLogger, id, lockTtlMs: TTL, tickMs: TICK, onPublish: (run) => events.push({ ...run, by: id }), ...extra });
    beats.push(b);
    return { beat: b, store };
  }


  after(async () => {
    await Promise.all(beats.map((b) => b.close()));
    await Promise.all(stores.map((s) => s.close()));
    const conn = await amqplib.connect(AMQP);
    const ch = await conn.createChannel();
    for (const q of [QUEUE, `${PREFIX}state`, `${PREFIX}leader`]) await ch.deleteQueue(q).catch(() => {});
    await conn.close();
    await broker.close();
  });

  it('publishes each tick exactly once; a crashed leader hands over at once (its lock goes with its connection)', async () => {
    const started = Date.now();
    const a = await beat('A');
    await waitFor('A to lead', () => a.beat.isLeader, 5000);
    const b = await beat('B');
    await sleep(3200);
    assert.ok(!b.beat.isLeader, 'B stands by while A leads');
    assert.deepEqual(events.filter((e) => e.by === 'B'), [], 'only the leader publishes');
    const fromA = tickSeconds(events);
    assert.ok(fromA.length >= 2, `A published ${fromA.length} ticks`);
    assert.ok(fromA[0]! * 1000 - started <= 1000 + TICK * 5, 'the first tick after start ran');
    assertConsecutive(fromA);

    // crash A: stop its loop without releasing, then its connection goes (as when the process dies)
    await a.beat.close({ releaseLock: false });
    await a.store.close();
    const crashedAt = Date.now();
    await waitFor('B to take over', () => b.beat.isLeader, TTL + 2000);
    assert.ok(Date.now() - crashedAt <= TTL, `took over after ${Date.now() - crashedAt} ms`);
    await waitFor('B to publish 2 ticks', () => events.filter((e) => e.by === 'B').length >= 2, 6000);
    await b.beat.close();

    assertConsecutive(tickSeconds(events));
    assert.ok(events.every((e) => e.missedSince === undefined), 'no tick counted as missed across the handover');
    assert.equal(await broker.queueLength(QUEUE), events.length, 'messages on the queue = ticks published');
    const [d] = await takeDeliveries(broker, QUEUE, 1);
    assert.equal(d!.message.headers['task'], 'tasks.add');
    assert.deepEqual(bodyOf(d!)[0], [1, 2]);
    await d!.ack();
  });

  it('a restarted beat resumes from the state on RabbitMQ: no repeat, missed ticks run once', async () => {
    const before = events.length;
    const lastTick = events.at(-1)!.tick;
    await sleep(2600); // nobody runs: two or three ticks are missed (grace 500 ms below)
    const c = await beat('C', { catchUp: 'once', graceMs: 500 });
    await waitFor('C to publish 3 runs', () => events.length >= before + 3, 6000);
    await c.beat.close();
    const resumed = events.slice(before);
    assert.ok(resumed[0]!.tick > lastTick, 'no tick repeated');
    assert.equal(resumed[0]!.missedSince, lastTick + 1000, 'the missed ticks were caught up, once');
    assertConsecutive(tickSeconds(resumed.slice(1)));
    const stored = await c.store.get('every-second');
    assert.equal(stored!.totalRunCount, events.length, 'the run count carried over through the state message');
    assert.equal(stored!.cursor, resumed.at(-1)!.tick);
  });
});
