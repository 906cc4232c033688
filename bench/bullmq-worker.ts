/**
 * The BullMQ side of the worker benchmark: a BullMQ Worker (concurrency 50) on the same Redis running the
 * same no-op `add`, its return value stored as BullMQ stores every result. Started by bench/run.ts with
 * QUEUE and REDIS_URL; prints "ready." once the worker is running.
 */
import { Worker } from 'bullmq';

const url = new URL(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/14');
const connection = { host: url.hostname, port: Number(url.port || 6379), db: Number(url.pathname.slice(1) || 0), maxRetriesPerRequest: null };
const worker = new Worker(process.env['QUEUE'] ?? 'bench-bullmq', async (job) => {
  const [x, y] = job.data as [number, number];
  return x + y;
}, { connection, concurrency: Number(process.env['CONCURRENCY'] ?? 50) });
await worker.waitUntilReady();
process.stdout.write('ready.\n');
process.on('SIGTERM', () => { void worker.close().then(() => process.exit(0)); });
