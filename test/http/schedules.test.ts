/**
 * The schedules API on the memory store with a fixed clock: CRUD, next run times, and 400s with codes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { MemoryScheduleStore } from '../../src/beat/store.ts';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp, type AppDeps } from '../../src/http/app.ts';
import { schedulesRoutes } from '../../src/http/routes/schedules.ts';
import { silentLogger } from '../support/app.ts';

const NOW = new Date('2025-03-29T12:00:03Z');

describe('schedules API (memory store)', () => {
  let app: FastifyInstance;
  const store = new MemoryScheduleStore();

  const call = async (method: 'GET' | 'PUT' | 'DELETE', url: string, body?: unknown) => {
    const res = await app.inject({ method, url, ...(body !== undefined ? { payload: body as object } : {}) });
    return { status: res.statusCode, json: res.body ? (res.json() as any) : undefined };
  };
  const expectError = async (method: 'GET' | 'PUT' | 'DELETE', url: string, body: unknown, status: number, code: string, pattern?: RegExp) => {
    const res = await call(method, url, body);
    assert.equal(res.status, status, JSON.stringify(res.json));
    assert.equal(res.json.code, code);
    assert.equal(res.json.statusCode, status);
    if (pattern) assert.match(res.json.message, pattern);
  };

  before(async () => {
    const deps = { broker: new MemoryBroker(), backend: new MemoryBackend(), config: loadConfig({}), logger: silentLogger, now: () => NOW, schedules: store };
    app = await buildApp(deps as AppDeps);
    // until buildApp registers the routes itself (with deps.schedules), register them here
    if (!app.hasRoute({ method: 'GET', url: '/schedules' })) await app.register(schedulesRoutes, { store, now: () => NOW });
    await app.ready();
  });
  after(async () => { await app.close(); });

  it('PUT creates (201) then replaces (200); the answer lists the next runs', async () => {
    const created = await call('PUT', '/schedules/add-every-10s', { task: 'tasks.add', args: [2, 3], every: '10s', options: { queue: 'beat' } });
    assert.equal(created.status, 201, JSON.stringify(created.json));
    assert.equal(created.json.name, 'add-every-10s');
    assert.equal(created.json.source, 'api');
    assert.equal(created.json.enabled, true);
    assert.equal(created.json.total_run_count, 0);
    assert.equal(created.json.last_run_at, null);
    assert.deepEqual(created.json.next_runs, ['2025-03-29T12:00:10+00:00', '2025-03-29T12:00:20+00:00', '2025-03-29T12:00:30+00:00', '2025-03-29T12:00:40+00:00', '2025-03-29T12:00:50+00:00']);
    const replaced = await call('PUT', '/schedules/add-every-10s', { name: 'add-every-10s', task: 'tasks.add', args: [2, 3], every: 30 });
    assert.equal(replaced.status, 200);
    assert.equal(replaced.json.every, 30);
    assert.equal(replaced.json.next_run, '2025-03-29T12:00:30+00:00');
  });

  it('GET /schedules/:name gives `count` next runs, in the entry time zone across DST', async () => {
    assert.equal((await call('PUT', '/schedules/nightly', { task: 'tasks.report', cron: '30 2 * * *', timezone: 'Europe/Berlin', catch_up: 'skip' })).status, 201);
    const res = await call('GET', '/schedules/nightly?count=3');
    assert.equal(res.status, 200);
    assert.equal(res.json.catch_up, 'skip');
    // 02:30 CET, then 03:30 CEST (02:30 does not exist on 30 March), then 02:30 CEST
    assert.deepEqual(res.json.next_runs, ['2025-03-30T01:30:00+00:00', '2025-03-31T00:30:00+00:00', '2025-04-01T00:30:00+00:00']);
    const once = await call('PUT', '/schedules/once', { task: 'tasks.add', at: '2028-02-29T09:00:00', timezone: 'America/New_York' });
    assert.deepEqual(once.json.next_runs, ['2028-02-29T14:00:00+00:00']);
  });

  it('GET /schedules lists every entry with its next run', async () => {
    const res = await call('GET', '/schedules');
    assert.equal(res.status, 200);
    assert.deepEqual(res.json.schedules.map((s: any) => [s.name, s.next_run]), [
      ['add-every-10s', '2025-03-29T12:00:30+00:00'],
      ['nightly', '2025-03-30T01:30:00+00:00'],
      ['once', '2028-02-29T14:00:00+00:00'],
    ]);
    assert.equal(res.json.schedules[0].next_runs, undefined);
  });

  it('DELETE answers 204, then 404 with a code', async () => {
    assert.equal((await call('DELETE', '/schedules/once')).status, 204);
    await expectError('DELETE', '/schedules/once', undefined, 404, 'GW_ERR_SCHEDULE_NOT_FOUND', /no schedule entry named "once"/);
    await expectError('GET', '/schedules/once', undefined, 404, 'GW_ERR_SCHEDULE_NOT_FOUND');
  });

  it('bad entries are 400s with a GW_ERR_SCHEDULE_* code naming the entry; nothing is stored', async () => {
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', cron: '61 * * * *' }, 400, 'GW_ERR_SCHEDULE_BAD_CRON', /schedule entry "bad": cron "61 \* \* \* \*": minute 61 is out of range/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: -10 }, 400, 'GW_ERR_SCHEDULE_BAD_INTERVAL', /every -10 must be positive/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: '5 minutes' }, 400, 'GW_ERR_SCHEDULE_BAD_INTERVAL');
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', cron: '0 9 * * *', timezone: 'Europe/Nowhere' }, 400, 'GW_ERR_SCHEDULE_BAD_TIMEZONE', /unknown time zone "Europe\/Nowhere"/);
    await expectError('PUT', '/schedules/bad', { every: 10 }, 400, 'GW_ERR_SCHEDULE_INVALID', /schedule entry "bad": must have required property 'task'/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: 10, cron: '* * * * *' }, 400, 'GW_ERR_SCHEDULE_INVALID', /give exactly one/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add' }, 400, 'GW_ERR_SCHEDULE_INVALID', /needs one of every, cron or at/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: 10, colour: 'red' }, 400, 'GW_ERR_SCHEDULE_INVALID', /must NOT have additional properties: "colour"/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: 10, name: 'other' }, 400, 'GW_ERR_SCHEDULE_INVALID', /differs/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', at: 'next tuesday' }, 400, 'GW_ERR_SCHEDULE_INVALID', /not an ISO 8601/);
    await expectError('PUT', '/schedules/bad', { task: 'tasks.add', every: 10, options: { priority: 'high' } }, 400, 'GW_ERR_SCHEDULE_INVALID', /options.priority must be integer/);
    await expectError('PUT', '/schedules/bad%20name', { task: 'tasks.add', every: 10 }, 400, 'GW_ERR_SCHEDULE_INVALID', /schedule name must be/);
    await expectError('GET', '/schedules/nightly?count=0', undefined, 400, 'GW_ERR_VALIDATION');
    assert.equal((await call('GET', '/schedules/bad')).status, 404);
  });
});
