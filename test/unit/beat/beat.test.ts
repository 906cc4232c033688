/**
 * The beat loop on the memory store with a fake clock, driven pass by pass: each tick published once,
 * restarts neither repeat nor silently skip, catch-up policies, publish failures, file sync.
 */
import assert from 'node:assert/strict';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { beforeEach, describe, it } from 'node:test';
import { Beat, startBeat, type PublishedRun } from '../../../src/beat/beat.ts';
import { validateEntry } from '../../../src/beat/entry.ts';
import { syncFileEntries } from '../../../src/beat/file.ts';
import { MemoryScheduleStore } from '../../../src/beat/store.ts';
import { MemoryBackend } from '../../../src/backends/memory.ts';
import { MemoryBroker } from '../../../src/brokers/memory.ts';
import { GatewayError, isGatewayError } from '../../../src/errors.ts';
import { Producer } from '../../../src/producer.ts';
import { silentLogger } from '../../support/app.ts';
import { bodyOf, takeDeliveries } from '../../support/consume.ts';

const BASE = Date.parse('2025-05-01T12:00:00Z');

describe('beat (memory store, fake clock)', () => {
  let clock: number;
  let store: MemoryScheduleStore;
  let broker: MemoryBroker;
  let producer: Producer;
  let runs: PublishedRun[];
  const now = () => clock;
  const beat = (extra: Partial<ConstructorParameters<typeof Beat>[0]> = {}) =>
    new Beat({ producer, store, logger: silentLogger, now, onPublish: (r) => runs.push(r), ...extra });
  const put = (raw: object, name = 'add') => store.put(validateEntry(raw, { name }), clock);
  const ticks = () => runs.map((r) => (r.tick - BASE) / 1000);

  beforeEach(() => {
    clock = BASE;
    store = new MemoryScheduleStore();
    broker = new MemoryBroker();
    producer = new Producer({ broker, backend: new MemoryBackend(), defaultQueue: 'celery', logger: silentLogger, now: () => new Date(clock) });
    runs = [];
  });

  it('publishes an ordinary task message per tick, routed by the entry options, once', async () => {
    await put({ task: 'tasks.add', args: [2, 3], kwargs: { z: 1 }, every: '10s', options: { queue: 'beat-q' } });
    const b = beat();
    clock = BASE + 5_000; await b.runPass();
    assert.deepEqual(ticks(), []);
    clock = BASE + 10_050; await b.runPass();
    clock = BASE + 10_500; await b.runPass();
    assert.deepEqual(ticks(), [10]);
    clock = BASE + 31_000; await b.runPass(); // a late pass: 20 and 30 each run once
    assert.deepEqual(ticks(), [10, 20, 30]);
    const [d] = await takeDeliveries(broker, 'beat-q', 1);
    assert.equal(d!.message.headers['task'], 'tasks.add');
    assert.deepEqual(bodyOf(d!).slice(0, 2), [[2, 3], { z: 1 }]);
    assert.equal(await broker.queueLength('beat-q'), 2);
    const stored = await store.get('add');
    assert.equal(stored!.totalRunCount, 3);
    assert.equal(stored!.lastRunAt, BASE + 31_000);
  });

  it('a restarted beat neither repeats nor skips a tick', async () => {
    await put({ task: 't', every: 10 });
    const first = beat();
    clock = BASE + 10_001; await first.runPass();
    await first.close();
    const second = beat();
    clock = BASE + 10_002; await second.runPass();
    assert.deepEqual(ticks(), [10], 'not repeated');
    clock = BASE + 25_000; await second.runPass();
    assert.deepEqual(ticks(), [10, 20], 'the tick during the restart ran');
  });

  it('after a long outage: catch_up "once" runs once, "skip" runs nothing, then both go on', async () => {
    await put({ task: 't', every: '1m' }, 'once');
    await put({ task: 't', every: '1m', catch_up: 'skip' }, 'skipped');
    clock = BASE + 60 * 60_000 + 30_000; // an hour and a half minute later: 60 ticks missed
    await beat().runPass();
    assert.deepEqual(runs.map((r) => [r.name, (r.missedSince! - BASE) / 1000]), [['once', 60]]);
    clock = BASE + 61 * 60_000 + 500;
    await beat().runPass();
    assert.deepEqual(runs.map((r) => [r.name, (r.tick - BASE) / 60_000]).slice(1).sort(), [['once', 61], ['skipped', 61]]);
  });

  it('the beat-wide catch-up default applies to entries without their own', async () => {
    await put({ task: 't', cron: '0 * * * *' });
    clock = BASE + 3 * 3_600_000 + 600_000;
    await beat({ catchUp: 'skip' }).runPass();
    assert.deepEqual(runs, []);
    assert.equal((await store.get('add'))!.cursor, clock, 'the missed ticks are dealt with');
  });

  it('a publish failure gives the tick back; the next pass publishes it', async () => {
    await put({ task: 't', every: 10 });
    let failures = 1;
    const flaky = { send: async (req: Parameters<Producer['send']>[0]) => {
      if (failures-- > 0) throw new GatewayError('GW_ERR_BROKER_UNAVAILABLE', 'down');
      return producer.send(req);
    } };
    const b = beat({ producer: flaky });
    clock = BASE + 10_100;
    assert.equal(await b.runPass(), b.tickMs, 'waits a tick after a failure');
    assert.deepEqual(ticks(), []);
    assert.equal((await store.get('add'))!.cursor, BASE);
    clock = BASE + 11_000; await b.runPass();
    assert.deepEqual(ticks(), [10]);
  });

  it('a run the broker refuses as invalid is dropped, not retried forever', async () => {
    await put({ task: 't', every: 10, options: { expires: '2025-05-01T12:00:15Z' } });
    const b = beat();
    clock = BASE + 10_100; await b.runPass();
    clock = BASE + 20_100; await b.runPass(); // expires is now in the past: GW_ERR_BAD_OPTION
    clock = BASE + 30_100; await b.runPass();
    assert.deepEqual(ticks(), [10]);
    assert.equal((await store.get('add'))!.cursor, BASE + 30_000);
  });

  it('two beats on one cursor: a tick claimed by one is not published by the other', async () => {
    await put({ task: 't', every: 10 });
    clock = BASE + 10_100;
    await Promise.all([beat({ id: 'a' }).runPass(), beat({ id: 'b' }).runPass()]);
    assert.deepEqual(ticks(), [10]);
  });

  it('disabled entries do not run; enabling again starts from now (no catch-up)', async () => {
    await put({ task: 't', every: 10, enabled: false });
    clock = BASE + 50_500; await beat().runPass();
    assert.deepEqual(ticks(), []);
    await put({ task: 't', every: 10 });
    await beat().runPass();
    assert.deepEqual(ticks(), []);
    clock = BASE + 60_100; await beat().runPass();
    assert.deepEqual(ticks(), [60]);
  });

  it('a one-off runs once and stays listed', async () => {
    await put({ task: 't', at: new Date(BASE + 2000).toISOString() });
    clock = BASE + 2_500; await beat().runPass();
    clock = BASE + 9_500; await beat().runPass();
    assert.deepEqual(ticks(), [2]);
    assert.equal((await store.list()).length, 1);
  });

  it('an entry deleted while due is not published', async () => {
    await put({ task: 't', every: 10 });
    clock = BASE + 10_100;
    const b = beat({ producer: { send: async () => { throw new Error('must not publish'); } } });
    await store.delete('add');
    await b.runPass();
    assert.deepEqual(ticks(), []);
  });

  it('file sync: upserts keep run state, file entries gone from the file are removed, API entries stay', async () => {
    await put({ task: 'api.task', every: 10 }, 'from-api');
    await syncFileEntries(store, [validateEntry({ task: 't', every: 10 }, { name: 'a', source: 'file' }), validateEntry({ task: 't', every: 10 }, { name: 'b', source: 'file' })], clock);
    clock = BASE + 10_100; await beat().runPass();
    await syncFileEntries(store, [validateEntry({ task: 't2', every: 10 }, { name: 'a', source: 'file' })], clock);
    assert.deepEqual((await store.list()).map((s) => [s.entry.name, s.entry.task, s.cursor - BASE]), [['a', 't2', 10_000], ['from-api', 'api.task', 10_000]]);
  });

  it('startBeat loads a schedule file; a bad entry is a start-up error naming file and entry', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'beat-'));
    const good = join(dir, 'good.json');
    await writeFile(good, JSON.stringify({ 'add-every-10s': { task: 'tasks.add', args: [2, 3], every: '10s' } }));
    const started = await startBeat({ producer, store, logger: silentLogger, now, scheduleFile: good, tickMs: 50 });
    await started.close();
    assert.deepEqual((await store.list()).map((s) => [s.entry.name, s.entry.source]), [['add-every-10s', 'file']]);

    const bad = join(dir, 'bad.json');
    await writeFile(bad, JSON.stringify({ fine: { task: 't', every: 5 }, broken: { task: 't', every: -1 } }));
    await assert.rejects(startBeat({ producer, store, logger: silentLogger, scheduleFile: bad }), (err: unknown) => {
      assert.ok(isGatewayError(err));
      assert.equal(err.code, 'GW_ERR_SCHEDULE_BAD_INTERVAL');
      assert.match(err.message, /bad\.json: schedule entry "broken": every -1 must be positive/);
      return true;
    });
    await assert.rejects(startBeat({ producer, store, logger: silentLogger, scheduleFile: join(dir, 'missing.json') }), /cannot load schedule file/);

    const mod = join(dir, 'schedule.mjs');
    await writeFile(mod, 'export default [{ name: "from-module", task: "tasks.add", cron: "*/5 * * * *" }];\n');
    await (await startBeat({ producer, store, logger: silentLogger, now, scheduleFile: mod })).close();
    assert.deepEqual((await store.list()).map((s) => s.entry.name), ['from-module'], 'a JS module works, and replaces the previous file entries');

    const ts = join(dir, 'schedule.ts');
    await writeFile(ts, 'const every: number = 30;\nexport const schedule: Record<string, object> = { "from-ts": { task: "tasks.add", every } };\n');
    await (await startBeat({ producer, store, logger: silentLogger, now, scheduleFile: ts })).close();
    assert.deepEqual((await store.list()).map((s) => [s.entry.name, s.entry.every]), [['from-ts', 30]], 'a TypeScript module (its `schedule` export) works too');
  });

  it('loads the example schedule (examples/schedule.json)', async () => {
    const file = new URL('../../../examples/schedule.json', import.meta.url).pathname;
    const b = await startBeat({ producer, store, logger: silentLogger, now, scheduleFile: file });
    await b.close();
    assert.ok((await store.list()).some((s) => s.entry.task === 'tasks.add' && s.entry.every !== undefined));
  });
});
