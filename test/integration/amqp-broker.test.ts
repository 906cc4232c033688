/**
 * AmqpBroker against a real RabbitMQ: Celery-identical declarations and message properties, publisher
 * confirms, outage behaviour, redelivery, reconnect. The rpc:// backend is in amqp-rpc.test.ts.
 */
// amqp-support first: it must load amqplib itself (int64 header decoding, see there)
import { amqplib, publishConfirmed, publishOptions } from '../../src/brokers/amqp-support.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import type { Channel, ChannelModel, GetMessage } from 'amqplib';
import type { Delivery } from '../../src/brokers/broker.ts';
import { isGatewayError } from '../../src/errors.ts';
import type { RawMessage } from '../../src/protocol/types.ts';
import { silentLogger } from '../support/app.ts';
import { celeryGate, PYTHON } from '../support/python.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';
import { amqpUrlToOptions } from '../../src/brokers/amqp-url.ts';
import { redactUrl } from '../../src/config.ts';

const AMQP_URL = amqpUrl();
const skip = await rabbitGate();
const o = amqpUrlToOptions(AMQP_URL);
/** py-amqp's connection to the same broker */
const PY_CONNECT = `c = amqp.Connection(${JSON.stringify(`${o.hostname}:${o.port}`)}, userid=${JSON.stringify(o.username)}, password=${JSON.stringify(o.password)}, virtual_host=${JSON.stringify(o.vhost)}); c.connect()`;
const run = promisify(execFile);
const tag = `${process.pid}-${Date.now().toString(36)}`;
let counter = 0;
const FIXTURES = new URL('../fixtures/celery/', import.meta.url);
type Obj = Record<string, any>;
const load = (name: string): Obj => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** `rabbitmqctl … --formatter json`, or null when it cannot be run here (it is optional). */
async function ctl(...args: string[]): Promise<Obj[] | null> {
  if (!['127.0.0.1', 'localhost', '::1'].includes(o.hostname)) return null; // not our node
  try {
    const { stdout } = await run('rabbitmqctl', [...args, '--formatter', 'json', '-q'], { timeout: 20_000 });
    return JSON.parse(stdout) as Obj[];
  } catch {
    return null;
  }
}

async function waitFor<T>(what: string, fn: () => T | undefined | Promise<T | undefined>, timeoutMs = 10_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

function isUnavailable(err: unknown): boolean {
  assert.ok(isGatewayError(err), `not a GatewayError: ${String(err)}`);
  assert.equal(err.code, 'GW_ERR_BROKER_UNAVAILABLE');
  return true;
}

/** A fixture's AMQP message as the RawMessage a Celery client would hand the broker. */
function rawFromFixture(m: Obj): RawMessage {
  const { content_type, content_encoding, ...properties } = m.properties as Obj;
  return { headers: m.headers, properties, contentType: content_type, contentEncoding: content_encoding, body: m.body_raw };
}

describe('AmqpBroker on RabbitMQ', { skip }, () => {
  let raw: ChannelModel;
  const brokers: AmqpBroker[] = [];
  const queues = new Set<string>();
  const unique = (what: string): string => {
    const q = `test-amqp-${what}-${tag}-${++counter}`;
    queues.add(q);
    return q;
  };
  const broker = (opts: Partial<ConstructorParameters<typeof AmqpBroker>[0]> = {}): AmqpBroker => {
    const b = new AmqpBroker({ url: AMQP_URL, logger: silentLogger, ...opts });
    brokers.push(b);
    return b;
  };
  /** a fresh channel per use: server errors close it */
  const channel = async (): Promise<Channel> => {
    const ch = await raw.createChannel();
    ch.on('error', () => {});
    return ch;
  };
  const getOne = (queue: string): Promise<GetMessage> =>
    waitFor(`a message on ${queue}`, async () => {
      const ch = await channel();
      const m = await ch.get(queue, { noAck: true });
      await ch.close();
      return m === false ? undefined : m;
    });
  const msg = (body = '[[1], {}, {}]', extra: Partial<RawMessage['properties']> = {}): RawMessage => ({
    headers: { task: 'tasks.add', id: 'i' }, properties: { correlation_id: 'i', reply_to: 'r', delivery_mode: 2, priority: 0, ...extra },
    contentType: 'application/json', contentEncoding: 'utf-8', body,
  });

  before(async () => {
    raw = await amqplib.connect(AMQP_URL);
  });
  after(async () => {
    await Promise.all(brokers.map((b) => b.close()));
    const ch = await channel();
    for (const q of queues) {
      await ch.deleteQueue(q);
      await ch.deleteExchange(q);
    }
    await ch.close();
    await raw.close();
  });

  it("declares exchange, queue and binding exactly as Celery does (a Celery re-declare can't PRECONDITION_FAIL)", async () => {
    const plain = unique('decl');
    const prio = unique('decl-prio');
    await broker().publish(msg(), { queue: plain });
    await broker({ maxPriority: 10 }).publish(msg(), { queue: prio });

    // kombu's declarations, with py-amqp's argument types (amqp-declarations.json: x-max-priority signedint 10)
    const ch = await channel();
    await ch.assertExchange(plain, 'direct', { durable: true, autoDelete: false, internal: false });
    await ch.assertQueue(plain, { durable: true, exclusive: false, autoDelete: false, arguments: {} });
    await ch.assertExchange(prio, 'direct', { durable: true, autoDelete: false, internal: false });
    await ch.assertQueue(prio, { durable: true, exclusive: false, autoDelete: false, arguments: { 'x-max-priority': { '!': 'int', value: 10 } } });
    await ch.close();
    // ... and a declaration that differs does fail (so the check above means something)
    const other = await channel();
    await assert.rejects(other.assertQueue(plain, { durable: true, arguments: { 'x-max-priority': 10 } }), (e: any) => e.code === 406);

    // the binding <q> → <q> with key <q>: publishing through the exchange reaches the queue
    const pub = await channel();
    pub.publish(prio, prio, Buffer.from('[]'));
    await pub.close();
    assert.equal(await waitFor('2 messages', async () => ((await broker().queueLength(prio)) === 2 ? 2 : undefined)), 2);
  });

  it('declares what rabbitmqctl shows for Celery (amqp-declarations.json)', async (t) => {
    const q = unique('ctl');
    await broker({ maxPriority: 10 }).publish(msg(), { queue: q });
    const listed = await ctl('list_queues', 'name', 'durable', 'auto_delete', 'exclusive', 'arguments');
    if (!listed) return t.skip('rabbitmqctl not available');
    const fx = load('amqp-declarations.json').after_worker_start as Obj;
    const strip = ({ name: _n, ...rest }: Obj): Obj => rest;
    assert.deepEqual(strip(listed.find((x) => x.name === q)!), strip(fx.queues.find((x: Obj) => x.name === 'prio')));
    const exchanges = (await ctl('list_exchanges', 'name', 'type', 'durable', 'auto_delete', 'internal', 'arguments'))!;
    assert.deepEqual(strip(exchanges.find((x) => x.name === q)!), strip(fx.exchanges.find((x: Obj) => x.name === 'prio')));
    const bindings = (await ctl('list_bindings', 'source_name', 'destination_name', 'destination_kind', 'routing_key', 'arguments'))!;
    assert.deepEqual(bindings.filter((b) => b.destination_name === q && b.source_name === q), [
      { source_name: q, destination_name: q, destination_kind: 'queue', routing_key: q, arguments: [] },
    ]);
  });

  it('publishes the properties, headers and body a Celery client does (amqp-* fixtures)', async () => {
    const b = broker({ maxPriority: 10 });
    for (const name of ['amqp-plain.json', 'amqp-countdown-expires.json', 'amqp-custom-queue.json', 'amqp-priority.json']) {
      const fx = load(name).messages[0] as Obj;
      const q = unique('props');
      await b.publish(rawFromFixture(fx), { queue: q });
      const got = await getOne(q);
      assert.equal(got.fields.exchange, '', name);
      assert.equal(got.fields.routingKey, q, name);
      const p = got.properties;
      const seen: Obj = {
        content_type: p.contentType, content_encoding: p.contentEncoding, delivery_mode: p.deliveryMode, priority: p.priority,
        correlation_id: p.correlationId, reply_to: p.replyTo, expiration: p.expiration,
      };
      for (const k of Object.keys(seen)) if (seen[k] === undefined) delete seen[k];
      assert.deepEqual(seen, fx.properties, name);
      assert.deepEqual(p.headers, fx.headers, name);
      assert.equal(got.content.toString('utf8'), fx.body_raw, name);
    }
  });

  it("publishes through amqplib's own two steps, sending what ch.publish sends (and falls back to ch.publish)", async () => {
    const ch = await raw.createConfirmChannel();
    ch.on('error', () => {});
    try {
      // the fast path exists in this amqplib: if these go, publishConfirmed silently takes the slow one
      const steps = ch as unknown as Record<string, unknown>;
      assert.equal(typeof steps['pushConfirmCallback'], 'function');
      assert.equal(typeof steps['sendMessage'], 'function');
      for (const name of ['amqp-plain.json', 'amqp-countdown-expires.json', 'amqp-priority.json']) {
        const message = rawFromFixture(load(name).messages[0] as Obj);
        const viaAmqplib = unique('steps-a');
        const viaSteps = unique('steps-b');
        const viaFallback = unique('steps-c');
        for (const q of [viaAmqplib, viaSteps, viaFallback]) await ch.assertQueue(q, { durable: false, arguments: { 'x-max-priority': 10 } });
        const content = Buffer.from(message.body, 'utf8');
        const confirmed = (publish: (cb: (err: unknown) => void) => void) => new Promise<void>((resolve, reject) => publish((err) => (err ? reject(err) : resolve())));
        await confirmed((cb) => ch.publish('', viaAmqplib, content, publishOptions(message), cb));
        await confirmed((cb) => publishConfirmed(ch, '', viaSteps, content, publishOptions(message), cb));
        // persistent is an option only Args.publish knows: the same call goes through ch.publish
        await confirmed((cb) => publishConfirmed(ch, '', viaFallback, content, { ...publishOptions(message), deliveryMode: undefined, persistent: message.properties.delivery_mode === 2 }, cb));
        const a = await getOne(viaAmqplib);
        for (const q of [viaSteps, viaFallback]) {
          const b = await getOne(q);
          assert.deepEqual(b.properties, a.properties, `${name} via ${q}`);
          assert.deepEqual(b.content, a.content, `${name} via ${q}`);
          assert.equal(b.fields.routingKey, q);
        }
        assert.deepEqual(a.properties.headers, load(name).messages[0].headers, name);
      }
    } finally {
      await ch.close();
    }
  });

  it('py-amqp (what a Python worker uses) reads our headers and properties as Celery wrote them', async (t) => {
    const reason = await celeryGate();
    if (reason) return t.skip(reason);
    const fx = load('amqp-countdown-expires.json').messages[0] as Obj;
    const m = rawFromFixture(fx);
    // values amqplib would otherwise encode as 'b'/'s', which py-amqp reads as unsigned / short string
    const extra = { 'x-neg': -1, 'x-300': 300, 'x-i64': 2 ** 40, 'x-float': 1.5, 'x-nested': { a: [1, null, 'é'], t: true } };
    m.headers = { ...m.headers, ...extra };
    const q = unique('pyamqp');
    await broker().publish(m, { queue: q });
    const script = [
      'import amqp, json, sys',
      PY_CONNECT,
      'm = c.channel().basic_get(sys.argv[1], no_ack=True)',
      "p = dict(m.properties); h = p.pop('application_headers')",
      "print(json.dumps({'p': p, 'h': h, 'b': m.body.decode() if isinstance(m.body, bytes) else m.body, 'x': m.delivery_info['exchange']}))",
      'c.close()',
    ].join('\n');
    const { stdout } = await run(PYTHON, ['-c', script, q], { timeout: 20_000 });
    const seen = JSON.parse(stdout) as Obj;
    assert.deepEqual(seen.p, fx.properties);
    assert.deepEqual(seen.h, { ...fx.headers, ...extra });
    assert.equal(seen.b, fx.body_raw);
    assert.equal(seen.x, '');
  });

  it('hands consumers the RawMessage that was published (every amqp-* fixture)', async () => {
    const b = broker({ maxPriority: 10 });
    for (const name of ['amqp-plain.json', 'amqp-countdown-expires.json', 'amqp-custom-queue.json', 'amqp-priority.json', 'amqp-chord.json']) {
      const sent = rawFromFixture(load(name).messages[0] as Obj);
      const q = unique('roundtrip');
      await b.publish(sent, { queue: q });
      const got: Delivery[] = [];
      const sub = await b.consume({ queues: [q], prefetch: 1 }, (d) => got.push(d));
      const d = await waitFor(name, () => got[0]);
      assert.deepEqual(d.message, sent, name);
      await d.ack();
      await sub.cancel();
    }
  });

  it('consumes what py-amqp publishes, including int64 headers (stock amqplib drops the connection on them)', async (t) => {
    const reason = await celeryGate();
    if (reason) return t.skip(reason);
    const q = unique('from-python');
    const b = broker();
    const got: Delivery[] = [];
    await b.consume({ queues: [q], prefetch: 1 }, (d) => got.push(d));
    const script = [
      'import amqp, sys',
      PY_CONNECT,
      "h = {'big': 2**40, 'neg': -2**40, 'n': None, 'tl': [None, 30], 'f': 1.5, 'ok': True, 'd': {'k': 'v'}}",
      "m = amqp.Message('[[1], {}, {}]', content_type='application/json', content_encoding='utf-8', correlation_id='c1', reply_to='r1', delivery_mode=2, priority=3, application_headers=h)",
      "c.channel().basic_publish(m, exchange='', routing_key=sys.argv[1])",
      'c.close()',
    ].join('\n');
    await run(PYTHON, ['-c', script, q], { timeout: 20_000 });
    const d = await waitFor('the Python message', () => got[0]);
    assert.deepEqual(d.message, {
      headers: { big: 2 ** 40, neg: -(2 ** 40), n: null, tl: [null, 30], f: 1.5, ok: true, d: { k: 'v' } },
      properties: { correlation_id: 'c1', reply_to: 'r1', delivery_mode: 2, priority: 3 },
      contentType: 'application/json', contentEncoding: 'utf-8', body: '[[1], {}, {}]',
    });
    await d.ack();
  });

  it('resolves publish only on the broker confirm; a nack rejects with GW_ERR_BROKER_UNAVAILABLE', async () => {
    const q = unique('nack');
    const b = broker({ queueArguments: { 'x-max-length': 1, 'x-overflow': 'reject-publish' } });
    await b.publish(msg('[[1], {}, {}]'), { queue: q });
    assert.equal(await b.queueLength(q), 1, 'confirmed = enqueued');
    await assert.rejects(b.publish(msg('[[2], {}, {}]'), { queue: q }), isUnavailable);
    assert.equal((await getOne(q)).content.toString(), '[[1], {}, {}]');
    await b.publish(msg('[[3], {}, {}]'), { queue: q }); // the confirm channel survived the nack
    assert.equal(await b.queueLength(q), 1);
  });

  it('rejects promptly with GW_ERR_BROKER_UNAVAILABLE when the broker is unreachable, without queueing', async () => {
    const b = broker({ url: 'amqp://guest:guest@127.0.0.1:1//' });
    let t0 = Date.now();
    await assert.rejects(b.publish(msg(), { queue: 'never' }), isUnavailable);
    assert.ok(Date.now() - t0 < 2000, `first publish took ${Date.now() - t0} ms`);
    t0 = Date.now();
    await assert.rejects(b.publish(msg(), { queue: 'never' }), isUnavailable);
    await assert.rejects(b.ping(), isUnavailable);
    await assert.rejects(b.consume({ queues: ['never'], prefetch: 1 }, () => {}), isUnavailable);
    assert.ok(Date.now() - t0 < 200, `later calls took ${Date.now() - t0} ms while reconnecting`);
    await b.close();
    await assert.rejects(b.publish(msg(), { queue: 'never' }), isUnavailable);
  });

  it('redelivers (redelivered=true) to another consumer what was not acked before the channel closed', async () => {
    const q = unique('redeliver');
    const a = broker();
    const b = broker();
    await a.publish(msg('[["once"], {}, {}]'), { queue: q });
    const gotA: Delivery[] = [];
    const gotB: Delivery[] = [];
    await a.consume({ queues: [q], prefetch: 1 }, (d) => gotA.push(d));
    await waitFor('delivery to A', () => gotA[0]);
    assert.equal(gotA[0]!.redelivered, false);
    await b.consume({ queues: [q], prefetch: 1 }, (d) => gotB.push(d));
    await sleep(200);
    assert.equal(gotB.length, 0, 'held by A while unacked');
    await a.close();
    const d = await waitFor('redelivery to B', () => gotB[0]);
    assert.equal(d.redelivered, true);
    assert.equal(d.message.body, '[["once"], {}, {}]');
    assert.equal(d.queue, q);
    await gotA[0]!.ack(); // stale: a logged no-op, not a throw
    await d.ack();
    assert.equal(await b.queueLength(q), 0);
  });

  it('reconnects after a connection loss: publish fails fast meanwhile, consumers resubscribe, stale acks are no-ops', async () => {
    const q = unique('reconnect');
    const b = broker();
    await b.publish(msg('[["x"], {}, {}]'), { queue: q });
    const got: Delivery[] = [];
    await b.consume({ queues: [q], prefetch: 1 }, (d) => got.push(d));
    await waitFor('first delivery', () => got[0]);
    const before = b.conn.current!;
    (before as unknown as { connection: { stream: { destroy(err: Error): void } } }).connection.stream.destroy(new Error('simulated network failure'));
    await waitFor('loss noticed', () => (b.conn.current === before ? undefined : true));
    assert.equal(b.conn.current, null, 'reconnect waits for its backoff');
    const t0 = Date.now();
    await assert.rejects(b.publish(msg(), { queue: q }), isUnavailable);
    assert.ok(Date.now() - t0 < 50, 'no queueing behind the outage');
    const again = await waitFor('redelivery after reconnect', () => got[1]);
    assert.notEqual(b.conn.current, before);
    assert.equal(again.redelivered, true);
    await got[0]!.ack();
    await got[0]!.reject(true);
    await again.ack();
    await b.publish(msg('[["y"], {}, {}]'), { queue: q });
    const third = await waitFor('delivery on the new channel', () => got[2]);
    assert.equal(third.redelivered, false);
    await third.ack();
    assert.equal(await b.queueLength(q), 0);
  });

  it('close() does not hang on a connection whose peer went silent', async () => {
    const q = unique('silent');
    const b = broker();
    await b.publish(msg(), { queue: q });
    await b.consume({ queues: [q], prefetch: 1 }, () => {});
    // a black hole: nothing we write arrives, nothing comes back, no 'error'/'end' until heartbeats miss
    const stream = (b.conn.current as unknown as { connection: { stream: import('node:net').Socket } }).connection.stream;
    stream.pause();
    stream.write = (() => true) as typeof stream.write;
    const t0 = Date.now();
    await b.close();
    assert.ok(Date.now() - t0 < 5000, `close took ${Date.now() - t0} ms`);
    assert.ok(stream.destroyed, 'socket dropped');
  });

  it('bounds unacked deliveries with a global prefetch that setPrefetch changes live', async () => {
    const q = unique('prefetch');
    const b = broker();
    for (let i = 0; i < 6; i++) await b.publish(msg(`[[${i}], {}, {}]`), { queue: q });
    const got: Delivery[] = [];
    const sub = await b.consume({ queues: [q], prefetch: 2 }, (d) => got.push(d));
    await waitFor('2 deliveries', () => (got.length >= 2 ? true : undefined));
    await sleep(200);
    assert.equal(got.length, 2);
    const channels = await ctl('list_channels', 'global_prefetch_count', 'prefetch_count', 'consumer_count', 'messages_unacknowledged');
    if (channels) assert.ok(channels.some((c) => c.global_prefetch_count === 2 && c.prefetch_count === 0 && c.messages_unacknowledged === 2), JSON.stringify(channels));
    sub.setPrefetch(4);
    await waitFor('4 deliveries', () => (got.length >= 4 ? true : undefined));
    await sleep(200);
    assert.equal(got.length, 4);
    assert.deepEqual(got.map((d) => d.message.body), ['[[0], {}, {}]', '[[1], {}, {}]', '[[2], {}, {}]', '[[3], {}, {}]']);
    await got[0]!.ack();
    await waitFor('5th delivery after an ack', () => got[4]);
    for (const d of got) await d.ack();
    await sub.cancel();
  });

  it('cancel stops deliveries; deliveries already handed out can still be settled', async () => {
    const q = unique('cancel');
    const b = broker();
    await b.publish(msg('[["a"], {}, {}]'), { queue: q });
    await b.publish(msg('[["b"], {}, {}]'), { queue: q });
    const got: Delivery[] = [];
    const sub = await b.consume({ queues: [q], prefetch: 1 }, (d) => got.push(d));
    await waitFor('delivery', () => got[0]);
    await sub.cancel();
    await got[0]!.reject(false); // dropped for good
    await sleep(200);
    assert.equal(got.length, 1);
    assert.equal(await b.queueLength(q), 1, 'the second message is still waiting');
    assert.equal((await getOne(q)).content.toString(), '[["b"], {}, {}]');
  });

  it('queueLength is 0 for a missing queue and leaves the shared channels usable; ping and close', async () => {
    const b = broker();
    assert.equal(await b.queueLength(`missing-${tag}`), 0);
    const q = unique('after-404');
    await b.publish(msg(), { queue: q });
    assert.equal(await b.queueLength(q), 1);
    await b.ping();
    assert.equal(b.displayUrl, redactUrl(AMQP_URL));
    assert.ok(!o.password || o.password === 'guest' || !b.displayUrl.includes(o.password));
    await Promise.all([b.close(), b.close()]);
    await assert.rejects(b.ping(), isUnavailable);
  });

  it('a queue declared differently elsewhere: that publish fails (PRECONDITION_FAILED), the others go on', async () => {
    const clash = unique('clash');
    const fine = unique('fine');
    const ch = await channel();
    await ch.assertQueue(clash, { durable: true, arguments: { 'x-max-priority': 5 } });
    await ch.close();
    const b = broker({ maxPriority: 10 });
    await assert.rejects(b.publish(msg(), { queue: clash }), (err: unknown) => isUnavailable(err) && /PRECONDITION|406/.test((err as Error).message));
    await b.publish(msg(), { queue: fine });
    assert.equal(await b.queueLength(fine), 1);
    assert.equal(await b.queueLength(clash), 0);
  });

  it('routes through an explicit exchange with its routing key', async () => {
    const q = unique('explicit');
    const b = broker();
    await b.publish(msg('[["via"], {}, {}]'), { queue: q, exchange: q, routingKey: q });
    assert.equal((await getOne(q)).fields.exchange, q);
  });
});
