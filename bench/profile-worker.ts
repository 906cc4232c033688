/**
 * CPU cost per task of the Node worker on Redis, robust to a busy machine: fills a queue with N no-op
 * tasks, runs the worker in this process until every result is stored, and prints the worker's CPU
 * time per task (process.cpuUsage) and Redis' (INFO cpu) beside the wall-clock rate.
 *   node --import tsx bench/profile-worker.ts [tasks=20000] [concurrency=50]
 *   PROFILE=/tmp/worker.cpuprofile node --import tsx bench/profile-worker.ts   # a CPU profile of the run (not of the fill)
 */
import { writeFileSync } from 'node:fs';
import { Session } from 'node:inspector/promises';
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { RedisBackend } from '../src/backends/redis.ts';
import { RedisBroker } from '../src/brokers/redis.ts';
import { encodeEnvelope } from '../src/protocol/kombu-envelope.ts';
import { buildTaskMessage } from '../src/protocol/message.ts';
import { connectRedis } from '../src/redis/connection.ts';
import { RevokedCache } from '../src/state/revoked.ts';
import { RedisState } from '../src/state/shared-state.ts';
import { TaskRegistry } from '../src/worker/registry.ts';
import { Worker } from '../src/worker/worker.ts';
import { resultsDone } from './results-done.ts';

const URL = process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/14';
const N = Number(process.argv[2] ?? 20_000);
const CONCURRENCY = Number(process.argv[3] ?? 50);
const queue = `prof-${randomUUID().slice(0, 8)}`;
const redis = new Redis(URL);

async function redisCpu(): Promise<number> {
  const info = await redis.info('cpu');
  const get = (k: string): number => Number(new RegExp(`${k}:([\\d.]+)`).exec(info)?.[1] ?? 0);
  return get('used_cpu_sys') + get('used_cpu_user');
}

const ids: string[] = [];
for (let off = 0; off < N; off += 1000) {
  const batch: string[] = [];
  for (let i = off; i < Math.min(N, off + 1000); i++) {
    const id = randomUUID();
    ids.push(id);
    batch.push(encodeEnvelope(buildTaskMessage({ task: 'tasks.add', id, args: [i, 1], kwargs: {}, origin: 'prof', replyTo: '' }, new Date()), { exchange: '', routingKey: queue }, randomUUID()));
  }
  await redis.lpush(queue, ...batch);
}

const logger = pino({ level: 'warn' });
const broker = new RedisBroker({ url: URL, logger });
const backend = new RedisBackend({ url: URL, logger });
const registry = new TaskRegistry().register('tasks.add', { handler: (x: unknown, y: unknown) => Number(x) + Number(y), trackStarted: process.env['TRACK_STARTED'] !== '0' });
const state = new RedisState(connectRedis(URL, logger));
const revoked = new RevokedCache(state, 3600);
await revoked.start();
const worker = new Worker({
  broker, backend, registry, queues: [queue], concurrency: CONCURRENCY, prefetchMultiplier: 4, hostname: `prof@${process.pid}`,
  logger, shutdownTimeout: 5, remoteControl: false,
  // as the CLI worker: every task is checked against the durable revoked set
  ...(process.env["NO_REVOKED"] ? {} : { revoked }),
});
const profile = process.env['PROFILE'];
const session = profile ? new Session() : undefined;
if (session) {
  session.connect();
  await session.post('Profiler.enable');
  await session.post('Profiler.start');
}
const cpu0 = process.cpuUsage();
const redis0 = await redisCpu();
const t0 = performance.now();
await worker.start();
await resultsDone(redis, ids);
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const redisSec = (await redisCpu()) - redis0;
if (session && profile) {
  const { profile: data } = await session.post('Profiler.stop');
  writeFileSync(profile, JSON.stringify(data));
}
await worker.close();
revoked.close();
await Promise.all([broker.close(), backend.close(), state.close()]);
await redis.del(queue, ...ids.map((id) => `celery-task-meta-${id}`));
redis.disconnect();
console.log(`${N} tasks in ${seconds.toFixed(2)} s: ${(N / seconds).toFixed(0)} tasks/s; worker CPU ${((cpu.user + cpu.system) / N).toFixed(1)} us/task (user ${(cpu.user / N).toFixed(1)}, sys ${(cpu.system / N).toFixed(1)}); Redis CPU ${((redisSec * 1e6) / N).toFixed(1)} us/task`);
