import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseRate, TokenBucket } from '../../src/worker/rate-limit.ts';
import { answer, type ControlTarget } from '../../src/worker/control.ts';

describe('parseRate (Celery rate strings)', () => {
  it('reads per second, minute and hour; a bare number is per second', () => {
    assert.equal(parseRate('10/s'), 10);
    assert.equal(parseRate('120/m'), 2);
    assert.equal(parseRate('3600/h'), 1);
    assert.equal(parseRate('5'), 5);
    assert.equal(parseRate(2.5), 2.5);
  });
  it('no limit for empty, null and 0', () => {
    for (const v of [null, undefined, '', '0', 0, '0/m']) assert.equal(parseRate(v), null, String(v));
  });
  it('throws on nonsense', () => {
    for (const v of ['fast', '10/d', '-1/s', '/s', -3]) assert.throws(() => parseRate(v), RangeError, String(v));
  });
});

describe('TokenBucket (capacity 1, as Celery)', () => {
  it('gives one token, then one per 1/rate seconds', () => {
    let t = 0;
    const bucket = new TokenBucket(10, 1, () => t);
    assert.equal(bucket.canConsume(), true);
    assert.equal(bucket.canConsume(), false);
    assert.ok(Math.abs(bucket.expectedTime() - 100) < 1e-6, String(bucket.expectedTime()));
    t = 50;
    assert.equal(bucket.canConsume(), false);
    assert.ok(Math.abs(bucket.expectedTime() - 50) < 1e-6);
    t = 100;
    assert.equal(bucket.canConsume(), true);
    t = 10_000; // a long pause does not bank more than the capacity
    assert.equal(bucket.canConsume(), true);
    assert.equal(bucket.canConsume(), false);
  });
  it('over 10 s at 5/s it allows 51 (the first at once, then one per 200 ms)', () => {
    let t = 0;
    const bucket = new TokenBucket(5, 1, () => t);
    let n = 0;
    for (t = 0; t <= 10_000; t += 10) if (bucket.canConsume()) n += 1;
    assert.equal(n, 51);
  });
});

describe('remote control: events, rate_limit, time_limit, shutdown replies', () => {
  const calls: unknown[] = [];
  let events = false;
  const target = {
    hostname: 'n@h',
    setTaskEvents: (on: boolean) => { const changed = events !== on; events = on; return changed; },
    rateLimit: (task: string, rate: string | number | null) => { calls.push(['rate', task, rate]); return { ok: 'new rate limit set successfully' }; },
    timeLimit: (task: string, hard: number | null, soft: number | null) => { calls.push(['time', task, hard, soft]); return { ok: 'time limits set successfully' }; },
    shutdown: (reason: string) => { calls.push(['shutdown', reason]); },
  } as unknown as ControlTarget;
  const req = (method: string, args: Record<string, unknown> = {}) => ({ method, arguments: args as any, destination: null, reply_to: null, ticket: null });

  it("answers as Celery's control commands do", () => {
    assert.deepEqual(answer(req('enable_events'), target), { ok: 'task events enabled' });
    assert.deepEqual(answer(req('enable_events'), target), { ok: 'task events already enabled' });
    assert.deepEqual(answer(req('disable_events'), target), { ok: 'task events disabled' });
    assert.deepEqual(answer(req('disable_events'), target), { ok: 'task events already disabled' });
    assert.deepEqual(answer(req('rate_limit', { task_name: 't.a', rate_limit: '5/m' }), target), { ok: 'new rate limit set successfully' });
    assert.deepEqual(answer(req('time_limit', { task_name: 't.a', hard: 10, soft: '5.5' }), target), { ok: 'time limits set successfully' });
    assert.equal(answer(req('shutdown'), target), undefined);
    assert.deepEqual(calls, [['rate', 't.a', '5/m'], ['time', 't.a', 10, 5.5], ['shutdown', 'Got shutdown from remote']]);
  });
});

describe('TaskRegistry: per-task options', () => {
  it('refuses an invalid rateLimit or queue; queues() lists the declared queues once', async () => {
    const { TaskRegistry } = await import('../../src/worker/registry.ts');
    assert.throws(() => new TaskRegistry().register('t.a', { handler: () => 1, rateLimit: '10/d' }), /t\.a: invalid rate limit/);
    assert.throws(() => new TaskRegistry().register('t.a', { handler: () => 1, queue: 'a b' }), /invalid queue/);
    const r = new TaskRegistry().registerAll({
      't.a': { handler: () => 1, queue: 'reports', rateLimit: '100/m' },
      't.b': { handler: () => 1, queue: 'reports', acksLate: false },
      't.c': { handler: () => 1, queue: 'billing' },
      't.d': () => 1,
    });
    assert.deepEqual(r.queues(), ['billing', 'reports']);
  });
});
