/**
 * The ceiling for submit throughput: a bare Fastify route that publishes one prebuilt Celery message per
 * POST (no validation, no message building, no id record). CEILING=redis: one LPUSH; CEILING=amqp: one
 * publish on a confirm channel, answered after the confirm. Started by bench/run.ts.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { amqplib, publishOptions } from '../src/brokers/amqp-support.ts';
import { encodeEnvelope } from '../src/protocol/kombu-envelope.ts';
import { buildTaskMessage } from '../src/protocol/message.ts';

const port = Number(process.env['PORT'] ?? 18081);
const queue = process.env['QUEUE'] ?? 'bench-ceiling';
const message = buildTaskMessage({ task: 'tasks.add', id: randomUUID(), args: [2, 3], kwargs: {}, origin: 'bench', replyTo: randomUUID() }, new Date());
const app = Fastify({ logger: false });
let close: () => Promise<void>;

if (process.env['CEILING'] === 'amqp') {
  const conn = await amqplib.connect(process.env['AMQP_URL'] ?? 'amqp://guest:guest@127.0.0.1:5672//');
  const ch = await conn.createConfirmChannel();
  await ch.assertQueue(queue, { durable: true });
  const body = Buffer.from(message.body);
  const options = publishOptions(message);
  app.post('/tasks/:name', async (_req, reply) => {
    await new Promise<void>((resolve, reject) => ch.publish('', queue, body, options, (err) => (err ? reject(err) : resolve())));
    return reply.code(202).send({ id: message.headers['id'], state: 'PENDING' });
  });
  close = async () => { await conn.close(); };
} else {
  const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/14', { enableAutoPipelining: true });
  const envelope = encodeEnvelope(message, { exchange: '', routingKey: queue }, randomUUID());
  app.post('/tasks/:name', async (_req, reply) => {
    await redis.lpush(queue, envelope);
    return reply.code(202).send({ id: message.headers['id'], state: 'PENDING' });
  });
  close = async () => { await redis.quit(); };
}
await app.listen({ host: '127.0.0.1', port });
process.stdout.write('ceiling ready\n');
process.on('SIGTERM', () => { void app.close().then(close).then(() => process.exit(0)); });
