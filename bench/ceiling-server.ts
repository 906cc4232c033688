/**
 * The ceiling for submit throughput: a bare Fastify route doing one LPUSH of a prebuilt Celery message
 * per POST (no validation, no message building, no id record). Started by bench/run.ts.
 */
import Fastify from 'fastify';
import { Redis } from 'ioredis';
import { randomUUID } from 'node:crypto';
import { encodeEnvelope } from '../src/protocol/kombu-envelope.ts';
import { buildTaskMessage } from '../src/protocol/message.ts';

const port = Number(process.env['PORT'] ?? 18081);
const redis = new Redis(process.env['REDIS_URL'] ?? 'redis://127.0.0.1:6379/14', { enableAutoPipelining: true });
const queue = process.env['QUEUE'] ?? 'bench-ceiling';
const message = buildTaskMessage({ task: 'tasks.add', id: randomUUID(), args: [2, 3], kwargs: {}, origin: 'bench', replyTo: randomUUID() }, new Date());
const envelope = encodeEnvelope(message, { exchange: '', routingKey: queue }, randomUUID());

const app = Fastify({ logger: false });
app.post('/tasks/:name', async (_req, reply) => {
  await redis.lpush(queue, envelope);
  return reply.code(202).send({ id: message.headers['id'], state: 'PENDING' });
});
await app.listen({ host: '127.0.0.1', port });
process.stdout.write('ceiling ready\n');
process.on('SIGTERM', () => { void app.close().then(() => redis.quit()).then(() => process.exit(0)); });
