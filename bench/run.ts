/**
 * `npm run bench`: measures, in one run on this machine, each figure beside its comparison, and writes
 * bench/RESULTS.md. Needs Redis (db 14 is flushed), wrk, and /usr/bin/python3 with Celery for the
 * Celery comparison. Not part of `npm test`.
 *
 *   submit   POST /tasks/:name (64 connections, 10 s, wrk) vs a bare Fastify route doing one LPUSH (Redis)
 *            or one confirmed publish (RabbitMQ)
 *   worker   no-op tasks with results stored on Redis, 20,000 tasks, Redis and RabbitMQ brokers: our Node
 *            worker vs Celery 5.2.6 prefork -c 2, and (Redis) vs a BullMQ worker, concurrency 50
 *   latency  submit + long-poll, 1,000 sequential round trips (after 2,000 warm-up) through gateway + Node worker, vs Celery's
 *            own client round trip (`add.delay().get()`) against a Celery worker
 *   memory   gateway RSS under the submit load; Node worker RSS across 200,000 tasks
 * Arguments pick parts: `npm run bench -- submit amqp`, `npm run bench -- latency`.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { readFile, writeFile } from 'node:fs/promises';
import { cpus } from 'node:os';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Queue } from 'bullmq';
import { Redis } from 'ioredis';
import { amqplib } from '../src/brokers/amqp-support.ts';
import { AmqpBroker } from '../src/brokers/amqp.ts';
import { encodeEnvelope } from '../src/protocol/kombu-envelope.ts';
import type { RawMessage } from '../src/protocol/types.ts';
import { buildTaskMessage } from '../src/protocol/message.ts';
import { resultsDone } from './results-done.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const REDIS_URL = process.env['BENCH_REDIS_URL'] ?? 'redis://127.0.0.1:6379/14';
const AMQP_URL = process.env['BENCH_AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//';
const INTEROP = process.env['INTEROP_DIR'] ?? fileURLToPath(new URL('../../shared/interop/python', import.meta.url));
const REPEATS = Number(process.env['BENCH_REPEATS'] ?? 3);
/**
 * Gateway/ceiling pairs of the submit figure. The ceiling alone read 14.7k to 28k req/s between 10 s
 * runs minutes apart on this machine; the two runs of a pair are adjacent in time, so the median of the
 * pairs' ratios is steadier than the ratio of two medians taken at different moments.
 */
const SUBMIT_PAIRS = Number(process.env['BENCH_SUBMIT_PAIRS'] ?? 5);
const TASKS = Number(process.env['BENCH_TASKS'] ?? 20_000);
const SECONDS = Number(process.env['BENCH_SECONDS'] ?? 10);
/**
 * Round trips before the 1,000 measured ones, for both clients. A Node process's first ~2,000
 * tasks promote its JIT's and caches' start-up allocations (1.5-2.3 MB per scavenge, 5-8 ms pauses,
 * then ~0.1 MB and 1-2 ms once warm); 100 trips measured that start-up, not the steady state.
 */
const LATENCY_WARMUP = Number(process.env['BENCH_LATENCY_WARMUP'] ?? 2000);
const run = promisify(execFile);
const redis = new Redis(REDIS_URL);

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)] ?? NaN;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function start(cmd: string, args: string[], env: Record<string, string>, ready: RegExp, cwd = ROOT): Promise<ChildProcess> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd, env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    const onData = (chunk: Buffer) => {
      out += chunk.toString();
      if (ready.test(out)) resolve(child);
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', onData);
    child.once('exit', (code) => reject(new Error(`${cmd} exited with ${code}:\n${out.slice(-2000)}`)));
    setTimeout(() => reject(new Error(`${cmd} not ready after 30 s:\n${out.slice(-2000)}`)), 30_000).unref();
  });
}

async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null) return;
  child.removeAllListeners('exit');
  const exited = new Promise((r) => child.once('exit', r));
  child.kill('SIGTERM');
  await Promise.race([exited, sleep(15_000).then(() => child.kill('SIGKILL'))]);
}

/** Resident set size of a process, MiB (Linux /proc). */
async function rssMiB(pid: number | undefined): Promise<number> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1]) / 1024;
}

interface WrkResult { rps: number; p50: string; p99: string }

async function wrk(url: string, seconds = SECONDS): Promise<WrkResult> {
  const { stdout } = await run('wrk', ['-t2', '-c64', `-d${seconds}s`, '--latency', '-s', 'bench/post.lua', url], { cwd: ROOT });
  const rps = Number(/Requests\/sec:\s+([\d.]+)/.exec(stdout)?.[1]);
  const p50 = /\s50%\s+(\S+)/.exec(stdout)?.[1] ?? '?';
  const p99 = /\s99%\s+(\S+)/.exec(stdout)?.[1] ?? '?';
  const non2xx = /Non-2xx or 3xx responses: (\d+)/.exec(stdout)?.[1];
  if (non2xx) throw new Error(`wrk saw ${non2xx} non-2xx answers:\n${stdout}`);
  return { rps, p50, p99 };
}

interface BrokerCase {
  name: 'Redis' | 'RabbitMQ';
  url: string;
  ceiling: 'redis' | 'amqp';
  ceilingLabel: string;
}

const BROKERS: BrokerCase[] = [
  { name: 'Redis', url: REDIS_URL, ceiling: 'redis', ceilingLabel: 'bare Fastify + one LPUSH' },
  { name: 'RabbitMQ', url: AMQP_URL, ceiling: 'amqp', ceilingLabel: 'bare Fastify + one confirmed publish' },
];

async function submitBench(b: BrokerCase): Promise<string[]> {
  const queue = `bench-gw-${randomUUID().slice(0, 8)}`;
  const gatewayEnv = { AUTH: 'none', CELERY_BROKER_URL: b.url, CELERY_RESULT_BACKEND: REDIS_URL, PORT: '18080', LOG_LEVEL: 'warn', CELERY_DEFAULT_QUEUE: queue };
  const gateway = await start('node', ['bin/celery-gateway.js', 'serve'], gatewayEnv, /listening on http/);
  const ceiling = await start('node', ['--import', 'tsx', 'bench/ceiling-server.ts'], { REDIS_URL, AMQP_URL, CEILING: b.ceiling, PORT: '18081', QUEUE: `${queue}-ceiling` }, /ceiling ready/);
  const ours: number[] = [];
  const bare: number[] = [];
  let lat = { ours: ['?', '?'], bare: ['?', '?'] };
  const rssIdle = await sleep(500).then(() => rssMiB(gateway.pid));
  let rssPeak = 0;
  try {
    // both servers warm up (JIT, connection pools) before anything is measured: a cold first run read
    // 20-40% lower than the next ones
    await wrk('http://127.0.0.1:18080/tasks/tasks.add', 3);
    await wrk('http://127.0.0.1:18081/tasks/tasks.add', 3);
    await purge(b, [queue, `${queue}-ceiling`]);
    /** one wrk run on a port (18080 the gateway, whose RSS is sampled meanwhile), then empty queues */
    const measure = async (port: number): Promise<WrkResult> => {
      const sampler = port === 18080 ? setInterval(() => { void rssMiB(gateway.pid).then((m) => { rssPeak = Math.max(rssPeak, m); }, () => undefined); }, 500) : undefined;
      try {
        return await wrk(`http://127.0.0.1:${port}/tasks/tasks.add`);
      } finally {
        clearInterval(sampler);
        await purge(b, [queue, `${queue}-ceiling`]);
      }
    };
    for (let i = 0; i < SUBMIT_PAIRS; i += 1) {
      // the order alternates, so neither side always runs on the machine the other one just heated
      let a: WrkResult;
      let c: WrkResult;
      if (i % 2 === 0) { a = await measure(18080); c = await measure(18081); } else { c = await measure(18081); a = await measure(18080); }
      ours.push(a.rps);
      bare.push(c.rps);
      lat = { ours: [a.p50, a.p99], bare: [c.p50, c.p99] };
      process.stdout.write(`submit ${b.name} pair ${i + 1}: gateway ${a.rps.toFixed(0)} req/s, ${b.ceilingLabel} ${c.rps.toFixed(0)} req/s, ${((a.rps / c.rps) * 100).toFixed(0)}%\n`);
    }
  } finally {
    await stop(gateway);
    await stop(ceiling);
    await purge(b, [queue, `${queue}-ceiling`], true);
  }
  const ratios = ours.map((rps, i) => (rps / bare[i]!) * 100);
  const ratio = median(ratios);
  submitPairs.push(`- ${b.name}: ${ours.map((rps, i) => `${rps.toFixed(0)} / ${bare[i]!.toFixed(0)} = ${ratios[i]!.toFixed(0)}%`).join('; ')}`);
  memoryRows.push(`| memory: gateway RSS, submit load on ${b.name} | **${rssPeak.toFixed(0)} MiB** peak under load | ${rssIdle.toFixed(0)} MiB idle, before the load | |`);
  return [
    `| submit: POST /tasks/:name, ${b.name} (64 conns, ${SECONDS} s) | **${median(ours).toFixed(0)} req/s** (p50 ${lat.ours[0]}, p99 ${lat.ours[1]}) | ${b.ceilingLabel}: ${median(bare).toFixed(0)} req/s (p50 ${lat.bare[0]}, p99 ${lat.bare[1]}) | ${ratio.toFixed(0)}% of the ceiling (median of ${SUBMIT_PAIRS} paired runs) |`,
  ];
}

/** Empty the benchmark's queues (and the Redis db); with `remove`, delete the AMQP queues. */
async function purge(b: BrokerCase, queues: string[], remove = false): Promise<void> {
  await redis.flushdb();
  if (b.ceiling !== 'amqp') return;
  const conn = await amqplib.connect(AMQP_URL);
  const ch = await conn.createChannel();
  for (const q of queues) {
    await ch.checkQueue(q).then(() => (remove ? ch.deleteQueue(q) : ch.purgeQueue(q)), () => undefined).catch(() => undefined);
  }
  await conn.close().catch(() => undefined);
}

/** Publish `n` tasks.add messages to `queue` (Redis: pipelined LPUSH; RabbitMQ: confirmed, 500 in flight). */
async function fill(b: BrokerCase, queue: string, n: number): Promise<string[]> {
  const ids: string[] = [];
  const replyTo = randomUUID();
  const broker = b.ceiling === 'amqp' ? new AmqpBroker({ url: AMQP_URL }) : undefined;
  for (let off = 0; off < n; off += 500) {
    const batch: RawMessage[] = [];
    for (let i = off; i < Math.min(n, off + 500); i += 1) {
      const id = randomUUID();
      ids.push(id);
      batch.push(buildTaskMessage({ task: 'tasks.add', id, args: [i, 1], kwargs: {}, origin: 'bench', replyTo }, new Date()));
    }
    if (broker) await Promise.all(batch.map((m) => broker.publish(m, { queue })));
    else await redis.lpush(queue, ...batch.map((m) => encodeEnvelope(m, { exchange: '', routingKey: queue }, randomUUID())));
  }
  await broker?.close();
  return ids;
}

/** Seconds until every id has a SUCCESS meta. */
async function drain(ids: string[], started: number): Promise<number> {
  await resultsDone(redis, ids);
  const last = await redis.get(`celery-task-meta-${ids.at(-1)}`);
  if (!last?.includes('SUCCESS')) throw new Error(`unexpected meta ${last}`);
  return (performance.now() - started) / 1000;
}

async function workerRun(b: BrokerCase, kind: 'node' | 'celery'): Promise<number> {
  const queue = `bench-${kind}-${randomUUID().slice(0, 8)}`;
  const child = kind === 'node'
    ? await start('node', ['bin/celery-gateway.js', 'worker', '--tasks', 'bench/noop-tasks.ts', '-Q', queue, '-c', '50'],
      { CELERY_BROKER_URL: b.url, CELERY_RESULT_BACKEND: REDIS_URL, LOG_LEVEL: 'warn' }, /ready\./)
    : await start('/usr/bin/python3', ['-m', 'celery', '-A', 'tasks', 'worker', '-P', 'prefork', '-c', '2', '-Q', queue, '-l', 'INFO',
      '--without-mingle', '--without-gossip', '--without-heartbeat', '-n', `bench-${randomUUID().slice(0, 6)}@bench`],
      { CELERY_BROKER_URL: b.url, CELERY_RESULT_BACKEND: REDIS_URL }, /ready\./, INTEROP);
  try {
    const started = performance.now();
    const ids = await fill(b, queue, TASKS);
    return TASKS / (await drain(ids, started));
  } finally {
    await stop(child);
    await purge(b, [queue], true);
  }
}

/** BullMQ on the same Redis: jobs added in bulk, timed until every one is completed (its return value stored). */
async function bullmqRun(): Promise<number> {
  const queueName = `bench-bullmq-${randomUUID().slice(0, 8)}`;
  const child = await start('node', ['--import', 'tsx', 'bench/bullmq-worker.ts'], { REDIS_URL, QUEUE: queueName, CONCURRENCY: '50' }, /ready\./);
  const url = new URL(REDIS_URL);
  const queue = new Queue(queueName, { connection: { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0) } });
  try {
    const started = performance.now();
    for (let off = 0; off < TASKS; off += 500) {
      const jobs = [];
      for (let i = off; i < Math.min(TASKS, off + 500); i += 1) jobs.push({ name: 'tasks.add', data: [i, 1] });
      await queue.addBulk(jobs);
    }
    for (;;) {
      const { completed = 0, failed = 0 } = await queue.getJobCounts('completed', 'failed');
      if (failed > 0) throw new Error(`${failed} BullMQ jobs failed`);
      if (completed >= TASKS) return TASKS / ((performance.now() - started) / 1000);
      await sleep(50);
    }
  } finally {
    await stop(child);
    await queue.obliterate({ force: true }).catch(() => undefined);
    await queue.close();
    await redis.flushdb();
  }
}

async function workerBench(b: BrokerCase): Promise<string[]> {
  const node: number[] = [];
  const celery: number[] = [];
  const bullmq: number[] = [];
  for (let i = 0; i < REPEATS; i += 1) {
    node.push(await workerRun(b, 'node'));
    celery.push(await workerRun(b, 'celery'));
    if (b.ceiling === 'redis') bullmq.push(await bullmqRun());
    process.stdout.write(`worker ${b.name} run ${i + 1}: node ${node.at(-1)?.toFixed(0)} tasks/s, celery ${celery.at(-1)?.toFixed(0)} tasks/s${bullmq.length ? `, bullmq ${bullmq.at(-1)?.toFixed(0)} jobs/s` : ''}\n`);
  }
  const rows = [
    `| worker: ${TASKS} no-op tasks, ${b.name} broker, results on Redis, late ack | **${median(node).toFixed(0)} tasks/s** (Node worker, -c 50) | Celery 5.2.6 prefork -c 2: ${median(celery).toFixed(0)} tasks/s | ${(median(node) / median(celery)).toFixed(1)}x Celery |`,
  ];
  if (bullmq.length) {
    rows.push(`| worker: ${TASKS} no-op tasks, Redis, results stored | **${median(node).toFixed(0)} tasks/s** (Node worker, -c 50) | BullMQ ${bullmqVersion()} worker, concurrency 50: ${median(bullmq).toFixed(0)} jobs/s | ${((median(node) / median(bullmq)) * 100).toFixed(0)}% of BullMQ |`);
  }
  return rows;
}

function bullmqVersion(): string {
  try {
    return (JSON.parse(readFileSync(`${ROOT}node_modules/bullmq/package.json`, 'utf8')) as { version: string }).version;
  } catch {
    return '?';
  }
}

/** Node worker RSS sampled after each 20,000-task batch, 200,000 tasks in all. */
async function workerMemoryBench(): Promise<string[]> {
  const queue = `bench-mem-${randomUUID().slice(0, 8)}`;
  const b = BROKERS[0] as BrokerCase;
  const child = await start('node', ['bin/celery-gateway.js', 'worker', '--tasks', 'bench/noop-tasks.ts', '-Q', queue, '-c', '50'],
    { CELERY_BROKER_URL: REDIS_URL, CELERY_RESULT_BACKEND: REDIS_URL, LOG_LEVEL: 'warn', CELERY_RESULT_EXPIRES: '60' }, /ready\./);
  const samples: number[] = [];
  try {
    for (let batch = 0; batch < 10; batch += 1) {
      const ids = await fill(b, queue, 20_000);
      await drain(ids, performance.now());
      await redis.del(...ids.map((id) => `celery-task-meta-${id}`));
      samples.push(await rssMiB(child.pid));
      process.stdout.write(`worker memory: ${(batch + 1) * 20}k tasks, RSS ${samples.at(-1)?.toFixed(0)} MiB\n`);
    }
  } finally {
    await stop(child);
    await redis.flushdb();
  }
  // RSS swings ±5% from one sample to the next with the heap's collections, and the first 20k tasks
  // are the warm-up (the heap grows to its working size): compare the medians of the samples at
  // 40k-80k and at 160k-200k, so one sample's swing neither hides nor fakes growth
  const warm = samples[0] ?? NaN;
  const early = median(samples.slice(1, 4));
  const late = median(samples.slice(-3));
  return [`| memory: Node worker RSS across 200,000 tasks (Redis, -c 50) | **${late.toFixed(0)} MiB** at 160k-200k (median of 3 samples) | ${early.toFixed(0)} MiB at 40k-80k (${warm.toFixed(0)} MiB after the 20k warm-up) | ${(((late - early) / early) * 100).toFixed(1)}% growth (limit 10%) |`];
}

async function latencyBench(): Promise<string[]> {
  const env = { AUTH: 'none', CELERY_BROKER_URL: REDIS_URL, CELERY_RESULT_BACKEND: REDIS_URL, PORT: '18082', LOG_LEVEL: 'warn', CELERY_DEFAULT_QUEUE: 'bench-lat' };
  const gateway = await start('node', ['bin/celery-gateway.js', 'serve'], env, /listening on http/);
  const worker = await start('node', ['bin/celery-gateway.js', 'worker', '--tasks', 'bench/noop-tasks.ts', '-Q', 'bench-lat', '-c', '8'], env, /ready\./);
  let ours: { p50: number; p99: number };
  try {
    const { stdout } = await run('node', ['--import', 'tsx', 'bench/latency-client.ts', '18082', '1000', String(LATENCY_WARMUP)], { cwd: ROOT });
    ours = JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { p50: number; p99: number };
  } finally {
    await stop(gateway);
    await stop(worker);
    await redis.flushdb();
  }
  const celery = await celeryRoundTrip();
  return [`| latency: submit + long-poll, 1,000 sequential after ${LATENCY_WARMUP.toLocaleString('en-US')} warm-up (gateway + Node worker, Redis; node:http keep-alive client) | **p50 ${ours.p50.toFixed(2)} ms, p99 ${ours.p99.toFixed(2)} ms** | Celery's own client, \`add.delay().get()\` with a Celery worker (prefork -c 2): p50 ${celery.p50.toFixed(2)} ms, p99 ${celery.p99.toFixed(2)} ms | |`];
}

/** Celery's client round trip against a Celery worker on the same Redis (bench/celery_roundtrip.py). */
async function celeryRoundTrip(): Promise<{ p50: number; p99: number }> {
  const queue = `bench-celery-lat-${randomUUID().slice(0, 8)}`;
  const env = { CELERY_BROKER_URL: REDIS_URL, CELERY_RESULT_BACKEND: REDIS_URL };
  const worker = await start('/usr/bin/python3', ['-m', 'celery', '-A', 'tasks', 'worker', '-P', 'prefork', '-c', '2', '-Q', queue, '-l', 'INFO',
    '--without-mingle', '--without-gossip', '--without-heartbeat', '-n', `bench-lat-${randomUUID().slice(0, 6)}@bench`], env, /ready\./, INTEROP);
  try {
    const { stdout } = await run('/usr/bin/python3', [`${ROOT}bench/celery_roundtrip.py`, '1000', queue, String(LATENCY_WARMUP)], { cwd: INTEROP, env: { ...process.env, ...env, PYTHONPATH: INTEROP } });
    return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { p50: number; p99: number };
  } finally {
    await stop(worker);
    await redis.flushdb();
  }
}

const args = process.argv.slice(2);
const parts = args.filter((a) => ['submit', 'worker', 'latency', 'memory'].includes(a));
const brokers = args.filter((a) => ['redis', 'amqp'].includes(a));
const want = (part: string) => parts.length === 0 || parts.includes(part);
const wantBroker = (b: BrokerCase) => brokers.length === 0 || brokers.includes(b.ceiling);
await redis.flushdb();
const rows: string[] = [];
const memoryRows: string[] = [];
/** each broker's submit pairs, gateway / ceiling req/s */
const submitPairs: string[] = [];
for (const b of BROKERS.filter(wantBroker)) if (want('submit')) rows.push(...await submitBench(b));
for (const b of BROKERS.filter(wantBroker)) if (want('worker')) rows.push(...await workerBench(b));
if (want('latency')) rows.push(...await latencyBench());
if (want('memory')) memoryRows.push(...await workerMemoryBench());
rows.push(...memoryRows);
await redis.quit();

const report = `# Benchmark results

Measured by \`npm run bench\` on ${new Date().toISOString().slice(0, 10)}, ${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, Node ${process.version},
Redis on loopback; medians of ${REPEATS} runs; every figure beside its comparison from the same run.
Submit: ${SUBMIT_PAIRS} pairs of adjacent runs (gateway, ceiling, alternating which goes first); the
req/s are medians, the share of the ceiling is the median of the pairs' ratios.
The load generator (wrk, 2 threads) shares the 2 cores with the server, so absolute numbers are low.

| what | ours | comparison | |
|---|---|---|---|
${rows.join('\n')}
${submitPairs.length ? `\nSubmit pairs (gateway / ceiling req/s):\n${submitPairs.join('\n')}\n` : ''}`;
await writeFile(new URL('RESULTS.md', import.meta.url), report);
process.stdout.write(`\n${report}`);
