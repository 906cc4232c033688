/**
 * What every Broker adapter must do, as one suite run against each of them (memory, Redis, later AMQP).
 * Each test uses its own random queue names. Transport differences are options, not skipped tests.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, afterEach, before, describe, it } from 'node:test';
import type { Broker, Delivery, Subscription } from '../../src/brokers/broker.ts';
import type { RawMessage } from '../../src/protocol/types.ts';

export interface BrokerSuiteOptions {
  /** 'lower-first': 0 before 5 before 9 (Redis, memory); 'higher-first': AMQP priority queues */
  priority?: 'lower-first' | 'higher-first' | 'none';
  /** where reject(true) puts a message: 'back' of the line (kombu's Redis LPUSH) or 'front' (AMQP) */
  requeue?: 'back' | 'front';
  /** whether a message given back is flagged `redelivered` (default true) */
  redeliveredFlag?: boolean;
  /** several queues are served round-robin, kombu's default cycle (default true; AMQP: per-queue consumers) */
  roundRobin?: boolean;
  /** how long "nothing more arrives" is watched for, ms (default 200) */
  quietMs?: number;
  /** called once at the end with every queue the suite used */
  cleanup?: (queues: string[]) => Promise<void>;
}

/** Collects deliveries; `until(n)` resolves once n have arrived. */
export class Inbox {
  readonly got: Delivery[] = [];
  #waiters: { n: number; resolve: () => void }[] = [];

  readonly push = (delivery: Delivery): void => {
    this.got.push(delivery);
    this.#waiters = this.#waiters.filter((w) => (this.got.length >= w.n ? (w.resolve(), false) : true));
  };

  async until(n: number, timeoutMs = 5000): Promise<Delivery[]> {
    if (this.got.length < n) {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        new Promise<void>((resolve) => this.#waiters.push({ n, resolve })),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`expected ${n} deliveries within ${timeoutMs} ms, got ${this.got.length}`)), timeoutMs);
        }),
      ]).finally(() => clearTimeout(timer));
    }
    return this.got.slice(0, n);
  }
}

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

const EMBED = { callbacks: null, errbacks: null, chain: null, chord: null };

/** A task-like message; `headers.n` identifies it. */
export function testMessage(n: number, priority?: number): RawMessage {
  const id = randomUUID();
  return {
    headers: { lang: 'py', task: 'tests.conformance', id, n, root_id: id, parent_id: null, timelimit: [null, null], argsrepr: `(${n},)` },
    properties: { correlation_id: id, reply_to: 'reply-oid', delivery_mode: 2, ...(priority === undefined ? {} : { priority }) },
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: JSON.stringify([[n], {}, EMBED]),
  };
}

const ns = (ds: readonly Delivery[]): unknown[] => ds.map((d) => d.message.headers['n']);

export function brokerConformance(name: string, makeBroker: () => Promise<Broker>, opts: BrokerSuiteOptions = {}): void {
  const priorityOrder = opts.priority ?? 'lower-first';
  const requeueTo = opts.requeue ?? 'back';
  const redeliveredFlag = opts.redeliveredFlag ?? true;
  const quietMs = opts.quietMs ?? 200;
  const roundRobin = opts.roundRobin ?? true;

  describe(`Broker conformance: ${name}`, () => {
    let broker: Broker;
    const queues: string[] = [];
    const subs: Subscription[] = [];
    const newQueue = (): string => {
      const q = `conf-${randomUUID()}`;
      queues.push(q);
      return q;
    };
    const consume = async (qs: string[], prefetch: number, inbox = new Inbox()): Promise<[Inbox, Subscription]> => {
      const sub = await broker.consume({ queues: qs, prefetch }, inbox.push);
      subs.push(sub);
      return [inbox, sub];
    };

    before(async () => { broker = await makeBroker(); });
    afterEach(async () => { await Promise.all(subs.splice(0).map((s) => s.cancel())); });
    after(async () => {
      await broker.close();
      await opts.cleanup?.(queues);
    });

    it('round-trips headers, properties and a unicode body byte for byte', async () => {
      const q = newQueue();
      const msg = testMessage(1);
      msg.headers['argsrepr'] = "('héllo', '日本', '🚀')";
      msg.headers['nested'] = { list: [1, 2.5, null, true, 'ü'], empty: {}, none: [] };
      msg.body = JSON.stringify([['héllo \u00e9\u0301 日本 🚀 "quoted" \\ \n\t\u0001'], { k: '€' }, EMBED]);
      await broker.publish(msg, { queue: q });
      const [inbox] = await consume([q], 1);
      const [d] = await inbox.until(1);
      assert.ok(d);
      assert.equal(d.message.body, msg.body);
      assert.equal(Buffer.compare(Buffer.from(d.message.body), Buffer.from(msg.body)), 0);
      assert.deepEqual(d.message.headers, msg.headers);
      assert.equal(d.message.contentType, 'application/json');
      assert.equal(d.message.contentEncoding, 'utf-8');
      assert.equal(d.message.properties.correlation_id, msg.properties.correlation_id);
      assert.equal(d.message.properties.reply_to, 'reply-oid');
      assert.equal(d.message.properties.delivery_mode, 2);
      assert.equal(d.queue, q);
      assert.equal(d.redelivered, false);
      await d.ack();
    });

    it('delivers in publish order within one priority', async () => {
      const q = newQueue();
      for (let n = 0; n < 6; n += 1) await broker.publish(testMessage(n), { queue: q });
      const [inbox] = await consume([q], 10);
      const got = await inbox.until(6);
      assert.deepEqual(ns(got), [0, 1, 2, 3, 4, 5]);
      await Promise.all(got.map((d) => d.ack()));
    });

    it(`orders by priority (${priorityOrder})`, { skip: priorityOrder === 'none' && 'adapter has no priorities' }, async () => {
      const q = newQueue();
      // published worst-first for a Redis-like broker, so FIFO alone would give the wrong order
      for (const p of [9, 5, 0, 9, 0]) await broker.publish(testMessage(p, p), { queue: q });
      const [inbox] = await consume([q], 1);
      for (let i = 1; i <= 5; i += 1) await (await inbox.until(i))[i - 1]!.ack();
      const expected = priorityOrder === 'lower-first' ? [0, 0, 5, 9, 9] : [9, 9, 5, 0, 0];
      assert.deepEqual(ns(inbox.got), expected);
    });

    it('never has more unsettled deliveries than the prefetch', async () => {
      const q = newQueue();
      for (let n = 0; n < 5; n += 1) await broker.publish(testMessage(n), { queue: q });
      const [inbox] = await consume([q], 2);
      const first = await inbox.until(2);
      await sleep(quietMs);
      assert.equal(inbox.got.length, 2, 'only 2 delivered while none is settled');
      assert.equal(await broker.queueLength(q), 3);
      await first[0]!.ack();
      await inbox.until(3);
      await sleep(quietMs);
      assert.equal(inbox.got.length, 3, 'one more per settled delivery');
      await first[1]!.reject(false);
      await inbox.got[2]!.ack();
      const all = await inbox.until(5);
      assert.deepEqual(ns(all), [0, 1, 2, 3, 4]);
      await Promise.all(all.slice(3).map((d) => d.ack()));
    });

    it('setPrefetch raises the bound without any ack', async () => {
      const q = newQueue();
      for (let n = 0; n < 3; n += 1) await broker.publish(testMessage(n), { queue: q });
      const [inbox, sub] = await consume([q], 1);
      await inbox.until(1);
      sub.setPrefetch(3);
      const all = await inbox.until(3);
      await Promise.all(all.map((d) => d.ack()));
    });

    it('ack removes a message for good', async () => {
      const q = newQueue();
      await broker.publish(testMessage(1), { queue: q });
      const [inbox, sub] = await consume([q], 1);
      const [d] = await inbox.until(1);
      await d!.ack();
      await d!.ack(); // settling twice is harmless
      await sub.cancel();
      assert.equal(await broker.queueLength(q), 0);
      const [again] = await consume([q], 1);
      await sleep(quietMs);
      assert.equal(again.got.length, 0);
    });

    it(`reject(true) gives the message back (${requeueTo} of the queue)`, async () => {
      const q = newQueue();
      await broker.publish(testMessage(1), { queue: q });
      await broker.publish(testMessage(2), { queue: q });
      const [inbox] = await consume([q], 1);
      const [first] = await inbox.until(1);
      assert.equal(first!.message.headers['n'], 1);
      await first!.reject(true);
      const got = await inbox.until(2);
      await got[1]!.ack();
      const all = await inbox.until(3);
      await all[2]!.ack();
      // 'back' (kombu on Redis) is an ordering guarantee; 'front' (RabbitMQ) is "its original position
      // when possible": message 2 may already be on its way, so only the set is certain there
      if (requeueTo === 'back') assert.deepEqual(ns(all), [1, 2, 1]);
      else assert.deepEqual([...ns(all)].sort(), [1, 1, 2]);
      const again = all.find((d, i) => i > 0 && d.message.headers['n'] === 1)!;
      if (redeliveredFlag) assert.equal(again.redelivered, true);
      assert.equal(again.message.body, first!.message.body);
      assert.equal(await broker.queueLength(q), 0);
    });

    it('reject(false) drops the message', async () => {
      const q = newQueue();
      await broker.publish(testMessage(1), { queue: q });
      const [inbox] = await consume([q], 1);
      const [d] = await inbox.until(1);
      await d!.reject(false);
      await sleep(quietMs);
      assert.equal(inbox.got.length, 1);
      assert.equal(await broker.queueLength(q), 0);
    });

    it('cancel stops deliveries; handed-out deliveries can still be settled', async () => {
      const q = newQueue();
      await broker.publish(testMessage(1), { queue: q });
      const [inbox, sub] = await consume([q], 5);
      const [d] = await inbox.until(1);
      await sub.cancel();
      await sub.cancel(); // idempotent
      await broker.publish(testMessage(2), { queue: q });
      await sleep(quietMs);
      assert.equal(inbox.got.length, 1, 'nothing delivered after cancel');
      assert.equal(await broker.queueLength(q), 1);
      await d!.ack();
      const [next] = await consume([q], 1);
      const [d2] = await next.until(1);
      assert.equal(d2!.message.headers['n'], 2);
      await d2!.ack();
    });

    it('consumes several queues and tells which one a delivery came from', async () => {
      const [a, b] = [newQueue(), newQueue()];
      await broker.publish(testMessage(1), { queue: a });
      await broker.publish(testMessage(2), { queue: b });
      const [inbox] = await consume([a, b], 5);
      const got = await inbox.until(2);
      assert.deepEqual(got.map((d) => [d.message.headers['n'], d.queue]).sort(), [[1, a], [2, b]]);
      await Promise.all(got.map((d) => d.ack()));
    });

    // not a skip: the behaviour does not exist on adapters with one consumer per queue (AMQP)
    if (roundRobin) it('serves several queues round-robin', async () => {
      const [a, b] = [newQueue(), newQueue()];
      for (const n of [1, 2, 3]) await broker.publish(testMessage(n), { queue: a });
      for (const n of [11, 12]) await broker.publish(testMessage(n), { queue: b });
      const [inbox] = await consume([a, b], 1);
      for (let i = 1; i <= 5; i += 1) await (await inbox.until(i))[i - 1]!.ack();
      assert.deepEqual(ns(inbox.got), [1, 11, 2, 12, 3]);
    });

    it('counts waiting messages over every priority', async () => {
      const [q, other] = [newQueue(), newQueue()];
      assert.equal(await broker.queueLength(q), 0);
      for (const p of [0, 4, 7, 9, undefined]) await broker.publish(testMessage(1, p), { queue: q });
      assert.equal(await broker.queueLength(q), 5);
      assert.equal(await broker.queueLength(other), 0);
      await broker.ping();
    });

    it('close is idempotent', async () => {
      const b = await makeBroker();
      await b.ping();
      await Promise.all([b.close(), b.close()]);
      await b.close();
    });
  });
}
