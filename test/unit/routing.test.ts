import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { applyRoutes, parseTaskRoutes } from '../../src/routing.ts';

describe('task routes (Celery task_routes)', () => {
  const routes = parseTaskRoutes(JSON.stringify({
    'reports.*': { queue: 'reports', priority: 3 },
    'billing.charge': { exchange: 'billing', routing_key: 'charge' },
    '*': { queue: 'default-q' },
  }));

  it('the first matching glob gives the defaults', () => {
    assert.deepEqual(applyRoutes(routes, 'reports.daily', {}), { queue: 'reports', priority: 3 });
    assert.deepEqual(applyRoutes(routes, 'billing.charge', { countdown: 5 }), { exchange: 'billing', routing_key: 'charge', countdown: 5 });
    assert.deepEqual(applyRoutes(routes, 'other.task', {}), { queue: 'default-q' });
  });

  it("a submission's own queue or exchange keeps its whole routing; other options merge", () => {
    assert.deepEqual(applyRoutes(routes, 'reports.daily', { queue: 'urgent' }), { queue: 'urgent' });
    assert.deepEqual(applyRoutes(routes, 'reports.daily', { priority: 9 }), { queue: 'reports', priority: 9 });
  });

  it('globs match whole names, dots literally', () => {
    const r = parseTaskRoutes('{"a.b": {"queue": "x"}}');
    assert.deepEqual(applyRoutes(r, 'aXb', {}), {});
    assert.deepEqual(applyRoutes(r, 'a.b.c', {}), {});
  });

  it('refuses bad tables with a start-up error', () => {
    assert.throws(() => parseTaskRoutes('[]'), /expected an object/);
    assert.throws(() => parseTaskRoutes('{"a": {"queues": "x"}}'), /unknown option queues/);
    assert.throws(() => parseTaskRoutes('{"a": {"priority": 300}}'), /priority/);
    assert.throws(() => parseTaskRoutes('{"a": {"queue": "has space"}}'), /queue/);
    assert.deepEqual(parseTaskRoutes(''), []);
  });
});
