/**
 * Celery's own `app.control` (Python 5.2.6) driving our CLI worker on Redis: `time_limit` (Celery's
 * reply; a task sent by a Python client then fails with TimeLimitExceeded), `rate_limit`, `enable_events`,
 * and `shutdown` (warm shutdown: the worker process exits 0).
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { after, before, describe, it } from 'node:test';
import { runCli, type CliProcess } from '../support/cli.ts';
import { celeryGate, PYTHON, runCeleryClient } from '../support/python.ts';
import { redisGate, redisUrl } from '../support/services.ts';

const CONTROL = fileURLToPath(new URL('../fixtures/python-events/control.py', import.meta.url));
const TASKS = fileURLToPath(new URL('../fixtures/tasks/control-tasks.ts', import.meta.url));
const REDIS = redisUrl(1);
const skip = (await celeryGate()) || (await redisGate(1));

async function control(...args: string[]): Promise<any> {
  const { stdout } = await promisify(execFile)(PYTHON, [CONTROL, ...args], { env: { PATH: process.env['PATH'] ?? '/usr/bin:/bin', CELERY_BROKER_URL: REDIS }, timeout: 20_000 });
  return JSON.parse(stdout.trim().split('\n').at(-1) as string).replies;
}

describe('Celery app.control against the Node CLI worker on Redis', { skip }, () => {
  const node = `h1-control.${process.pid}@test`;
  const queue = `h1-control-${process.pid}`;
  let worker: CliProcess;

  before(async () => {
    worker = runCli(['worker', '--tasks', TASKS, '-Q', queue, '-n', node, '-c', '2'], { CELERY_BROKER_URL: REDIS, CELERY_RESULT_BACKEND: REDIS, SHUTDOWN_TIMEOUT: '5' });
    await worker.waitFor(/ready\./);
  });
  after(async () => {
    await worker?.stop('SIGKILL');
  });

  it("time_limit: Celery's reply, then a Python client's task fails with TimeLimitExceeded at the new limit", async () => {
    assert.deepEqual(await control('time_limit', node, 'h1.hang', '1', '0.5'), [{ [node]: { ok: 'time limits set successfully' } }]);
    assert.deepEqual(await control('time_limit', node, 'h1.nope', '1', 'none'), [{ [node]: { error: 'unknown task' } }]);
    const t0 = Date.now();
    const res = await runCeleryClient(['send', 'h1.hang', '--queue', queue, '--timeout', '15'], { brokerUrl: REDIS, backendUrl: REDIS });
    assert.equal(res.json?.state, 'FAILURE', res.stdout + res.stderr);
    assert.equal(res.json.exception.type, 'TimeLimitExceeded');
    assert.ok(Date.now() - t0 < 10_000);
  });

  it('rate_limit and enable_events answer as a Python worker does', async () => {
    assert.deepEqual(await control('rate_limit', node, 'h1.add', '10/m'), [{ [node]: { ok: 'new rate limit set successfully' } }]);
    assert.deepEqual(await control('enable_events', node), [{ [node]: { ok: 'task events enabled' } }]);
    const res = await runCeleryClient(['send', 'h1.add', '2', '3', '--queue', queue, '--timeout', '15'], { brokerUrl: REDIS, backendUrl: REDIS });
    assert.equal(res.json?.result, 5);
  });

  it("without -Q the worker consumes the default queue and its tasks' declared queues", async () => {
    const suffix = String(process.pid);
    const other = runCli(['worker', '--tasks', TASKS, '-n', `h1-noq.${suffix}@test`, '-c', '1'], {
      CELERY_BROKER_URL: REDIS, CELERY_RESULT_BACKEND: REDIS, CELERY_DEFAULT_QUEUE: `h1-default-${suffix}`, H1_QUEUE_SUFFIX: suffix,
    });
    try {
      await other.waitFor(/ready\./);
      assert.match(other.output(), new RegExp(`\\.> h1-default-${suffix} `));
      assert.match(other.output(), new RegExp(`\\.> h1-declared-${suffix} `));
      const routed = await runCeleryClient(['send', 'h1.routed', '4', '--queue', `h1-declared-${suffix}`, '--timeout', '15'], { brokerUrl: REDIS, backendUrl: REDIS });
      assert.equal(routed.json?.result, 40, routed.stdout + routed.stderr);
      const plain = await runCeleryClient(['send', 'h1.add', '1', '2', '--queue', `h1-default-${suffix}`, '--timeout', '15'], { brokerUrl: REDIS, backendUrl: REDIS });
      assert.equal(plain.json?.result, 3);
    } finally {
      assert.equal(await other.stop(), 0, 'SIGTERM: exit 0');
    }
  });

  it('shutdown (broadcast to this node): warm shutdown, the process exits 0', async () => {
    const t0 = Date.now();
    assert.equal(await control('shutdown', node), null); // Celery's broadcast without reply returns None
    const code = await new Promise<number | null>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`still running:\n${worker.output().slice(-2000)}`)), 15_000);
      if (worker.child.exitCode !== null) { clearTimeout(timer); resolve(worker.child.exitCode); return; }
      worker.child.once('exit', (c) => { clearTimeout(timer); resolve(c); });
    });
    assert.equal(code, 0, worker.output().slice(-2000));
    assert.match(worker.output(), /Got shutdown from remote/);
    assert.ok(Date.now() - t0 < 15_000);
  });
});
