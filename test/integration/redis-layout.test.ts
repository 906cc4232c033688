/**
 * The Redis adapters against a real Redis (db 11), key by key, compared with what Celery 5.2.6 / kombu
 * 5.2.4 write (test/fixtures/celery, protocol doc §5 and §6): list names per priority, envelope key order,
 * bindings, the unacked bookkeeping, exchange routing through binding sets, the visibility restore and
 * its mutex, the result keys (TTL, PUBLISH, never overwrite SUCCESS), and behaviour with Redis down.
 * Every key created has RUN in its name and is deleted afterwards.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { RedisBackend, submittedBucketKey, taskMetaKey } from '../../src/backends/redis.ts';
import type { Delivery } from '../../src/brokers/broker.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { RedisBroker, UNACKED, UNACKED_INDEX, UNACKED_MUTEX } from '../../src/brokers/redis.ts';
import { isGatewayError, type ErrorCode } from '../../src/errors.ts';
import { encodeEnvelope } from '../../src/protocol/kombu-envelope.ts';
import { buildTaskMessage } from '../../src/protocol/message.ts';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import type { RawMessage, ResultMeta } from '../../src/protocol/types.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { redisGate } from '../support/python.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/11';
const DEAD_URL = 'redis://127.0.0.1:1/0';
const SEP = '\x06\x16';
const RUN = `layout-${process.pid}-${randomUUID().slice(0, 6)}`;

type Obj = Record<string, any>;
const FIXTURES = new URL('../fixtures/celery/', import.meta.url);
const fixture = (name: string): Obj => JSON.parse(readFileSync(new URL(`${name}.json`, FIXTURES), 'utf8')) as Obj;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const qname = (what: string): string => `${RUN}.${what}.${randomUUID().slice(0, 6)}`;

function message(priority = 0, args: number[] = [2, 3]): RawMessage {
  const id = randomUUID();
  return buildTaskMessage({ task: 'tasks.add', id, args, kwargs: {}, origin: 'gen12345@example', replyTo: randomUUID(), priority }, new Date());
}

/** Records deliveries; `first()` resolves with the first one (or rejects after a timeout). */
function firstDelivery(timeoutMs = 3000) {
  const got: Delivery[] = [];
  let resolve: (d: Delivery) => void = () => {};
  const first = new Promise<Delivery>((r) => { resolve = r; });
  return {
    got,
    onDelivery: (d: Delivery): void => { got.push(d); resolve(d); },
    first: async (): Promise<Delivery> => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`no delivery within ${timeoutMs} ms`)), timeoutMs); });
      try {
        return await Promise.race([first, timeout]);
      } finally {
        clearTimeout(timer);
      }
    },
  };
}

/** Rejects with a GatewayError of `code`, within `withinMs`. */
async function rejectsWith(what: string, p: Promise<unknown>, code: ErrorCode, withinMs = 3000): Promise<void> {
  const t0 = Date.now();
  await assert.rejects(p, (err: unknown) => {
    assert.ok(isGatewayError(err), `${what}: a GatewayError, got ${String(err)}`);
    assert.equal(err.code, code, what);
    return true;
  });
  const took = Date.now() - t0;
  if (process.env['TEST_TIMINGS']) console.log(`${what}: ${took} ms`);
  assert.ok(took < withinMs, `${what} took ${took} ms`);
}

const skip = await redisGate(REDIS_URL);

describe('redis layout (kombu / Celery 5.2.6)', { skip }, () => {
  let raw: Redis;
  let broker: RedisBroker;
  /** unacked tags this file created or caused */
  const tags = new Set<string>();

  /** the consumer's blocking connection for db 11 is sitting in BRPOP */
  async function waitForBrpop(): Promise<void> {
    for (let i = 0; i < 100; i += 1) {
      const list = (await raw.client('LIST')) as string;
      if (list.split('\n').some((line) => / db=11 /.test(line) && / cmd=brpop /.test(line))) return;
      await sleep(10);
    }
    throw new Error('the consumer never reached BRPOP');
  }

  /** Plant a stale entry exactly as the redis-visibility-restore fixture did, for queue `q`. */
  async function plantStale(q: string, ageSec = 4000): Promise<{ tag: string; fx: Obj; fxTag: string }> {
    const fx = fixture('redis-visibility-restore');
    const [fxTag, fxPayload] = Object.entries(fx['planted']['unacked'] as Record<string, string>)[0]!;
    assert.match(fx['planted']['unacked_index'][fxTag], /now - 4000 s/);
    const tag = randomUUID();
    tags.add(tag);
    const payload = fxPayload.replaceAll(fxTag, tag).replaceAll('"celery"', JSON.stringify(q));
    await raw.hset(UNACKED, tag, payload);
    await raw.zadd(UNACKED_INDEX, Date.now() / 1000 - ageSec, tag);
    return { tag, fx, fxTag };
  }

  before(async () => {
    raw = new Redis(REDIS_URL);
    broker = new RedisBroker({ url: REDIS_URL, logger: silentLogger, pollTimeoutSec: 0.2 });
    await broker.ping();
  });

  after(async () => {
    await broker.close();
    const keys: string[] = [];
    for await (const batch of raw.scanStream({ match: `*${RUN}*`, count: 500 }) as AsyncIterable<string[]>) keys.push(...batch);
    if (keys.length > 0) await raw.del(...keys);
    // and anything else still unacked for our queues (a delivery a failed test never settled)
    for (const [tag, payload] of Object.entries(await raw.hgetall(UNACKED))) if (payload.includes(`"${RUN}.`)) tags.add(tag);
    if (tags.size > 0) {
      await raw.hdel(UNACKED, ...tags);
      await raw.zrem(UNACKED_INDEX, ...tags);
    }
    raw.disconnect();
  });

  it('LPUSHes to one list per priority step: 0 → q, 5 → q\\x06\\x163, 9 → q\\x06\\x169', async () => {
    const q = qname('prio');
    for (const p of [0, 5, 9]) await broker.publish(message(p), { queue: q });
    assert.equal(await raw.llen(q), 1);
    assert.equal(await raw.llen(fixture('redis-priority')['messages'][0]['redis_key'].replace(/^celery/, q)), 1);
    assert.equal(await raw.llen(fixture('redis-priority-9')['messages'][0]['redis_key'].replace(/^celery/, q)), 1);
    assert.equal(await raw.llen(`${q}${SEP}3`), 1);
    assert.equal(await raw.llen(`${q}${SEP}6`), 0);
    assert.equal(await raw.llen(`${q}${SEP}9`), 1);
    const five = JSON.parse((await raw.lindex(`${q}${SEP}3`, 0))!) as Obj;
    assert.equal(five['properties']['priority'], 5, 'the envelope keeps the original priority');
    assert.equal(await broker.queueLength(q), 3);
  });

  it('writes the envelope with kombu\'s keys in kombu\'s order, and the queue\'s binding', async () => {
    const fx = fixture('redis-plain');
    const fxEnv = fx['messages'][0]['envelope'] as Obj;
    const q = qname('plain');
    const sent = message();
    await broker.publish(sent, { queue: q });
    await broker.publish(message(), { queue: q });
    const [second, first] = (await raw.lrange(q, 0, -1)).map((s) => JSON.parse(s) as Obj);
    assert.ok(first && second);
    assert.deepEqual(Object.keys(first), Object.keys(fxEnv));
    assert.deepEqual(Object.keys(first['properties']), Object.keys(fxEnv['properties']));
    assert.deepEqual(Object.keys(first['properties']['delivery_info']), Object.keys(fxEnv['properties']['delivery_info']));
    assert.deepEqual(Object.keys(first['headers']), Object.keys(fxEnv['headers']));
    assert.deepEqual(first['properties']['delivery_info'], { exchange: '', routing_key: q });
    assert.equal(first['content-encoding'], fxEnv['content-encoding']);
    assert.equal(first['content-type'], fxEnv['content-type']);
    assert.equal(first['properties']['body_encoding'], 'base64');
    assert.equal(first['properties']['delivery_mode'], 2);
    assert.equal(first['properties']['correlation_id'], sent.headers['id']);
    assert.equal(Buffer.from(first['body'] as string, 'base64').toString('utf8'), sent.body);
    assert.deepEqual(JSON.parse(sent.body), fx['messages'][0]['body_decoded'], 'same body as Python for add(2, 3)');
    assert.match(first['properties']['delivery_tag'], /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    assert.notEqual(first['properties']['delivery_tag'], second['properties']['delivery_tag'], 'a new tag per publish');
    const fxBinding = fx['other_keys']['_kombu.binding.celery']['value'][0] as string;
    assert.deepEqual(await raw.smembers(`_kombu.binding.${q}`), [fxBinding.replaceAll('celery', q)]);
    assert.deepEqual(await raw.smembers(`_kombu.binding.${q}`), [`${q}${SEP}${SEP}${q}`]);
  });

  for (const path of ['fetched by the batch pop (message waiting)', 'fetched by BRPOP (message arrives later)'] as const) {
    it(`keeps an unsettled delivery in unacked / unacked_index as kombu does, until ack (${path})`, async () => {
      const q = qname('unacked');
      const c = firstDelivery();
      let envelope: string | null = null;
      const waiting = path.startsWith('fetched by the batch');
      if (waiting) {
        await broker.publish(message(), { queue: q });
        envelope = await raw.lindex(q, 0);
      }
      const sub = await broker.consume({ queues: [q], prefetch: 1 }, c.onDelivery);
      try {
        if (!waiting) {
          await waitForBrpop();
          await broker.publish(message(), { queue: q });
        }
        const d = await c.first();
        assert.equal(await raw.llen(q), 0);
        // find our entry: [envelope, exchange, routing_key]
        const all = await raw.hgetall(UNACKED);
        const mine = Object.entries(all).filter(([, payload]) => (JSON.parse(payload) as unknown[])[2] === q);
        assert.equal(mine.length, 1, 'one unacked entry for the delivery');
        const [tag, payload] = mine[0]!;
        tags.add(tag);
        const entry = JSON.parse(payload) as [Obj, string, string];
        if (envelope) {
          assert.equal(payload, `[${envelope}, "", ${JSON.stringify(q)}]`, 'the envelope as LPUSHed, inside kombu\'s list');
        } else {
          assert.ok(payload.startsWith('[{"body":') && payload.endsWith(`}, "", ${JSON.stringify(q)}]`), payload);
        }
        assert.equal(entry[0]['properties']['delivery_tag'], tag);
        assert.equal(Buffer.from(entry[0]['body'] as string, 'base64').toString('utf8'), d.message.body);
        // same shape as the worker's entry in redis-worker-keys
        const fx = fixture('redis-worker-keys');
        const fxEntry = JSON.parse(Object.values(fx['unacked_hash_raw'] as Record<string, string>)[0]!) as unknown[];
        assert.deepEqual(entry.map((v) => typeof v), fxEntry.map((v) => typeof v));
        assert.deepEqual(Object.keys(entry[0]), Object.keys(fxEntry[0] as Obj));
        assert.deepEqual(Object.keys(entry[0]['properties']), Object.keys((fxEntry[0] as Obj)['properties']));
        const score = await raw.zscore(UNACKED_INDEX, tag);
        assert.ok(score !== null);
        assert.ok(Math.abs(Number(score) - Date.now() / 1000) < 5, `score ${score} is the delivery time`);
        assert.equal(typeof fx['unacked_index_zset'][0][1], 'number');
        await d.ack();
        assert.equal(await raw.hexists(UNACKED, tag), 0, 'ack removes the unacked entry');
        assert.equal(await raw.zscore(UNACKED_INDEX, tag), null, 'ack removes the index entry');
      } finally {
        await sub.cancel();
      }
    });
  }

  it('reject(true) puts the message at the back of its priority list, marked redelivered, and forgets it', async () => {
    const q = qname('reject');
    await broker.publish(message(5, [1]), { queue: q });
    const c = firstDelivery();
    const sub = await broker.consume({ queues: [q], prefetch: 1 }, c.onDelivery);
    const d = await c.first();
    await sub.cancel();
    await broker.publish(message(5, [2]), { queue: q });
    await d.reject(true);
    const list = await raw.lrange(`${q}${SEP}3`, 0, -1);
    assert.equal(list.length, 2);
    const back = JSON.parse(list[0]!) as Obj; // LPUSH: the left end is the back of the line
    assert.equal(back['headers']['id'], d.message.headers['id']);
    assert.equal(back['headers']['redelivered'], true);
    assert.equal(back['properties']['delivery_info']['redelivered'], true);
    tags.add(back['properties']['delivery_tag'] as string);
    assert.equal(await raw.hexists(UNACKED, back['properties']['delivery_tag'] as string), 0);
  });

  it('routes an exchange publish through the binding set, as Celery does (and drops it when nothing is bound)', async () => {
    const ex = `${RUN}.myex`;
    const q2 = qname('q2');
    const q3 = qname('q3');
    const x = qname('x');
    await raw.sadd(`_kombu.binding.${ex}`, `rk${SEP}${SEP}${q2}`, `other${SEP}${SEP}${q3}`);
    await broker.publish(message(), { queue: x, exchange: ex, routingKey: 'rk' });
    assert.equal(await raw.llen(q2), 1);
    assert.equal(await raw.llen(q3), 0, 'only the matching routing key');
    assert.equal(await broker.queueLength(x), 0, 'not to route.queue');
    const env = JSON.parse((await raw.lindex(q2, 0))!) as Obj;
    assert.deepEqual(env['properties']['delivery_info'], { exchange: ex, routing_key: 'rk' });
    const fxEnv = fixture('redis-exchange-routing-key')['messages'][0]['envelope'] as Obj;
    assert.deepEqual(Object.keys(env), Object.keys(fxEnv));
    assert.deepEqual(Object.keys(env['properties']), Object.keys(fxEnv['properties']));

    // two queues bound with the same key both get it
    await raw.sadd(`_kombu.binding.${ex}`, `rk${SEP}${SEP}${q3}`);
    await broker.publish(message(9), { queue: x, exchange: ex, routingKey: 'rk' });
    assert.equal(await raw.llen(`${q2}${SEP}9`), 1);
    assert.equal(await raw.llen(`${q3}${SEP}9`), 1);

    // an unknown routing key, and an exchange without bindings: nothing pushed anywhere, no error
    await broker.publish(message(), { queue: x, exchange: ex, routingKey: 'nobody' });
    const nobind = `${RUN}.nobind`;
    await broker.publish(message(), { queue: x, exchange: nobind, routingKey: 'rk' });
    assert.equal(await broker.queueLength(q2), 2);
    assert.equal(await broker.queueLength(q3), 1);
    const stray: string[] = [];
    for await (const batch of raw.scanStream({ match: `*${x}*` }) as AsyncIterable<string[]>) stray.push(...batch);
    assert.deepEqual(stray, [], 'no list or binding for route.queue');
  });

  it('restoreVisible() brings back a stale entry planted as in redis-visibility-restore: RPUSH, redelivered', async () => {
    const q = qname('restore');
    await broker.publish(message(0, [7]), { queue: q }); // already waiting: the restored one goes in front of it
    const { tag, fx, fxTag } = await plantStale(q);
    const fresh = await plantStale(q, 10); // within the visibility timeout: stays
    const restored = await broker.restoreVisible();
    assert.ok(restored >= 1, `restored ${restored}`);
    assert.equal(await raw.hexists(UNACKED, tag), 0);
    assert.equal(await raw.zscore(UNACKED_INDEX, tag), null);
    assert.equal(await raw.hexists(UNACKED, fresh.tag), 1, 'a recent entry is not restored');
    assert.equal(await raw.exists(UNACKED_MUTEX), 0, 'the mutex is released');
    assert.equal(await raw.llen(q), 2);
    const right = JSON.parse((await raw.lindex(q, -1))!) as Obj; // RPUSH: the consuming end
    const expected = JSON.parse(JSON.stringify(fx['restored_message']['envelope']).replaceAll(fxTag, tag).replaceAll('"celery"', JSON.stringify(q))) as Obj;
    assert.deepStrictEqual(right, expected);
    assert.deepEqual(Object.keys(right['headers']), Object.keys(expected['headers']), 'redelivered appended last, as kombu does');
    assert.deepEqual(Object.keys(right['properties']['delivery_info']), Object.keys(expected['properties']['delivery_info']));

    // and it is the next one delivered
    await raw.hdel(UNACKED, fresh.tag);
    await raw.zrem(UNACKED_INDEX, fresh.tag);
    const c = firstDelivery();
    const sub = await broker.consume({ queues: [q], prefetch: 1 }, c.onDelivery);
    try {
      const d = await c.first();
      assert.equal(d.redelivered, true);
      assert.deepEqual(JSON.parse(d.message.body), fx['restored_message']['body_decoded']);
    } finally {
      await sub.cancel();
      await Promise.all(c.got.map((d) => d.ack())); // the one behind it may have been fetched too
    }
  });

  it('restoreVisible() does nothing while someone else holds unacked_mutex', async () => {
    const q = qname('mutex');
    const { tag } = await plantStale(q);
    await raw.set(UNACKED_MUTEX, `${RUN}-someone-else`, 'PX', 10_000);
    try {
      assert.equal(await broker.restoreVisible(), 0);
      assert.equal(await raw.hexists(UNACKED, tag), 1, 'still unacked');
      assert.equal(await raw.llen(q), 0);
      assert.equal(await raw.get(UNACKED_MUTEX), `${RUN}-someone-else`, 'the other holder\'s mutex is left alone');
    } finally {
      if ((await raw.get(UNACKED_MUTEX)) === `${RUN}-someone-else`) await raw.del(UNACKED_MUTEX);
    }
    assert.ok((await broker.restoreVisible()) >= 1, 'restored once the mutex is free');
    assert.equal(await raw.hexists(UNACKED, tag), 0);
    assert.equal(await raw.llen(q), 1);
  });

  it('close() right after consume() waits for the start-up restore: unacked_mutex is not left held', async () => {
    // a held mutex would block every consumer's restore (Python's too) for 5 minutes
    for (let round = 0; round < 10; round += 1) {
      const b = new RedisBroker({ url: REDIS_URL, logger: silentLogger, pollTimeoutSec: 0.2 });
      await b.consume({ queues: [qname('mutexclose')], prefetch: 1 }, () => {});
      await b.close();
      const holder = await raw.get(UNACKED_MUTEX);
      if (holder !== null) await raw.del(UNACKED_MUTEX);
      assert.equal(holder, null, `round ${round}: unacked_mutex left held`);
    }
  });

  it('cancel() loses nothing: a message fetched while cancelling is put back, never handed out', async (t) => {
    let putBack = 0;
    for (let round = 0; round < 5; round += 1) {
      const q = qname('cancel');
      const c = firstDelivery();
      const sub = await broker.consume({ queues: [q], prefetch: 1 }, c.onDelivery);
      await waitForBrpop();
      // the push (a plain connection, written at once) races the cancel's CLIENT UNBLOCK: either the
      // BRPOP gets the message after cancel() began (it must go back), or it returns empty
      const pushed = raw.lpush(q, encodeEnvelope(message(), { exchange: '', routingKey: q }, randomUUID()));
      const cancelled = sub.cancel();
      await pushed;
      await cancelled;
      assert.equal(c.got.length, 0, 'nothing handed after cancel()');
      assert.equal(await raw.llen(q), 1, 'the message is back in its list');
      const env = JSON.parse((await raw.lindex(q, 0))!) as Obj;
      const tag = env['properties']['delivery_tag'] as string;
      tags.add(tag);
      assert.equal(await raw.hexists(UNACKED, tag), 0, 'and not left in unacked');
      if (env['headers']['redelivered'] === true) putBack += 1;
    }
    t.diagnostic(`${putBack}/5 rounds took the fetched-then-restored path`);
  });

  describe('result backend', () => {
    let backend: RedisBackend;
    let sub: Redis;
    const id = (): string => `${RUN}-${randomUUID()}`;
    const success = (taskId: string): ResultMeta => buildMeta({ taskId, status: 'SUCCESS', result: 5, now: new Date() });

    before(async () => {
      backend = new RedisBackend({ url: REDIS_URL, logger: silentLogger, resultTtlSec: 120 });
      sub = new Redis(REDIS_URL);
    });
    after(async () => {
      await backend.close();
      sub.disconnect();
    });

    it('writes celery-task-meta-<id> with the configured TTL (Celery\'s default 86400 otherwise)', async () => {
      const a = id();
      await backend.store(success(a));
      const ttl = await raw.ttl(taskMetaKey(a));
      assert.ok(ttl > 115 && ttl <= 120, `ttl ${ttl}`);
      const byDefault = new RedisBackend({ url: REDIS_URL, logger: silentLogger });
      try {
        const b = id();
        await byDefault.store(success(b));
        const fxTtl = fixture('result-success')['ttl_seconds_after_write'] as number;
        const ttlB = await raw.ttl(taskMetaKey(b));
        assert.ok(ttlB > fxTtl - 5 && ttlB <= fxTtl, `ttl ${ttlB}`);
      } finally {
        await byDefault.close();
      }
    });

    it('a gateway on Redis records only client-chosen ids (hourly hash), and knows its own by their checksum', async () => {
      const broker = new RedisBroker({ url: REDIS_URL, logger: silentLogger });
      const gw = await startGateway({ broker, backend });
      const queue = qname('submitted');
      try {
        const ours = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue } });
        const chosen = id();
        const theirs = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { queue, task_id: chosen } });
        assert.equal(theirs.json.id, chosen);
        const bucket = submittedBucketKey(Date.now());
        assert.equal(await raw.hexists(bucket, chosen), 1);
        assert.equal(await raw.hexists(bucket, ours.json.id), 0, 'no record for an id the gateway made');
        assert.ok((await raw.ttl(bucket)) > 0, 'the bucket expires');
        for (const taskId of [ours.json.id, chosen]) {
          const res = await gw.get(`/results/${taskId}`);
          assert.equal(res.status, 200);
          assert.equal(res.json.state, 'PENDING');
        }
        assert.equal((await gw.get(`/results/${randomUUID()}`)).status, 404);
        assert.equal(await raw.llen(queue), 2);
        await raw.hdel(bucket, chosen);
      } finally {
        await gw.app.close();
        await broker.close();
        await raw.del(queue, `_kombu.binding.${queue}`);
      }
    });

    it('PUBLISHes the same bytes it SETs, with Celery\'s key order, to a plain SUBSCRIBE', async () => {
      const a = id();
      const got = new Promise<[string, string]>((resolve) => sub.once('message', (channel: string, text: string) => resolve([channel, text])));
      await sub.subscribe(taskMetaKey(a));
      await backend.store(success(a));
      const [channel, text] = await got;
      await sub.unsubscribe(taskMetaKey(a));
      assert.equal(channel, taskMetaKey(a));
      assert.equal(text, await raw.get(taskMetaKey(a)));
      const fx = fixture('result-success');
      assert.equal(taskMetaKey(a).replace(a, ''), (fx['key'] as string).replace(fx['value']['task_id'] as string, ''));
      assert.deepEqual(Object.keys(JSON.parse(text) as Obj), Object.keys(fx['value'] as Obj));
    });

    it('never overwrites a SUCCESS written by Python, not even with a Python-format FAILURE, and publishes nothing', async () => {
      const fxOk = fixture('result-success');
      const fxFail = fixture('result-failure');
      const a = id();
      const planted = (fxOk['value_raw'] as string).replace(fxOk['value']['task_id'] as string, a);
      await raw.set(taskMetaKey(a), planted, 'EX', 600);
      const failure = { ...(fxFail['value'] as ResultMeta), task_id: a };

      const seen: string[] = [];
      const sentinel = id();
      const barrier = new Promise<void>((resolve) => {
        sub.on('message', function onMessage(channel: string) {
          seen.push(channel);
          if (channel === taskMetaKey(sentinel)) {
            sub.off('message', onMessage);
            resolve();
          }
        });
      });
      await sub.subscribe(taskMetaKey(a), taskMetaKey(sentinel));
      await backend.store(failure);
      await backend.store({ ...failure, status: 'STARTED', date_done: null });
      await backend.store(success(sentinel));
      await barrier;
      await sub.unsubscribe(taskMetaKey(a), taskMetaKey(sentinel));
      assert.deepEqual(seen, [taskMetaKey(sentinel)], 'no PUBLISH for the ignored writes');
      assert.equal(await raw.get(taskMetaKey(a)), planted, 'the Python bytes are untouched');
      const read = await backend.get(a);
      assert.equal(read?.status, 'SUCCESS');
      assert.equal(read?.result, 5);
    });
  });

  describe('with Redis unreachable', { concurrency: true }, () => {
    it('broker and backend calls reject with GW_ERR_*_UNAVAILABLE within 3 s', async () => {
      const deadBroker = new RedisBroker({ url: DEAD_URL, logger: silentLogger });
      const deadBackend = new RedisBackend({ url: DEAD_URL, logger: silentLogger });
      try {
        const meta = buildMeta({ taskId: randomUUID(), status: 'SUCCESS', result: 1, now: new Date() });
        await Promise.all([
          rejectsWith('publish', deadBroker.publish(message(), { queue: `${RUN}.dead` }), 'GW_ERR_BROKER_UNAVAILABLE'),
          rejectsWith('exchange publish', deadBroker.publish(message(), { queue: `${RUN}.dead`, exchange: 'e', routingKey: 'r' }), 'GW_ERR_BROKER_UNAVAILABLE'),
          rejectsWith('queueLength', deadBroker.queueLength(`${RUN}.dead`), 'GW_ERR_BROKER_UNAVAILABLE'),
          rejectsWith('broker ping', deadBroker.ping(), 'GW_ERR_BROKER_UNAVAILABLE'),
          rejectsWith('consume', deadBroker.consume({ queues: [`${RUN}.dead`], prefetch: 1 }, () => {}), 'GW_ERR_BROKER_UNAVAILABLE'),
          rejectsWith('get', deadBackend.get(randomUUID()), 'GW_ERR_BACKEND_UNAVAILABLE'),
          rejectsWith('store', deadBackend.store(meta), 'GW_ERR_BACKEND_UNAVAILABLE'),
          rejectsWith('listen', deadBackend.listen(randomUUID(), () => {}), 'GW_ERR_BACKEND_UNAVAILABLE'),
          rejectsWith('wasSubmitted', deadBackend.wasSubmitted(randomUUID()), 'GW_ERR_BACKEND_UNAVAILABLE'),
          rejectsWith('rememberSubmitted', deadBackend.rememberSubmitted([randomUUID()]), 'GW_ERR_BACKEND_UNAVAILABLE'),
          rejectsWith('backend ping', deadBackend.ping(), 'GW_ERR_BACKEND_UNAVAILABLE'),
        ]);
      } finally {
        const t0 = Date.now();
        await Promise.all([deadBroker.close(), deadBackend.close()]);
        assert.ok(Date.now() - t0 < 1000, `close took ${Date.now() - t0} ms`);
      }
    });

    it('a gateway on such a broker answers 503 GW_ERR_BROKER_UNAVAILABLE to POST /tasks/x, and /readyz 503', async () => {
      const gw = await startGateway({ broker: new RedisBroker({ url: DEAD_URL, logger: silentLogger }), backend: new MemoryBackend() });
      const gw2 = await startGateway({ broker: new MemoryBroker(), backend: new RedisBackend({ url: DEAD_URL, logger: silentLogger }) });
      try {
        const t0 = Date.now();
        const [post, ready, ready2] = await Promise.all([gw.post('/tasks/x', { args: [1] }), gw.get('/readyz'), gw2.get('/readyz')]);
        assert.ok(Date.now() - t0 < 3000, `answered in ${Date.now() - t0} ms`);
        assert.equal(post.status, 503, JSON.stringify(post.json));
        assert.equal(post.json.code, 'GW_ERR_BROKER_UNAVAILABLE');
        assert.equal(ready.status, 503);
        assert.equal(ready.json.code, 'GW_ERR_BROKER_UNAVAILABLE');
        assert.equal(ready.json.checks.backend, 'ok');
        assert.notEqual(ready.json.checks.broker, 'ok');
        assert.equal(ready2.status, 503);
        assert.equal(ready2.json.code, 'GW_ERR_BACKEND_UNAVAILABLE');
      } finally {
        await Promise.all([gw.close(), gw2.close()]);
      }
    });
  });
});

