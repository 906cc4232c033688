/**
 * Fuzzing the protocol decoder and the Node worker with malformed task messages (issue #8):
 *   - parseTaskMessage and decodeEnvelope never throw anything but a GatewayError (GW_ERR_PROTOCOL /
 *     GW_ERR_CONTENT_DISALLOWED), whatever the headers, body, content type or envelope text;
 *   - a worker fed bad messages interleaved with good ones stores SUCCESS for every good one, rejects
 *     every bad one exactly once (logged, not redelivered), leaves the queue empty and keeps serving.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { pino } from 'pino';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { waitForResult } from '../../src/backends/wait.ts';
import type { ConsumeOptions, Delivery, Subscription } from '../../src/brokers/broker.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { GatewayError } from '../../src/errors.ts';
import { decodeEnvelope, encodeEnvelope } from '../../src/protocol/kombu-envelope.ts';
import { buildTaskMessage, parseTaskMessage, type TaskCall } from '../../src/protocol/message.ts';
import type { Json, RawMessage } from '../../src/protocol/types.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';

const RUNS = Number(process.env['FUZZ_RUNS'] ?? 400);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const nasty = fc.constantFrom('\u0000', '\ud800', '\udfff', '\u202e', '\ufeff', '"', '\\', '{', '[', 'é', '😀');
const weirdString = fc.oneof(
  fc.string({ maxLength: 30 }),
  fc.string({ unit: 'binary', maxLength: 30 }),
  fc.string({ unit: fc.oneof(nasty, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 20 }),
);
const jsonish: fc.Arbitrary<Json> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }),
    fc.constantFrom(1e308, -1e308, 2 ** 64, -0), weirdString,
    fc.array(tie('v') as fc.Arbitrary<Json>, { maxLength: 3 }),
    fc.dictionary(weirdString, tie('v') as fc.Arbitrary<Json>, { maxKeys: 3 }),
  ),
})).v as fc.Arbitrary<Json>;

function goodCall(task: string, args: Json[]): TaskCall {
  return { task, id: `good-${randomUUID()}`, args, kwargs: {}, origin: 'fuzz@host', replyTo: randomUUID() };
}

/** a valid message to mutate */
const base = (): RawMessage => buildTaskMessage(goodCall('tasks.add', [1, 2]), new Date());

/** One malformed thing at a time, on top of a valid message (so each case isolates one fault). */
const mutation: fc.Arbitrary<(m: RawMessage) => RawMessage> = fc.oneof(
  // body not JSON, or JSON of the wrong shape
  weirdString.map((body) => (m: RawMessage) => ({ ...m, body })),
  jsonish.map((v) => (m: RawMessage) => ({ ...m, body: JSON.stringify(v) })),
  fc.tuple(jsonish, jsonish, jsonish).map(([a, k, e]) => (m: RawMessage) => ({ ...m, body: JSON.stringify([a, k, e]) })),
  fc.constantFrom('[[], {}]', '[[], {}, {}, {}]', '[1, {}, {}]', '[[], [], {}]', '[[], {}, 5]', '[[], {}, {"callbacks": 5}]', '[[], {}, {"chain": [{"args": []}]}]', '[[], {}, {"chord": {"task": 1}}]', '{"task": "tasks.add", "id": "v1"}', '', 'null', '\u0000')
    .map((body) => (m: RawMessage) => ({ ...m, body })),
  // wrong content type / encoding (pickle, yaml, msgpack, nonsense)
  fc.oneof(fc.constantFrom('application/x-python-serialize', 'application/x-yaml', 'application/x-msgpack', 'text/plain', '', 'application/json+x'), weirdString.filter((s) => s.trim().toLowerCase() !== 'application/json'))
    .map((contentType) => (m: RawMessage) => ({ ...m, contentType })),
  // headers: missing task/id, wrong types, eta/expires garbage, huge strings
  fc.constantFrom('task', 'id').map((key) => (m: RawMessage) => { const headers = { ...m.headers }; delete headers[key]; return { ...m, headers }; }),
  fc.tuple(fc.constantFrom('task', 'id'), jsonish.filter((v) => typeof v !== 'string' || v === '')).map(([key, value]) => (m: RawMessage) => ({ ...m, headers: { ...m.headers, [key]: value } })),
  fc.tuple(fc.constantFrom('eta', 'expires'), fc.oneof(weirdString.filter((s) => !/^\d{4}-/.test(s)), fc.integer(), fc.constantFrom('2020-13-45T00:00:00', '2021-02-29', 'tomorrow', '9999999-01-01', '2024-01-01T25:00:00Z')) as fc.Arbitrary<Json>)
    .map(([key, value]) => (m: RawMessage) => ({ ...m, headers: { ...m.headers, [key]: value } })),
  fc.tuple(fc.constantFrom('retries', 'group_index', 'timelimit', 'ignore_result', 'argsrepr', 'origin', 'shadow', 'lang', 'root_id'), fc.constantFrom<Json>('x', 1.5, [1], [1, 2, 3], ['a', 'b'], {}, true, -1e308))
    .map(([key, value]) => (m: RawMessage) => ({ ...m, headers: { ...m.headers, [key]: value } })),
  fc.integer({ min: 100_000, max: 3_000_000 }).map((n) => (m: RawMessage) => ({ ...m, headers: { ...m.headers, task: 'x'.repeat(n) } })),
  jsonish.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v)).map((headers) => (m: RawMessage) => ({ ...m, headers: headers as never })),
);

/** a mutated message that parseTaskMessage refuses (the few mutations that stay valid are skipped) */
const badMessage = mutation.map((mutate) => mutate(base())).filter((m) => {
  try { parseTaskMessage(m); return false; } catch { return true; }
});

function isOwnError(err: unknown): boolean {
  return err instanceof GatewayError && ['GW_ERR_PROTOCOL', 'GW_ERR_CONTENT_DISALLOWED'].includes(err.code);
}

describe('protocol decoder fuzzing', () => {
  it('parseTaskMessage throws only its own GatewayError, for mutated and for arbitrary messages', () => {
    const arbitraryRaw = fc.record({
      headers: fc.oneof(fc.anything(), fc.dictionary(fc.constantFrom('task', 'id', 'eta', 'expires', 'timelimit', 'retries', 'group', 'lang', 'x'), jsonish)),
      properties: fc.anything(),
      contentType: fc.oneof(fc.constant('application/json'), fc.constant(' Application/JSON '), fc.anything()),
      contentEncoding: fc.anything(),
      body: fc.oneof(weirdString, jsonish.map((v) => JSON.stringify(v)), fc.anything()),
    });
    const property = (raw: unknown): void => {
      try {
        parseTaskMessage(raw as RawMessage);
      } catch (err) {
        assert.ok(isOwnError(err), `threw ${err instanceof Error ? `${err.name}: ${err.message}` : String(err)}`);
      }
    };
    fc.assert(fc.property(mutation, (mutate) => property(mutate(base()))), { numRuns: RUNS * 5, includeErrorInReport: true });
    fc.assert(fc.property(arbitraryRaw, property), { numRuns: RUNS * 5, includeErrorInReport: true });
  });

  it('decodeEnvelope throws only its own GatewayError, for arbitrary text and mutated envelopes', () => {
    const valid = JSON.parse(encodeEnvelope(base(), { exchange: '', routingKey: 'celery' }, randomUUID())) as Record<string, unknown>;
    const mutatedEnvelope = fc.tuple(fc.constantFrom('body', 'properties', 'headers', 'content-type', 'content-encoding'), fc.oneof(jsonish, fc.constant(undefined)))
      .map(([key, value]) => JSON.stringify({ ...valid, [key]: value }));
    const base64Garbage = weirdString.map((body) => JSON.stringify({ ...valid, body, properties: { ...(valid['properties'] as object), body_encoding: 'base64' } }));
    const text = fc.oneof(weirdString, jsonish.map((v) => JSON.stringify(v)), mutatedEnvelope, base64Garbage);
    fc.assert(fc.property(text, (t) => {
      try {
        const decoded = decodeEnvelope(t);
        // whatever decodes goes on to the task parser, which must hold too
        try { parseTaskMessage(decoded.message); } catch (err) { assert.ok(isOwnError(err), String(err)); }
      } catch (err) {
        assert.ok(err instanceof GatewayError && err.code === 'GW_ERR_PROTOCOL', `threw ${String(err)}`);
      }
    }), { numRuns: RUNS * 5, includeErrorInReport: true });
  });
});

/** A memory broker that counts deliveries, to show that a rejected message is not delivered again. */
class CountingBroker extends MemoryBroker {
  delivered = 0;
  published = 0;
  override async publish(message: RawMessage, route: { queue: string }): Promise<void> {
    this.published += 1;
    await super.publish(message, route);
  }
  override async consume(options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription> {
    return super.consume(options, (d) => { this.delivered += 1; onDelivery(d); });
  }
}

describe('worker fuzzing: malformed messages interleaved with good ones', () => {
  it('every good task is stored SUCCESS, every bad one rejected once and logged, the worker keeps serving', async () => {
    const lines: string[] = [];
    const sink = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(chunk.toString()); cb(); } });
    const logger = pino({ level: 'warn' }, sink);
    const broker = new CountingBroker();
    const backend = new MemoryBackend({ submittedTtlSec: 3600 });
    const queue = `h3-wfuzz-${randomUUID()}`;
    const worker = new Worker({
      broker, backend, queues: [queue], concurrency: 8, prefetchMultiplier: 4, hostname: `h3-fuzz.${process.pid}@host`,
      logger, shutdownTimeout: 2, remoteControl: false,
      registry: new TaskRegistry().registerAll({
        'tasks.add': (x: number, y: number) => x + y,
        'tasks.echo': (...params: unknown[]) => params.slice(0, -1),
      }),
    });
    await worker.start();
    try {
      const batch = fc.sample(fc.oneof(
        { weight: 1, arbitrary: fc.tuple(fc.integer(), fc.integer()).map(([x, y]) => ({ good: true as const, call: goodCall('tasks.add', [x, y]) })) },
        { weight: 1, arbitrary: fc.array(jsonish, { maxLength: 4 }).map((args) => ({ good: true as const, call: goodCall('tasks.echo', args) })) },
        { weight: 3, arbitrary: badMessage.map((raw) => ({ good: false as const, raw })) },
      ), { numRuns: Math.max(100, Math.round(RUNS * 0.75)) });
      const good: TaskCall[] = [];
      let bad = 0;
      for (const item of batch) {
        if (item.good) {
          good.push(item.call);
          await broker.publish(buildTaskMessage(item.call, new Date()), { queue });
        } else {
          bad += 1;
          await broker.publish(item.raw, { queue });
        }
      }
      assert.ok(bad >= 50 && good.length >= 20, `a real mix: ${bad} bad, ${good.length} good`);
      for (const call of good) {
        const meta = await waitForResult(backend, call.id, 5000);
        assert.equal(meta?.status, 'SUCCESS', `${call.task}${JSON.stringify(call.args).slice(0, 100)} → ${JSON.stringify(meta)?.slice(0, 300)}`);
        if (call.task === 'tasks.add') assert.equal(meta?.result, (call.args[0] as number) + (call.args[1] as number));
      }
      // the worker is still alive: one more good task after everything else
      const last = goodCall('tasks.add', [20, 22]);
      await broker.publish(buildTaskMessage(last, new Date()), { queue });
      assert.equal((await waitForResult(backend, last.id, 5000))?.result, 42);
      await sleep(50);
      assert.equal(await broker.queueLength(queue), 0, 'nothing left in the queue');
      // every message was delivered exactly once: rejected ones were not put back
      assert.equal(broker.delivered, broker.published, `${broker.delivered} deliveries for ${broker.published} messages`);
      const rejected = lines.filter((l) => /reject/i.test(l)).length;
      assert.equal(rejected, bad, `${rejected} rejections logged for ${bad} bad messages`);
    } finally {
      await worker.close();
      await broker.close();
      await backend.close();
    }
  });
});

describe('worker: deeply nested arguments', () => {
  it('args nested 6000 deep (JSON.parse copes, JSON.stringify overflows): a FAILURE is stored, the worker keeps serving', async () => {
    const broker = new MemoryBroker();
    const backend = new MemoryBackend({ submittedTtlSec: 60 });
    const queue = `h3-wdeep-${randomUUID()}`;
    const worker = new Worker({
      broker, backend, queues: [queue], concurrency: 2, prefetchMultiplier: 1, hostname: `h3-deep.${process.pid}@host`,
      logger: pino({ level: 'silent' }), shutdownTimeout: 1, remoteControl: false,
      registry: new TaskRegistry().registerAll({ 'tasks.echo': (...p: unknown[]) => p.slice(0, -1), 'tasks.add': (a: number, b: number) => a + b }),
    });
    await worker.start();
    try {
      const deep = goodCall('tasks.echo', []);
      const message = buildTaskMessage(deep, new Date());
      await broker.publish({ ...message, body: `[[${'['.repeat(6000)}1${']'.repeat(6000)}], {}, {}]` }, { queue });
      const after = goodCall('tasks.add', [1, 2]);
      await broker.publish(buildTaskMessage(after, new Date()), { queue });
      assert.equal((await waitForResult(backend, after.id, 5000))?.result, 3);
      const meta = await waitForResult(backend, deep.id, 5000);
      assert.equal(meta?.status, 'FAILURE');
      await sleep(50);
      assert.equal(await broker.queueLength(queue), 0);
    } finally {
      await worker.close();
      await broker.close();
      await backend.close();
    }
  });
});
