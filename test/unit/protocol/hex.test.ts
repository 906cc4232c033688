import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hex32, hex48 } from '../../../src/protocol/hex.ts';
import { newDeliveryTag } from '../../../src/protocol/kombu-envelope.ts';

const pad = (n: number, width: number): string => n.toString(16).padStart(width, '0');

describe('hex by table', () => {
  it('hex32 writes 8 digits as Number#toString(16) would, edges included', () => {
    for (const n of [0, 1, 0xf, 0x10, 0xff, 0x100, 0x7fffffff, 0x80000000, 0xfffffffe, 0xffffffff]) assert.equal(hex32(n), pad(n, 8), String(n));
    for (let i = 0; i < 20_000; i += 1) {
      const n = Math.floor(Math.random() * 2 ** 32);
      assert.equal(hex32(n), pad(n, 8));
    }
  });

  it('hex48 writes 12 digits, across the 24-bit split', () => {
    for (const n of [0, 1, 0xffffff, 0x1000000, 0x1000001, 2 ** 32, 2 ** 47, 2 ** 48 - 1]) assert.equal(hex48(n), pad(n, 12), String(n));
    for (let i = 0; i < 20_000; i += 1) {
      const n = Math.floor(Math.random() * 2 ** 48);
      assert.equal(hex48(n), pad(n, 12));
    }
  });
});

describe('delivery tags', () => {
  it('keep the uuid4 shape kombu\'s tags have, and never repeat', () => {
    const tags = Array.from({ length: 50_000 }, newDeliveryTag);
    assert.equal(new Set(tags).size, tags.length);
    for (const tag of [tags[0]!, tags[1]!, tags[49_999]!]) assert.match(tag, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    // one process: one random prefix, then a counter
    assert.equal(tags[0]!.slice(0, 24), tags[49_999]!.slice(0, 24));
    assert.equal(Number.parseInt(tags[1]!.slice(24), 16) - Number.parseInt(tags[0]!.slice(24), 16), 1);
  });
});
