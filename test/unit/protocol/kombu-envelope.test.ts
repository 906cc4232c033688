import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  bindingMember, consumeOrder, decodeEnvelope, encodeEnvelope, parseBindingMember, priorityQueueName, queueOfList,
} from '../../../src/protocol/kombu-envelope.ts';

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
});
