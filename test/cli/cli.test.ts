import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { runCli } from '../support/cli.ts';
import { redisGate } from '../support/python.ts';

const json = async (res: Response) => (await res.json()) as any;

describe('celery-gateway CLI', () => {
  it('dev (what npm start runs): curl multiply 4 5 gives 20, SIGTERM exits 0', async () => {
    const cli = runCli(['dev', '--port', '0']);
    try {
      const [, port] = await cli.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      assert.match(cli.output(), /\[tasks\][\s\S]*tasks\.multiply/, 'banner lists the tasks');
      assert.match(cli.output(), /transport:\s+memory:\/\//);
      const sent = await json(await fetch(`http://127.0.0.1:${port}/tasks/tasks.multiply`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"args":[4,5]}' }));
      const result = await json(await fetch(`http://127.0.0.1:${port}/results/${sent.id}?wait=5`));
      assert.equal(result.state, 'SUCCESS');
      assert.equal(result.result, 20);
      await cli.waitFor(/Task tasks\.multiply\[[^\]]+\] succeeded in/);
      // beat runs in dev too: the example schedule sends tasks.add every 10 s, and the worker runs it
      await cli.waitFor(/Scheduler: Sending due task add-every-10s \(tasks\.add\)/, 15_000);
      await cli.waitFor(/Task tasks\.add\[[^\]]+\] succeeded in/, 5_000);
      const schedules = await json(await fetch(`http://127.0.0.1:${port}/schedules`));
      assert.ok(JSON.stringify(schedules).includes('add-every-10s'));
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });

  it('a bad setting stops start-up with exit 2 and names it', async () => {
    const cli = runCli(['serve'], { PORT: 'eighty' });
    assert.equal(await new Promise((resolve) => cli.child.once('exit', resolve)), 2);
    assert.match(cli.output(), /PORT="eighty" is invalid/);
  });

  it('an unknown broker scheme is a clear start-up error', async () => {
    const cli = runCli(['serve'], { CELERY_BROKER_URL: 'kafka://x:1' });
    assert.equal(await new Promise((resolve) => cli.child.once('exit', resolve)), 2);
    assert.match(cli.output(), /unsupported scheme/);
  });

  it('beat with an invalid schedule file exits 2 and names the entry', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const file = join(await mkdtemp(join(tmpdir(), 'cgw-')), 'bad.json');
    await writeFile(file, JSON.stringify({ nightly: { task: 'tasks.add', cron: '0 25 * * *' } }));
    const cli = runCli(['beat', '--schedule', file]);
    assert.equal(await new Promise((resolve) => cli.child.once('exit', resolve)), 2);
    assert.match(cli.output(), /nightly/);
    assert.match(cli.output(), /hour 25/);
  });

  it('worker --help describes the worker', async () => {
    const cli = runCli(['worker', '--help']);
    assert.equal(await new Promise((resolve) => cli.child.once('exit', resolve)), 0);
    assert.match(cli.output(), /^celery-gateway worker --tasks FILE/);
    assert.doesNotMatch(cli.output(), /CELERY_RESULT_BACKEND/);
  });

  it('--help lists the commands and the environment', async () => {
    const cli = runCli(['--help']);
    assert.equal(await new Promise((resolve) => cli.child.once('exit', resolve)), 0);
    for (const word of ['serve', 'worker', 'dev', 'beat', 'hash-key', 'CELERY_BROKER_URL', 'CELERY_RESULT_BACKEND', 'PORT']) assert.ok(cli.output().includes(word), word);
  });
});

const REDIS_URL = 'redis://:@127.0.0.1:6379/8';
describe('serve + worker as separate processes on Redis (the README commands)', { skip: await redisGate('redis://127.0.0.1:6379/8') }, () => {
  it('a task submitted to one process is run by the other; SIGTERM exits 0 for both', async () => {
    const queue = `cli-${process.pid}`;
    const env = { CELERY_BROKER_URL: REDIS_URL, CELERY_DEFAULT_QUEUE: queue };
    const gateway = runCli(['serve', '--port', '0'], { ...env, AUTH: 'none' });
    const worker = runCli(['worker', '--tasks', './examples/tasks.ts', '-Q', queue, '-c', '4', '-n', 'cli-test@host'], env);
    try {
      const [, port] = await gateway.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      await worker.waitFor(/cli-test@host ready\./);
      assert.match(worker.output(), /transport:\s+redis:\/\/:\*\*@127\.0\.0\.1:6379\/8/, 'password hidden in the banner');
      const sent = await json(await fetch(`http://127.0.0.1:${port}/tasks/tasks.add`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{"args":[40,2]}' }));
      const result = await json(await fetch(`http://127.0.0.1:${port}/results/${sent.id}?wait=10`));
      assert.equal(result.result, 42);
      const ready = await json(await fetch(`http://127.0.0.1:${port}/readyz`));
      assert.equal(ready.status, 'ready');
    } finally {
      assert.equal(await worker.stop(), 0);
      assert.equal(await gateway.stop(), 0);
    }
  });
});

describe('beat routes by CELERY_TASK_ROUTES and the task registry, like the gateway', { skip: await redisGate('redis://127.0.0.1:6379/8') }, () => {
  it('a schedule entry without a queue goes to its registry queue; one matching a route to the routed queue', async () => {
    const { writeFile, mkdtemp } = await import('node:fs/promises');
    const { join } = await import('node:path');
    const { tmpdir } = await import('node:os');
    const { Redis } = await import('ioredis');
    const dir = await mkdtemp(join(tmpdir(), 'cgw-beat-routes-'));
    const q = (what: string) => `cli-beat-${what}-${process.pid}`;
    await writeFile(join(dir, 'schedule.json'), JSON.stringify({
      add: { task: 'tasks.add', args: [1, 2], every: '1s' },
      report: { task: 'reports.daily', every: '1s' },
      plain: { task: 'tasks.other', every: '1s' },
    }));
    await writeFile(join(dir, 'registry.json'), JSON.stringify({ 'tasks.add': { queue: q('registry') } }));
    const redis = new Redis('redis://127.0.0.1:6379/8');
    const beat = runCli(['beat', '--schedule', join(dir, 'schedule.json')], {
      CELERY_BROKER_URL: REDIS_URL, CELERY_DEFAULT_QUEUE: q('default'),
      TASK_REGISTRY_FILE: join(dir, 'registry.json'), CELERY_TASK_ROUTES: JSON.stringify({ 'reports.*': { queue: q('routed') } }),
    });
    try {
      await beat.waitFor(/Scheduler: Sending due task plain/, 10_000);
      await beat.waitFor(/Scheduler: Sending due task add/, 10_000);
      await beat.waitFor(/Scheduler: Sending due task report/, 10_000);
      const taskIn = async (queue: string) => {
        const raw = await redis.lindex(queue, 0);
        return raw ? (JSON.parse(raw) as { headers: { task: string } }).headers.task : undefined;
      };
      assert.equal(await taskIn(q('registry')), 'tasks.add');
      assert.equal(await taskIn(q('routed')), 'reports.daily');
      assert.equal(await taskIn(q('default')), 'tasks.other');
    } finally {
      assert.equal(await beat.stop(), 0);
      await redis.del(q('registry'), q('routed'), q('default'));
      redis.disconnect();
    }
  });
});
