/**
 * Two real `celery-gateway beat` processes on Redis (db 7) with one schedule file: each 1 s tick is
 * published by exactly one of them (their logs and the queue length agree), and `kill -9` of the leader
 * hands over to the other within the lock TTL (BEAT_LOCK_TTL) without a duplicate or a gap.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { runCli, type CliProcess } from '../support/cli.ts';
import { redisGate, redisUrl } from '../support/services.ts';
import { assertConsecutive, sleep } from '../support/beat.ts';

const URL = redisUrl(7);
const skip = await redisGate(7);
const tag = `${process.pid}-${Date.now().toString(36)}`;
const QUEUE = `beat-procs-${tag}`;
const ENTRY = `procs-${tag}`;

/** the ticks (epoch s) a beat process logged as sent for our entry */
function sentTicks(proc: CliProcess): number[] {
  const ticks: number[] = [];
  for (const line of proc.output().split('\n')) {
    if (!line.startsWith('{')) continue;
    const log = JSON.parse(line) as { msg?: string; entry?: string; tick?: string };
    if (log.entry === ENTRY && log.msg?.startsWith('Scheduler: Sending due task')) ticks.push(Date.parse(log.tick ?? '') / 1000);
  }
  return ticks;
}

describe('two beat processes on Redis', { skip }, () => {
  const redis = new Redis(URL, { lazyConnect: true });
  const procs: CliProcess[] = [];
  let dir = '';

  after(async () => {
    await Promise.all(procs.map((p) => p.stop('SIGKILL')));
    await redis.hdel('celery-gateway-beat-entries', ENTRY).catch(() => {});
    await redis.hdel('celery-gateway-beat-cursor', ENTRY).catch(() => {});
    await redis.hdel('celery-gateway-beat-runs', ENTRY).catch(() => {});
    await redis.hdel('celery-gateway-beat-last-run', ENTRY).catch(() => {});
    await redis.del(QUEUE).catch(() => {});
    redis.disconnect();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  it('publish each tick once; kill -9 of the leader hands over within BEAT_LOCK_TTL', async () => {
    await redis.connect();
    // the lock is shared by every beat on this Redis: make sure no other test's beat holds it
    assert.equal(await redis.exists('celery-gateway-beat-leader'), 0, 'another beat holds the lock on db 7');
    dir = await mkdtemp(join(tmpdir(), 'beat-procs-'));
    const file = join(dir, 'schedule.json');
    await writeFile(file, JSON.stringify({ [ENTRY]: { task: 'tasks.add', args: [1, 1], every: 1, options: { queue: QUEUE } } }));
    const env = { CELERY_BROKER_URL: URL, BEAT_LOCK_TTL: '2', BEAT_TICK: '0.2' };
    const first = runCli(['beat', '--schedule', file], env);
    procs.push(first);
    await first.waitFor(/Sending due task/);
    const second = runCli(['beat', '--schedule', file], env);
    procs.push(second);
    await second.waitFor(/celery-gateway beat:/);
    await sleep(2500);
    assert.deepEqual(sentTicks(second), [], 'the second beat stands by while the first leads');
    const beforeKill = sentTicks(first);
    assert.ok(beforeKill.length >= 3, `leader sent ${beforeKill.length} ticks`);

    assert.equal(await first.stop('SIGKILL'), null, 'killed');
    const killedAt = Date.now();
    await second.waitFor(/Sending due task/, 6000);
    const handoverMs = Date.now() - killedAt;
    assert.ok(handoverMs <= 2000 + 1200, `the standby took over after ${handoverMs} ms (lock TTL 2 s)`);
    while (sentTicks(second).length < 3) await sleep(100);
    assert.equal(await second.stop('SIGTERM'), 0);

    const ticks = [...sentTicks(first), ...sentTicks(second)];
    assertConsecutive(ticks);
    assert.equal(await redis.llen(QUEUE), ticks.length, 'messages on the queue = ticks logged as sent');
  });
});
