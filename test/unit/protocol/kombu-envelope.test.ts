import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  bindingMember, consumeOrder, decodeEnvelope, encodeEnvelope, parseBindingMember, priorityQueueName, queueOfList, stringifyEnvelope,
} from '../../../src/protocol/kombu-envelope.ts';
import { buildTaskMessage, type TaskCall } from '../../../src/protocol/message.ts';
import type { Json, JsonObject } from '../../../src/protocol/types.ts';

const dir = new URL('../../fixtures/celery/', import.meta.url);
const load = (name: string) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));

/** Every envelope Celery LPUSHed in the captured fixtures. */
const captured: { file: string; key: string; raw: string }[] = readdirSync(dir)
  .filter((f) => f.startsWith('redis-') && f.endsWith('.json'))
  .flatMap((file) => (load(file).messages ?? []).filter((m: any) => typeof m.raw === 'string' && !m.raw.includes('...<')).map((m: any) => ({ file, key: m.redis_key, raw: m.raw })));

describe('kombu Redis envelope', () => {
  it('has captured envelopes to test against', () => {
    assert.ok(captured.length >= 15, `found ${captured.length}`);
  });

  for (const { file, key, raw } of captured) {
    it(`decodes and re-encodes ${file} (${JSON.stringify(key)}) as kombu wrote it`, () => {
      const d = decodeEnvelope(raw);
      const original = JSON.parse(raw);
      assert.equal(d.message.body, Buffer.from(original.body, 'base64').toString('utf8'));
      assert.deepEqual(d.message.headers, original.headers);
      assert.equal(d.deliveryTag, original.properties.delivery_tag);
      assert.equal(d.routingKey, original.properties.delivery_info.routing_key);
      assert.equal(d.redelivered, false);
      const again = JSON.parse(encodeEnvelope(d.message, { exchange: d.exchange, routingKey: d.routingKey }, d.deliveryTag));
      assert.deepEqual(again, original);
      assert.deepEqual(Object.keys(again), Object.keys(original), 'top-level key order');
      assert.deepEqual(Object.keys(again.properties), Object.keys(original.properties), 'properties key order');
      assert.equal(priorityQueueName(d.routingKey, d.message.properties.priority), key, 'list chosen by priority');
    });
  }

  it('maps priorities to kombu steps', () => {
    assert.deepEqual([0, 1, 2, 3, 5, 6, 8, 9, 12, -1].map((p) => priorityQueueName('q', p)),
      ['q', 'q', 'q', 'q\x06\x163', 'q\x06\x163', 'q\x06\x166', 'q\x06\x166', 'q\x06\x169', 'q\x06\x169', 'q']);
    assert.equal(queueOfList('q\x06\x166'), 'q');
    assert.equal(queueOfList('plain'), 'plain');
  });

  it('consumes every queue at step 0 before any at step 3 (BRPOP argument order)', () => {
    assert.deepEqual(consumeOrder(['celery']), load('redis-worker-keys.json').brpop_examples[0].slice(1, 5));
    assert.deepEqual(consumeOrder(['a', 'b']).slice(0, 4), ['a', 'b', 'a\x06\x163', 'b\x06\x163']);
  });

  it('reads a body without body_encoding as plain text, and marks redelivered', () => {
    const d = decodeEnvelope(JSON.stringify({ body: '[[1],{},{}]', 'content-type': 'application/json', 'content-encoding': 'utf-8', headers: { task: 't', id: 'i', redelivered: true }, properties: { delivery_tag: 'x' } }));
    assert.equal(d.message.body, '[[1],{},{}]');
    assert.equal(d.redelivered, true);
  });

  it('refuses what is not an envelope with GW_ERR_PROTOCOL', () => {
    for (const text of ['nope', '[]', '{"body": 5}']) {
      assert.throws(() => decodeEnvelope(text), (err: any) => err.code === 'GW_ERR_PROTOCOL');
    }
  });

  it('builds and parses binding members like kombu', () => {
    assert.equal(bindingMember('celery', '', 'celery'), load('redis-worker-keys.json').bindings['_kombu.binding.celery'][0]);
    assert.deepEqual(parseBindingMember('rk\x06\x16\x06\x16q2'), { routingKey: 'rk', pattern: '', queue: 'q2' });
    assert.equal(parseBindingMember('bad'), null);
  });

  describe('from templates (plain task messages)', () => {
    const call = (over: Partial<TaskCall> = {}): TaskCall => ({ task: 'tasks.add', id: 'id-1', args: [2, 3], kwargs: {}, origin: 'gen1@h', replyTo: 'r', ...over });
    const route = { exchange: '', routingKey: 'celery' };

    it('writes the bytes JSON.stringify writes, for generated messages plain or not (fast-check)', async () => {
      const fc = await import('fast-check');
      // few names, queues and origins, so templates are both reused and told apart; odd text in every field,
      // the marker templates are made with included
      const odd = fc.constantFrom('tasks.add', 'tasks.mul', 'ünï"cødé\\', '\u0001gw-hole-2\u0001', '"\\u0001gw-hole-0\\u0001"', '');
      const text = fc.oneof(odd, fc.string({ unit: 'binary', maxLength: 12 }));
      const json = fc.jsonValue({ maxDepth: 3 }) as unknown as import('fast-check').Arbitrary<Json>;
      const arbitraryCall = fc.record({
        task: odd,
        id: text,
        args: fc.array(json, { maxLength: 3 }),
        kwargs: fc.dictionary(fc.string({ maxLength: 4 }), json, { maxKeys: 2 }) as unknown as import('fast-check').Arbitrary<JsonObject>,
        origin: fc.constantFrom('gen1@h', 'gen2@h'),
        replyTo: fc.constantFrom('r', 'other'),
        ignoreResult: fc.boolean(),
        priority: fc.constantFrom(0, 5, undefined),
        // what makes a message not plain: each present in about one message in six
        parentId: fc.option(text, { freq: 5 }),
        group: fc.option(text, { freq: 5 }),
        retries: fc.option(fc.nat(3), { freq: 5 }),
        eta: fc.option(fc.constant(new Date(Date.UTC(2030, 0, 1))), { freq: 5 }),
        expires: fc.option(fc.constant(new Date(Date.UTC(2030, 0, 1))), { freq: 5 }),
        headers: fc.option(fc.constant({ custom: 'x' }), { freq: 5 }),
        argsrepr: fc.option(text, { freq: 5 }),
      }, { requiredKeys: ['task', 'id', 'args', 'kwargs', 'origin', 'replyTo'] });
      const exchange = fc.constantFrom('', 'tasks');
      const routingKey = fc.constantFrom('celery', 'q2', 'é"');
      fc.assert(fc.property(arbitraryCall, exchange, routingKey, text, (c, ex, rk, tag) => {
        const fields = Object.fromEntries(Object.entries(c).filter(([, v]) => v !== null)) as unknown as TaskCall;
        const message = buildTaskMessage(fields, new Date(Date.UTC(2029, 0, 1)));
        const info = { exchange: ex, routingKey: rk };
        assert.equal(encodeEnvelope(message, info, tag), stringifyEnvelope(message, info, tag));
      }), { numRuns: 2000 });
    });

    it('keeps apart what a template was made for: the route, the reply queue, the task', () => {
      const a = buildTaskMessage(call(), new Date());
      const b = buildTaskMessage(call({ id: 'id-2', replyTo: 'r2', args: ['x'] }), new Date());
      const c = buildTaskMessage(call({ id: 'id-3', task: 'tasks.mul' }), new Date());
      const first = JSON.parse(encodeEnvelope(a, route, 't1'));
      const other = JSON.parse(encodeEnvelope(b, { exchange: 'ex', routingKey: 'q2' }, 't2'));
      const third = JSON.parse(encodeEnvelope(c, route, 't3'));
      assert.equal(first.headers.id, 'id-1');
      assert.equal(first.headers.root_id, 'id-1');
      assert.equal(first.properties.correlation_id, 'id-1');
      assert.equal(first.properties.delivery_tag, 't1');
      assert.deepEqual(first.properties.delivery_info, { exchange: '', routing_key: 'celery' });
      assert.deepEqual(JSON.parse(Buffer.from(first.body, 'base64').toString('utf8'))[0], [2, 3]);
      assert.deepEqual(other.properties.delivery_info, { exchange: 'ex', routing_key: 'q2' });
      assert.equal(other.properties.reply_to, 'r2');
      assert.equal(other.headers.argsrepr, "('x',)");
      assert.equal(third.headers.task, 'tasks.mul');
      assert.equal(third.headers.id, 'id-3');
    });

    it('stays right past the template limit (task names come from clients)', () => {
      for (let i = 0; i < 600; i += 1) {
        const message = buildTaskMessage(call({ task: `t${i % 300}`, id: `id-${i}` }), new Date());
        assert.equal(encodeEnvelope(message, route, `tag-${i}`), stringifyEnvelope(message, route, `tag-${i}`));
      }
    });
  });
});
