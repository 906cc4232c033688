/**
 * Soak run (issue #8; `npm run test:soak`, not part of CI): minutes of mixed load on Redis in one
 * process — the gateway on a real socket, a Node worker, and clients that submit, long-poll results, run
 * workflows (chain, chord) and send bad requests — while RSS, heap and active handles
 * (process.getActiveResourcesInfo()) are sampled. Prints a table; exits 1 when RSS grows more than 20%
 * after warm-up or the handle count keeps growing.
 *
 *   npm run test:soak -- --minutes 10            # the full run (default)
 *   npm run test:soak -- --minutes 0.5           # a smoke run
 *   flags: --interval SECONDS (sample period, default 10), --redis URL (default $REDIS_URL or
 *   redis://127.0.0.1:6379/0), --prefix NAME (queue name prefix, default "soak"), --inject-leak (leak
 *   memory and timers on purpose: shows that the verdict fails)
 */
import { randomUUID } from 'node:crypto';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { RedisBackend } from '../src/backends/redis.ts';
import { RedisBroker } from '../src/brokers/redis.ts';
import { loadConfig } from '../src/config.ts';
import { buildApp } from '../src/http/app.ts';
import { TaskRegistry } from '../src/worker/registry.ts';
import { Worker } from '../src/worker/worker.ts';

const { values } = parseArgs({
  options: {
    minutes: { type: 'string', default: '10' },
    interval: { type: 'string', default: '10' },
    redis: { type: 'string', default: process.env['REDIS_URL'] || 'redis://127.0.0.1:6379/0' },
    prefix: { type: 'string', default: 'soak' },
    // self-check of the verdict: leak memory and timers on purpose, the run must then fail
    'inject-leak': { type: 'boolean', default: false },
  },
});
const minutes = Number(values.minutes);
const intervalSec = Number(values.interval);
if (!(minutes > 0) || !(intervalSec > 0)) {
  process.stderr.write('usage: soak.ts [--minutes N] [--interval SECONDS] [--redis URL] [--prefix NAME]\n');
  process.exit(2);
}
const durationMs = minutes * 60_000;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const logger = pino({ level: process.env['LOG_LEVEL'] ?? 'silent' });

const queue = `${values.prefix}-${randomUUID()}`;
const url = values.redis;
const broker = new RedisBroker({ url, logger });
const backend = new RedisBackend({ url, resultTtlSec: 300, submittedTtlSec: 300, logger });
const app = await buildApp({
  broker, backend, logger,
  config: loadConfig({ CELERY_DEFAULT_QUEUE: queue, MAX_WAIT_SECONDS: '10' }),
});
await app.listen({ host: '127.0.0.1', port: 0 });
const address = app.server.address();
const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
const wBroker = new RedisBroker({ url, logger });
const wBackend = new RedisBackend({ url, resultTtlSec: 300, logger });
const worker = new Worker({
  broker: wBroker, backend: wBackend, queues: [queue], concurrency: 16, prefetchMultiplier: 4, defaultQueue: queue,
  hostname: `soak.${process.pid}@host`, logger, shutdownTimeout: 5, remoteControl: false,
  registry: new TaskRegistry().registerAll({
    'tasks.add': (x: number, y: number) => x + y,
    'tasks.xsum': (xs: number[]) => xs.reduce((a, b) => a + b, 0),
    'tasks.sleep': async (ms: number) => { await sleep(ms); return ms; },
  }),
});
await worker.start();

const counts = { submit: 0, poll: 0, workflow: 0, bad: 0, failed: 0 };
const failures = new Map<string, number>();
const fail = (what: string): void => { counts.failed += 1; failures.set(what, (failures.get(what) ?? 0) + 1); };
const post = async (path: string, body: unknown): Promise<{ status: number; json: any }> => {
  const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  return { status: res.status, json: await res.json() };
};
const get = async (path: string): Promise<{ status: number; json: any }> => {
  const res = await fetch(base + path);
  return { status: res.status, json: await res.json() };
};

let running = true;
const loop = (name: string, pauseMs: number, body: () => Promise<void>) => (async () => {
  while (running) {
    try { await body(); } catch (err) { fail(`${name}: ${(err as Error).message}`); }
    await sleep(pauseMs);
  }
})();

const loops = [
  // plain submissions
  ...Array.from({ length: 4 }, () => loop('submit', 10, async () => {
    const r = await post('/tasks/tasks.add', { args: [1, 2] });
    if (r.status === 202) counts.submit += 1; else fail(`submit ${r.status}`);
  })),
  // submit and long-poll the result
  ...Array.from({ length: 4 }, () => loop('poll', 10, async () => {
    const r = await post('/tasks/tasks.sleep', { args: [20] });
    if (r.status !== 202) return fail(`poll-submit ${r.status}`);
    const res = await get(`/results/${r.json.id}?wait=5`);
    if (res.json.state === 'SUCCESS') counts.poll += 1; else fail(`poll ${res.status} ${res.json.state}`);
  })),
  // workflows: a chain and a chord, then their tree once done
  ...Array.from({ length: 2 }, () => loop('workflow', 50, async () => {
    const r = await post('/workflows', { chain: [
      { task: 'tasks.add', args: [2, 3] },
      { chord: { header: [{ task: 'tasks.add', args: [1, 1] }, { task: 'tasks.add', args: [2, 2] }], body: { task: 'tasks.xsum' } } },
    ] });
    if (r.status !== 202) return fail(`workflow ${r.status}`);
    const last = await get(`/results/${r.json.tree.id}?wait=5`);
    const tree = await get(`/workflows/${r.json.id}`);
    if (last.json.state === 'SUCCESS' && tree.status === 200) counts.workflow += 1; else fail(`workflow ${last.json.state} ${tree.status}`);
  })),
  // refused requests
  loop('bad', 50, async () => {
    const r = await post('/tasks/tasks.add', { args: 'nope' });
    if (r.status === 400) counts.bad += 1; else fail(`bad ${r.status}`);
  }),
];

interface Sample { t: number; rss: number; heap: number; handles: number; kinds: string; done: number }
const samples: Sample[] = [];
const mb = (n: number): string => (n / 2 ** 20).toFixed(1);
const take = (): Sample => {
  const resources = process.getActiveResourcesInfo();
  const kinds = new Map<string, number>();
  for (const r of resources) kinds.set(r, (kinds.get(r) ?? 0) + 1);
  const m = process.memoryUsage();
  return {
    t: Math.round(process.uptime()), rss: m.rss, heap: m.heapUsed, handles: resources.length,
    kinds: [...kinds].sort((a, b) => b[1] - a[1]).slice(0, 4).map(([k, v]) => `${k}:${v}`).join(' '),
    done: counts.submit + counts.poll + counts.workflow + counts.bad,
  };
};
process.stdout.write(`soak: ${minutes} min on ${url.replace(/\/\/[^@]*@/, '//***@')}, queue ${queue}, sample every ${intervalSec} s\n`);
process.stdout.write(`${'t(s)'.padStart(6)} ${'rss MB'.padStart(8)} ${'heap MB'.padStart(8)} ${'handles'.padStart(8)} ${'req/s'.padStart(7)}  resources\n`);
const leaked: Buffer[] = [];
if (values['inject-leak']) {
  setInterval(() => {
    leaked.push(Buffer.alloc(4 * 2 ** 20, 1));
    setInterval(() => {}, 60_000);
  }, 1000);
}
const started = Date.now();
let lastDone = 0;
while (Date.now() - started < durationMs) {
  await sleep(Math.min(intervalSec * 1000, durationMs - (Date.now() - started)));
  const s = take();
  samples.push(s);
  process.stdout.write(`${String(s.t).padStart(6)} ${mb(s.rss).padStart(8)} ${mb(s.heap).padStart(8)} ${String(s.handles).padStart(8)} ${String(Math.round((s.done - lastDone) / intervalSec)).padStart(7)}  ${s.kinds}\n`);
  lastDone = s.done;
}
running = false;
await Promise.all(loops);
await worker.close();
await app.close();
await broker.client.del(queue, `_kombu.binding.${queue}`).catch(() => {});
await Promise.all([broker.close(), backend.close(), wBroker.close(), wBackend.close()]);

// Verdict: baseline at the end of warm-up (the first 20% of the samples, at least one); RSS at the end
// (median of the last three samples) within +20% of it; handles not above the baseline all through the
// last third of the run (a spike is not growth; a floor that rose is).
const problems: string[] = [];
const warm = Math.max(1, Math.floor(samples.length * 0.2));
const baseline = samples[warm - 1];
const tail = samples.slice(warm);
if (baseline && tail.length > 0) {
  const lastThree = samples.slice(-3).map((s) => s.rss).sort((a, b) => a - b);
  const rssEnd = lastThree[Math.floor(lastThree.length / 2)]!;
  const growth = (rssEnd - baseline.rss) / baseline.rss;
  process.stdout.write(`\nRSS after warm-up ${mb(baseline.rss)} MB, at the end ${mb(rssEnd)} MB (${(growth * 100).toFixed(1)}%); `);
  if (growth > 0.2) problems.push(`RSS grew ${(growth * 100).toFixed(1)}% after warm-up (limit 20%)`);
  const lastThird = tail.slice(-Math.max(1, Math.ceil(tail.length / 3)));
  const floor = Math.min(...lastThird.map((s) => s.handles));
  process.stdout.write(`handles after warm-up ${baseline.handles}, lowest in the last third ${floor}\n`);
  if (floor > baseline.handles + Math.max(10, baseline.handles * 0.25)) problems.push(`active handles keep growing: ${baseline.handles} after warm-up, never below ${floor} in the last third`);
} else {
  process.stdout.write('\nnot enough samples for a verdict (run longer than one interval)\n');
}
process.stdout.write(`requests: ${counts.submit} submits, ${counts.poll} submit+long-poll, ${counts.workflow} workflows, ${counts.bad} refused as expected, ${counts.failed} failures\n`);
if (counts.failed > 0) problems.push(`${counts.failed} failed requests: ${[...failures].slice(0, 5).map(([k, v]) => `${k} ×${v}`).join('; ')}`);
if (counts.submit === 0 || counts.poll === 0 || counts.workflow === 0) problems.push('a kind of load never succeeded');
if (problems.length > 0) {
  process.stdout.write(`FAIL: ${problems.join('; ')}\n`);
  process.exit(1);
}
process.stdout.write('OK: steady RSS and handle count\n');
process.exit(0);
