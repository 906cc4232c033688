/**
 * Field-table coding without a broker: what we encode must read back identically in py-amqp 5.1.1,
 * whose reader differs from RabbitMQ's errata ('b' unsigned, 's' = short string, 'L' = int64).
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { amqplib, fromTable, int64DecodingInstalled, toTable } from '../../src/brokers/amqp-support.ts';

const require = createRequire(import.meta.url);
const codec = require('amqplib/lib/codec.js') as { encodeTable(buf: Buffer, val: unknown, offset: number): number; decodeFields(b: Buffer): unknown };

function encode(table: unknown): Buffer {
  const buf = Buffer.alloc(65536);
  const size = codec.encodeTable(buf, table, 0);
  return buf.subarray(4, size); // without the length prefix, as decodeFields takes it
}

/** The type tags of a flat table's values, in order (a minimal py-amqp-style walk). */
function tags(fields: Buffer): string[] {
  const out: string[] = [];
  let o = 0;
  const skip = (tag: string): void => {
    const fixed: Record<string, number> = { I: 4, l: 8, L: 8, d: 8, t: 1, V: 0, b: 1, s: 2 };
    if (tag in fixed) o += fixed[tag]!;
    else if (tag === 'S' || tag === 'A' || tag === 'F') o += 4 + fields.readUInt32BE(o);
    else throw new Error(`tag ${tag}`);
  };
  while (o < fields.length) {
    const klen = fields[o]!;
    o += 1 + klen;
    const tag = String.fromCharCode(fields[o]!);
    o += 1;
    out.push(tag);
    skip(tag);
  }
  return out;
}

describe('AMQP header coding', () => {
  it('encodes numbers with the types py-amqp writes (never b/s), null as void, arrays as A', () => {
    const headers = { retries: 0, big: 300, neg: -1, i32: 2 ** 31 - 1, i64: 2 ** 40, f: 1.5, n: null, tl: [null, null], ok: false, s: 'x', o: { a: 1 } };
    assert.deepEqual(tags(encode(toTable(headers))), ['I', 'I', 'I', 'I', 'l', 'd', 'V', 'A', 't', 'S', 'F']);
  });

  it('round-trips Celery headers through amqplib (incl. nested objects, "!" keys)', () => {
    const headers = {
      lang: 'py', task: 'tasks.add', id: 'x', shadow: null, eta: null, group_index: null, retries: 0, timelimit: [null, 30.5],
      ignore_result: false, custom: { '!': 'not a trapdoor', value: 1, list: [1, 'a', { b: null }] }, hasOwnProperty: 'harmless',
    };
    assert.deepEqual(fromTable(codec.decodeFields(encode(toTable(headers)))), headers);
  });

  it("decodes py-amqp's int64 tag 'L' (stock amqplib 0.10 drops the connection on it)", () => {
    assert.equal(int64DecodingInstalled(), true);
    const big = Buffer.alloc(8);
    big.writeBigInt64BE(-(2n ** 40n));
    const fields = Buffer.concat([Buffer.from([1, 0x6e, 0x4c]), big, Buffer.from([1, 0x61, 0x41, 0, 0, 0, 9, 0x4c]), Buffer.alloc(8, 0)]);
    assert.deepEqual(codec.decodeFields(fields), { n: -(2 ** 40), a: [0] });
    assert.equal(typeof amqplib.connect, 'function');
  });

  it('turns amqplib-only shapes into JSON (timestamps, decimals, byte strings)', () => {
    assert.deepEqual(fromTable({ t: { '!': 'timestamp', value: 1700000000 }, d: { '!': 'decimal', value: { places: 2, digits: 1234 } }, x: Buffer.from('hi') }), { t: 1700000000, d: 12.34, x: 'hi' });
    assert.deepEqual(fromTable(undefined), {});
  });
});
