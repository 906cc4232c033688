/**
 * The Redis adapters at the level of keys and values, against what real Celery 5.2.6 / kombu 5.2.4
 * wrote in the captured fixtures (database 11 of REDIS_URL; every key created here is deleted at the end).
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { RedisBackend, taskMetaKey } from '../../src/backends/redis.ts';
import { RedisBroker, UNACKED, UNACKED_INDEX, UNACKED_MUTEX } from '../../src/brokers/redis.ts';
import { bindingMember, consumeOrder, decodeEnvelope, SEP } from '../../src/protocol/kombu-envelope.ts';
import { parseMeta } from '../../src/protocol/result-meta.ts';
import { silentLogger } from '../support/app.ts';
import { redisGate, redisUrl } from '../support/services.ts';
import { Inbox, testMessage } from '../conformance/broker-suite.ts';

const DB = 11;
const url = redisUrl(DB);
const fixture = (name: string): any => JSON.parse(readFileSync(new URL(`../fixtures/celery/${name}.json`, import.meta.url), 'utf8'));
const plainFixture = fixture('redis-plain');
const plain = plainFixture.messages[0];
const workerKeys = fixture('redis-worker-keys');
const visibility = fixture('redis-visibility-restore');
const exchangeRouted = fixture('redis-exchange-routing-key').messages[0];
const resultSuccess = fixture('result-success');

const skip = await redisGate(DB);

describe('Redis broker and backend: keys and values as kombu/Celery write them', { skip }, () => {
  let redis: Redis;
  let broker: RedisBroker;
  const queues: string[] = [];
  const extraKeys: string[] = [];
  const newQueue = (): string => {
    const q = `it-${randomUUID()}`;
    queues.push(q);
    return q;
  };
  /** the unacked entries whose routing key is this queue: tag → [envelope, exchange, routing_key] */
  const unackedFor = async (q: string): Promise<Map<string, [Record<string, any>, string, string]>> => {
    const out = new Map<string, [Record<string, any>, string, string]>();
    for (const [tag, value] of Object.entries(await redis.hgetall(UNACKED))) {
      const entry = JSON.parse(value) as [Record<string, any>, string, string];
      if (entry[2] === q) out.set(tag, entry);
    }
    return out;
  };
  /** a stale entry as a crashed consumer leaves it: the fixture's planted value, moved to queue q */
  const plant = async (q: string, ageSec: number, priority = 0): Promise<string> => {
    const [oldTag, oldValue] = Object.entries(visibility.planted.unacked as Record<string, string>)[0]!;
    const tag = randomUUID();
    const value = oldValue.replaceAll(oldTag, tag).replace('"routing_key": "celery"', `"routing_key": "${q}"`)
      .replace('"priority": 0', `"priority": ${priority}`).replace(/, "celery"\]$/, `, "${q}"]`);
    await redis.multi().hset(UNACKED, tag, value).zadd(UNACKED_INDEX, Date.now() / 1000 - ageSec, tag).exec();
    return tag;
  };

  before(async () => {
    redis = new Redis(url);
    broker = new RedisBroker({ url, logger: silentLogger, pollTimeoutSec: 1 });
  });

  after(async () => {
    await broker.close();
    const tags: string[] = [];
    for (const q of queues) tags.push(...(await unackedFor(q)).keys());
    if (tags.length > 0) await redis.multi().hdel(UNACKED, ...tags).zrem(UNACKED_INDEX, ...tags).exec();
    const keys = [...consumeOrder(queues), ...queues.map((q) => `_kombu.binding.${q}`), ...extraKeys];
    if (keys.length > 0) await redis.del(...keys);
    redis.disconnect();
  });

  it('publishes like kombu: LPUSH to the priority list, envelope in kombu key order, binding declared once', async () => {
    const q = newQueue();
    for (const [n, priority] of [[0, undefined], [5, 5], [9, 9], [1, 1]] as const) await broker.publish(testMessage(n, priority), { queue: q });
    assert.deepEqual(await Promise.all(consumeOrder([q]).map((list) => redis.llen(list))), [2, 1, 0, 1]);
    const [raw] = await redis.lrange(`${q}${SEP}3`, 0, -1);
    const env = JSON.parse(raw!);
    const celeryEnv = JSON.parse(plain.raw);
    assert.deepEqual(Object.keys(env), Object.keys(celeryEnv));
    assert.deepEqual(Object.keys(env.properties), Object.keys(celeryEnv.properties));
    assert.deepEqual(env.properties.delivery_info, { exchange: '', routing_key: q });
    assert.equal(env.properties.priority, 5);
    assert.equal(env.properties.body_encoding, 'base64');
    assert.match(env.properties.delivery_tag, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.equal(Buffer.from(env.body, 'base64').toString('utf8'), testMessage(5).body);
    assert.equal(decodeEnvelope(raw!).message.headers['n'], 5);
    const tags = new Set((await Promise.all(consumeOrder([q]).map((l) => redis.lrange(l, 0, -1)))).flat().map((r) => JSON.parse(r).properties.delivery_tag));
    assert.equal(tags.size, 4, 'a fresh delivery_tag per publish');
    const celeryBinding = plainFixture.redis_commands.find((c: string[]) => c[0] === 'SADD')[2] as string;
    assert.deepEqual(await redis.smembers(`_kombu.binding.${q}`), [celeryBinding.replaceAll('celery', q)]);
    assert.deepEqual(await redis.smembers(`_kombu.binding.${q}`), [bindingMember(q, '', q)]);
  });

  it('routes an explicit exchange through its binding set, and drops what no binding matches', async () => {
    const [q, unused] = [newQueue(), newQueue()];
    const exchange = `ex-${randomUUID()}`;
    extraKeys.push(`_kombu.binding.${exchange}`);
    await redis.sadd(`_kombu.binding.${exchange}`, bindingMember('rk.a', '', q), bindingMember('rk.b', '', unused));
    await broker.publish(testMessage(1), { queue: unused, exchange, routingKey: 'rk.a' });
    await broker.publish(testMessage(2), { queue: unused, exchange, routingKey: 'nothing-bound' });
    assert.equal(await redis.llen(q), 1);
    assert.equal(await redis.llen(unused), 0);
    const env = JSON.parse((await redis.lindex(q, 0))!);
    assert.deepEqual(Object.keys(env.properties.delivery_info), Object.keys(JSON.parse(exchangeRouted.raw).properties.delivery_info));
    assert.deepEqual(env.properties.delivery_info, { exchange, routing_key: 'rk.a' });
    assert.equal(await redis.exists(`_kombu.binding.${unused}`), 0, 'no default binding for an exchange-routed publish');
  });

  it('BRPOPs every queue at step 0 first, then at 3, 6, 9, with the poll timeout', async () => {
    const [a, b] = [newQueue(), newQueue()];
    const monitor = await redis.monitor(); // a connection of its own
    try {
      const seen = new Promise<string[]>((resolve) => {
        monitor.on('monitor', (_time: string, args: string[]) => {
          if (args[0]?.toUpperCase() === 'BRPOP' && args[1] === a) resolve(args);
        });
      });
      const sub = await broker.consume({ queues: [a, b], prefetch: 1 }, () => {});
      const args = await seen;
      await sub.cancel();
      const celery = workerKeys.brpop_examples[0] as string[];
      const expected = [a, b, `${a}${SEP}3`, `${b}${SEP}3`, `${a}${SEP}6`, `${b}${SEP}6`, `${a}${SEP}9`, `${b}${SEP}9`, celery.at(-1)];
      // MONITOR shows the separator bytes escaped
      assert.deepEqual(args.slice(1), expected.map((k) => k!.replaceAll(SEP, '\\x06\\x16')));
    } finally {
      monitor.disconnect();
    }
  });

  for (const path of ['popped by the Lua batch', 'popped by BRPOP'] as const) {
    it(`keeps an unsettled delivery in unacked/unacked_index as a Celery worker does (${path})`, async () => {
      const q = newQueue();
      const inbox = new Inbox();
      const t0 = Date.now() / 1000;
      if (path === 'popped by the Lua batch') await broker.publish(testMessage(7), { queue: q });
      const sub = await broker.consume({ queues: [q], prefetch: 1 }, inbox.push);
      if (path === 'popped by BRPOP') await broker.publish(testMessage(7), { queue: q });
      const [d] = await inbox.until(1);
      const entries = await unackedFor(q);
      assert.equal(entries.size, 1);
      const [tag, [env, exchange, routingKey]] = [...entries][0]!;
      const celery = Object.values(workerKeys.unacked_hash_decoded)[0] as any;
      assert.deepEqual(Object.keys(env), Object.keys(celery.message));
      assert.deepEqual(Object.keys(env.properties), Object.keys(celery.message.properties));
      assert.equal(exchange, celery.exchange);
      assert.equal(routingKey, q);
      assert.equal(env.properties.delivery_tag, tag);
      assert.deepEqual(decodeEnvelope(JSON.stringify(env)).message, d!.message);
      assert.match((await redis.hget(UNACKED, tag))!, new RegExp(`^\\[\\{.*\\}, "", "${q}"\\]$`));
      const score = Number(await redis.zscore(UNACKED_INDEX, tag));
      assert.ok(score >= t0 - 1 && score <= Date.now() / 1000 + 1, `score ${score} is the delivery time in unix seconds`);
      await d!.ack();
      assert.equal(await redis.hexists(UNACKED, tag), 0);
      assert.equal(await redis.zscore(UNACKED_INDEX, tag), null);
      await sub.cancel();
    });
  }

  it('restoreVisible brings a stale planted entry back to the consuming end, marked redelivered', async () => {
    const q = newQueue();
    const restorer = new RedisBroker({ url, logger: silentLogger, visibilityTimeoutSec: 3600 });
    try {
      await broker.publish(testMessage(1), { queue: q }); // already waiting: the restored one goes before it
      const stale = await plant(q, 4000);
      const fresh = await plant(q, 10);
      const stalePriority = await plant(q, 4000, 5);
      await redis.set(UNACKED_MUTEX, 'someone-else', 'PX', 300_000);
      assert.equal(await restorer.restoreVisible(), 0, 'another restorer holds the mutex');
      assert.equal(await redis.get(UNACKED_MUTEX), 'someone-else');
      await redis.del(UNACKED_MUTEX);

      assert.equal(await restorer.restoreVisible(), 2);
      assert.equal(await redis.exists(UNACKED_MUTEX), 0, 'mutex released');
      assert.deepEqual([...(await unackedFor(q)).keys()], [fresh]);
      assert.equal(await redis.zscore(UNACKED_INDEX, stale), null);
      const restored = JSON.parse((await redis.lindex(q, -1))!);
      const expected = structuredClone(visibility.restored_message.envelope);
      expected.properties.delivery_info.routing_key = q;
      expected.properties.delivery_tag = stale;
      assert.deepEqual(restored, expected);
      assert.equal(visibility.restored_message.command, 'RPUSH');
      assert.equal(await redis.llen(`${q}${SEP}3`), 1, 'priority 5 goes back to its priority list');

      const inbox = new Inbox();
      const sub = await broker.consume({ queues: [q], prefetch: 1 }, inbox.push);
      const [first] = await inbox.until(1);
      assert.equal(first!.redelivered, true);
      assert.equal(first!.message.headers['id'], expected.headers.id);
      await sub.cancel();
      await first!.ack();
    } finally {
      await restorer.close();
    }
  });

  it('cancel restores messages fetched but not yet handed out, in order', async () => {
    const q = newQueue();
    for (const n of [0, 1, 2]) await broker.publish(testMessage(n), { queue: q });
    const inbox = new Inbox();
    const sub = await broker.consume({ queues: [q], prefetch: 10 }, inbox.push);
    await sub.cancel(); // the loop's first pop is in flight: what it brings back is not handed out
    assert.equal(inbox.got.length, 0);
    assert.equal(await broker.queueLength(q), 3);
    assert.equal((await unackedFor(q)).size, 0);
    const again = new Inbox();
    const sub2 = await broker.consume({ queues: [q], prefetch: 10 }, again.push);
    const got = await again.until(3);
    assert.deepEqual(got.map((d) => d.message.headers['n']), [0, 1, 2]);
    await Promise.all(got.map((d) => d.ack()));
    await sub2.cancel();
  });

  it('a poison list entry with a delivery tag is dropped from unacked too, and the next message is served', async () => {
    const q = newQueue();
    const tag = randomUUID();
    await redis.lpush(q, JSON.stringify({ body: 5, properties: { delivery_tag: tag, delivery_info: { exchange: '', routing_key: q } } }));
    await broker.publish(testMessage(1), { queue: q });
    const inbox = new Inbox();
    const sub = await broker.consume({ queues: [q], prefetch: 10 }, inbox.push);
    const [good] = await inbox.until(1);
    assert.equal(good!.message.headers['n'], 1);
    await good!.ack();
    await sub.cancel();
    assert.equal(await redis.hexists(UNACKED, tag), 0, 'not left for the visibility restore to bring back');
    assert.equal(await redis.zscore(UNACKED_INDEX, tag), null);
  });

  it('stores results with SETEX + PUBLISH: TTL, exact value, seen by a plain SUBSCRIBE client', async () => {
    const backend = new RedisBackend({ url, logger: silentLogger });
    const short = new RedisBackend({ url, logger: silentLogger, resultTtlSec: 120 });
    const listener = redis.duplicate();
    try {
      const meta = parseMeta(resultSuccess.value_raw);
      meta.task_id = randomUUID();
      const key = taskMetaKey(meta.task_id);
      extraKeys.push(key);
      assert.equal(key, `celery-task-meta-${meta.task_id}`);
      await listener.subscribe(key);
      const published = new Promise<string>((resolve) => listener.on('message', (_c: string, text: string) => resolve(text)));
      await backend.store(meta);
      const stored = (await redis.get(key))!;
      const celery = JSON.parse(resultSuccess.value_raw);
      celery.task_id = meta.task_id;
      assert.deepEqual(JSON.parse(stored), celery, 'what Celery stores');
      assert.deepEqual(Object.keys(JSON.parse(stored)), Object.keys(celery), 'in Celery key order');
      assert.equal(await published, stored, 'PUBLISH carries the stored bytes');
      const ttl = await redis.ttl(key);
      assert.ok(ttl > resultSuccess.ttl_seconds_after_write - 10 && ttl <= resultSuccess.ttl_seconds_after_write, `ttl ${ttl}`);

      const other = { ...meta, task_id: randomUUID() };
      extraKeys.push(taskMetaKey(other.task_id));
      await short.store(other);
      const shortTtl = await redis.ttl(taskMetaKey(other.task_id));
      assert.ok(shortTtl > 110 && shortTtl <= 120, `ttl ${shortTtl}`);
    } finally {
      listener.disconnect();
      await Promise.all([backend.close(), short.close()]);
    }
  });

  it('fails fast with GW_ERR_*_UNAVAILABLE when Redis cannot be reached', async () => {
    const deadUrl = 'redis://127.0.0.1:1/0';
    const deadBroker = new RedisBroker({ url: deadUrl, logger: silentLogger });
    const deadBackend = new RedisBackend({ url: deadUrl, logger: silentLogger });
    try {
      const expectCode = async (what: string, promise: Promise<unknown>, code: string): Promise<void> => {
        const t0 = Date.now();
        await assert.rejects(promise, (err: any) => err.code === code, what);
        assert.ok(Date.now() - t0 < 1000, `${what} answered in ${Date.now() - t0} ms`);
      };
      await expectCode('publish', deadBroker.publish(testMessage(1), { queue: 'never' }), 'GW_ERR_BROKER_UNAVAILABLE');
      await expectCode('queueLength', deadBroker.queueLength('never'), 'GW_ERR_BROKER_UNAVAILABLE');
      await expectCode('consume', deadBroker.consume({ queues: ['never'], prefetch: 1 }, () => {}), 'GW_ERR_BROKER_UNAVAILABLE');
      await expectCode('get', deadBackend.get('x'), 'GW_ERR_BACKEND_UNAVAILABLE');
      await expectCode('store', deadBackend.store(parseMeta(resultSuccess.value_raw)), 'GW_ERR_BACKEND_UNAVAILABLE');
      await expectCode('listen', deadBackend.listen('x', () => {}), 'GW_ERR_BACKEND_UNAVAILABLE');
    } finally {
      await Promise.all([deadBroker.close(), deadBackend.close()]);
    }
  });
});
