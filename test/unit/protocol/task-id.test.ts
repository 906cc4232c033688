import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { describe, it } from 'node:test';
import { isGatewayTaskId, newTaskId } from '../../../src/protocol/task-id.ts';

describe('gateway task ids (UUID v4 + checksum)', () => {
  it('are UUID v4 strings, all different, and pass their own check', () => {
    const ids = Array.from({ length: 5000 }, newTaskId);
    assert.equal(new Set(ids).size, ids.length);
    for (const id of ids) {
      assert.match(id, /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
      assert.equal(isGatewayTaskId(id), true, id);
    }
  });

  it('any one-character change fails the check (a typo is not one of our ids)', () => {
    const id = newTaskId();
    let tried = 0;
    for (let i = 0; i < id.length; i += 1) {
      for (const c of '0123456789abcdef-') {
        if (c === id[i]) continue;
        tried += 1;
        assert.equal(isGatewayTaskId(id.slice(0, i) + c + id.slice(i + 1)), false, `position ${i} → ${c}`);
      }
    }
    assert.ok(tried > 500);
    assert.equal(isGatewayTaskId(id.toUpperCase()), false);
    assert.equal(isGatewayTaskId(`${id}0`), false);
    assert.equal(isGatewayTaskId(id.slice(0, 35)), false);
  });

  it('plain random UUIDs and other strings fail it', () => {
    let passed = 0;
    for (let i = 0; i < 20_000; i += 1) if (isGatewayTaskId(randomUUID())) passed += 1;
    assert.equal(passed, 0); // 1 in 2^32 each
    for (const other of ['', 'never-seen-1', 'py-1', '00000000-0000-4000-8000-000000000000']) assert.equal(isGatewayTaskId(other), false, other);
  });
});
