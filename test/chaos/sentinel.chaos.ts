/**
 * Redis Sentinel failover under load (issue #9): a private master (6400) + replica (6401) + three
 * sentinels (26400-26402, down-after 1 s); in-process gateways and a Node worker process on sentinel://
 * URLs; a stream of submissions; SIGKILL of the master.
 *
 * 1. REDIS_WAIT_REPLICAS=1: only 503s with our codes, and only between the kill and the recovery (which
 *    needs a replica again: the old master is restarted and the sentinels attach it); every 202's task
 *    is in Redis after the failover and completes with SUCCESS; no restart of the gateway or worker.
 * 2. WAIT off (the default), killing the new master: the gateway recovers as soon as the replica is
 *    promoted (no replica needed); a 202 can be lost, but only one accepted just before the kill (the
 *    replication lag); the count is printed.
 * 3. A Python Celery 5.2 client with the very same URL and transport options (master_name) sends a
 *    task to the Node worker after both failovers and reads its result through Sentinel.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { loadConfig } from '../../src/config.ts';
import { createBackend, createBroker, createSharedState } from '../../src/compose.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { runCli, type CliProcess } from '../support/cli.ts';
import { celeryGate } from '../support/python.ts';
import { sleep, startSentinelSetup, toolGate, until, type Proc, type SentinelSetup } from './h4-servers.ts';

const MASTER = 6400;
const REPLICA = 6401;
const SENTINELS = [26400, 26401, 26402];
const QUEUE = 'h4-sentinel';
const OUR_503 = new Set(['GW_ERR_BROKER_UNAVAILABLE', 'GW_ERR_BROKER_NOT_REPLICATED']);

const skip = await toolGate('redis-sentinel');
const pythonSkip = skip ? true : await celeryGate();

interface Attempt { i: number; at: number; status: number; code?: string; id?: string }

interface Run {
  attempts: Attempt[];
  accepted: Attempt[];
  failures: Attempt[];
  killedAt: number;
  promotedAt: number;
  recoveredAt: number;
}

/** A submission stream through `gw`; `disrupt` kills the master and returns when the promotion is seen. */
async function failoverUnderLoad(gw: TestGateway, base: number, disrupt: (attempts: Attempt[], killedAt: number) => Promise<number>): Promise<Run> {
  const attempts: Attempt[] = [];
  let stop = false;
  const submitter = (async () => {
    for (let i = 0; !stop; i += 1) {
      const at = Date.now();
      try {
        const res = await gw.post('/tasks/tasks.add', { args: [i, base], options: { queue: QUEUE } });
        attempts.push({ i, at, status: res.status, code: res.json?.code, id: res.json?.id });
      } catch (err) {
        attempts.push({ i, at, status: 0, code: (err as Error).message });
      }
      await sleep(15);
    }
  })();
  try {
    await until('200 accepted submissions before the kill', async () => attempts.filter((a) => a.status === 202).length >= 200, 20_000);
    const killedAt = Date.now();
    const promotedAt = await disrupt(attempts, killedAt);
    // recovered: 50 consecutive 202s after the kill
    await until('the gateway to accept again after the failover', async () => {
      const tail = attempts.slice(-50);
      return tail.length === 50 && tail[0]!.at > killedAt && tail.every((a) => a.status === 202);
    }, 40_000);
    stop = true;
    await submitter;
    const failures = attempts.filter((a) => a.status !== 202);
    const lastFailure = failures.at(-1);
    const recoveredAt = attempts.find((a) => a.at > (lastFailure?.at ?? killedAt) && a.status === 202)?.at ?? killedAt;
    return { attempts, accepted: attempts.filter((a) => a.status === 202), failures, killedAt, promotedAt, recoveredAt };
  } finally {
    stop = true;
    await submitter;
  }
}

/** The 503s: ours, none before the kill, none after the recovery. */
function assertOnlyGap(run: Run, codes: Set<string>): void {
  assert.ok(run.failures.length > 0, 'the kill was noticed (some submissions got a 503)');
  for (const f of run.failures) {
    assert.equal(f.status, 503, `only 503s (attempt ${f.i}: ${f.status} ${f.code})`);
    assert.ok(f.code && codes.has(f.code), `a 503 with our code, got ${f.code}`);
    assert.ok(f.at >= run.killedAt - 50, `no failure before the kill (attempt ${f.i})`);
  }
  assert.ok(run.attempts.filter((a) => a.at >= run.recoveredAt).every((a) => a.status === 202), 'no 503 after the recovery');
}

/** Accepted tasks whose SUCCESS is not on `port` after `timeoutMs`. */
async function withoutSuccess(port: number, accepted: Attempt[], base: number, timeoutMs: number, logs: () => string): Promise<Attempt[]> {
  const client = new Redis({ host: '127.0.0.1', port, lazyConnect: true, maxRetriesPerRequest: 1 });
  client.on('error', () => {});
  try {
    await client.connect();
    assert.match(await client.info('replication'), /role:master/, `the sentinels promoted ${port}\n${logs()}`);
    const keys = accepted.map((a) => `celery-task-meta-${a.id}`);
    let missing: Attempt[] = accepted;
    const deadline = Date.now() + timeoutMs;
    do {
      const metas = await client.mget(...keys);
      missing = [];
      for (const [k, a] of accepted.entries()) {
        const m = metas[k];
        const meta = m ? (JSON.parse(m) as { status: string; result: unknown }) : undefined;
        if (meta?.status !== 'SUCCESS') missing.push(a);
        else assert.equal(meta.result, a.i + base, `task ${a.i} ran with its own arguments`);
      }
      if (missing.length === 0) break;
      await sleep(250);
    } while (Date.now() < deadline);
    return missing;
  } finally {
    client.disconnect();
  }
}

describe('Redis Sentinel failover', { skip, timeout: 90_000 }, () => {
  let setup: SentinelSetup;
  let worker: CliProcess | undefined;
  const gateways: TestGateway[] = [];
  const closers: (() => unknown)[] = [];
  const env = (wait: boolean): Record<string, string> => ({
    CELERY_BROKER_URL: setup.url,
    CELERY_BROKER_TRANSPORT_OPTIONS: JSON.stringify({ master_name: setup.masterName }),
    ...(wait ? { REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '500' } : {}),
    AUTH: 'none',
    LOG_LEVEL: 'warn',
  });
  const gatewayOn = async (wait: boolean): Promise<TestGateway> => {
    const config = loadConfig(env(wait));
    // shared state (submitted ids, idempotency, rate limits) through Sentinel too, as `serve` does
    const shared = createSharedState(config, silentLogger);
    closers.push(() => shared.state.close(), () => shared.rateLimitRedis?.disconnect());
    const gw = await startGateway({
      broker: createBroker(config, silentLogger), backend: createBackend(config, silentLogger, 'h4-sentinel-gw'), env: env(wait),
      state: shared.state, ...(shared.rateLimitRedis ? { rateLimitRedis: shared.rateLimitRedis } : {}),
    });
    gateways.push(gw);
    return gw;
  };

  before(async () => {
    setup = await startSentinelSetup({ masterPort: MASTER, replicaPort: REPLICA, sentinelPorts: SENTINELS, masterName: 'h4m' });
    worker = runCli(['worker', '--tasks', 'examples/tasks.ts', '-Q', QUEUE, '-c', '8', '-n', 'h4-sentinel@test'], { ...env(false), CELERY_VISIBILITY_TIMEOUT: '5' });
    await worker.waitFor(/h4-sentinel@test ready\./, 30_000);
  });

  after(async () => {
    await worker?.stop('SIGKILL');
    for (const gw of gateways) await gw.close().catch(() => {});
    for (const close of closers) await Promise.resolve(close()).catch(() => {});
    await setup?.stop();
  });

  it('WAIT 1: kill -9 of the master, 503 only during the gap, every 202 completes after the failover', async () => {
    const gw = await gatewayOn(true);
    const run = await failoverUnderLoad(gw, 1000, async (attempts, killedAt) => {
      await setup.master.kill('SIGKILL');
      // The sentinels promote the replica. With WAIT 1 the new master has no replica yet, so submissions
      // get 503 GW_ERR_BROKER_NOT_REPLICATED until the old master comes back (as a process supervisor
      // would restart it) and the sentinels attach it as the new master's replica.
      const promotedAt = await until('the sentinels to promote the replica', async () => {
        const a = attempts.at(-1);
        return a && a.at > killedAt && a.code === 'GW_ERR_BROKER_NOT_REPLICATED' ? Date.now() : undefined;
      }, 30_000, 50);
      // as a supervisor would restart it, once the failover is complete (see sentinelsAgreeOn)
      await setup.sentinelsAgreeOn(REPLICA);
      setup.restartOldMaster();
      return promotedAt;
    });
    const count = (code: string): number => run.failures.filter((f) => f.code === code).length;
    console.log(`# sentinel failover, WAIT 1: ${run.attempts.length} submissions, ${run.accepted.length} accepted (202), ${run.failures.length} refused (503: ` +
      `${count('GW_ERR_BROKER_UNAVAILABLE')} no master, ${count('GW_ERR_BROKER_NOT_REPLICATED')} no replica); kill → promotion seen ${run.promotedAt - run.killedAt} ms, ` +
      `kill → first 202 after the last 503 ${run.recoveredAt - run.killedAt} ms`);
    assertOnlyGap(run, OUR_503);
    assert.ok(count('GW_ERR_BROKER_UNAVAILABLE') > 0, 'no master for a while: GW_ERR_BROKER_UNAVAILABLE');
    assert.ok(run.recoveredAt - run.killedAt < 40_000, `recovered within 40 s (${run.recoveredAt - run.killedAt} ms)`);

    const missing = await withoutSuccess(REPLICA, run.accepted, 1000, 30_000, setup.logs);
    assert.deepEqual(missing.map((a) => a.i), [], `accepted without SUCCESS: ${missing.length}\n${worker?.output().slice(-2000)}`);
    // GET /results through the gateway (its backend follows the master too)
    const sample = run.accepted.at(-1)!;
    const res = await gw.get(`/results/${sample.id}`);
    assert.equal(res.status, 200);
    assert.equal(res.json.state, 'SUCCESS');
    assert.equal(res.json.result, sample.i + 1000);
  });

  it('WAIT off: recovery at the promotion, a loss can only hit what was accepted just before the kill', async () => {
    const gw = await gatewayOn(false);
    // the master is now REPLICA's port and the restarted old master its replica
    await setup.sentinelsAgreeOn(REPLICA);
    const master: Proc = setup.replica;
    const run = await failoverUnderLoad(gw, 5000, async (_attempts, killedAt) => {
      await master.kill('SIGKILL');
      return until('the sentinels to promote the old master', async () => {
        const c = new Redis({ host: '127.0.0.1', port: MASTER, lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0 });
        c.on('error', () => {});
        try {
          await c.connect();
          return /role:master/.test(await c.info('replication')) ? Date.now() : undefined;
        } finally {
          c.disconnect();
        }
      }, 30_000, 100).then((t) => Math.max(t, killedAt));
    });
    console.log(`# sentinel failover, WAIT off: ${run.attempts.length} submissions, ${run.accepted.length} accepted (202), ${run.failures.length} refused (503); ` +
      `kill → promotion ${run.promotedAt - run.killedAt} ms, kill → first 202 after the last 503 ${run.recoveredAt - run.killedAt} ms`);
    assertOnlyGap(run, new Set(['GW_ERR_BROKER_UNAVAILABLE']));
    // no replica needed: accepting again within a few seconds of the promotion
    assert.ok(run.recoveredAt - run.promotedAt < 10_000, `recovered ${run.recoveredAt - run.promotedAt} ms after the promotion`);
    const missing = await withoutSuccess(MASTER, run.accepted, 5000, 30_000, setup.logs);
    console.log(`# sentinel failover, WAIT off: ${missing.length} accepted task(s) lost with the master`);
    for (const a of missing) {
      assert.ok(a.at <= run.killedAt && run.killedAt - a.at < 1000, `a lost 202 (task ${a.i}) was accepted within 1 s before the kill`);
    }
  });

  it('a Python Celery client with the same sentinel:// URL and master_name reaches the Node worker', { skip: pythonSkip }, async () => {
    const script = [
      'import json, sys',
      'from celery import Celery',
      'url, master = sys.argv[1], sys.argv[2]',
      'app = Celery("h4", broker=url, backend=url)',
      'app.conf.broker_transport_options = {"master_name": master}',
      'app.conf.result_backend_transport_options = {"master_name": master}',
      `r = app.send_task("tasks.add", args=[20, 22], queue="${QUEUE}")`,
      'print(json.dumps({"id": r.id, "result": r.get(timeout=20)}))',
    ].join('\n');
    const py = spawnSync('/usr/bin/python3', ['-c', script, setup.url, setup.masterName], { encoding: 'utf8', timeout: 40_000 });
    assert.equal(py.status, 0, `python exited ${py.status}: ${py.stderr.slice(-2000)}`);
    const out = JSON.parse(py.stdout.trim().split('\n').at(-1)!) as { id: string; result: number };
    assert.equal(out.result, 42);
    // and the gateway reads the same result through its own Sentinel connection
    const gw = gateways.at(-1)!;
    const res = await gw.get(`/results/${out.id}`);
    assert.equal(res.json.state, 'SUCCESS');
    assert.equal(res.json.result, 42);
  });
});
