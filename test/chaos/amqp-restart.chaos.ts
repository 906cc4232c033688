/**
 * Chaos: the RabbitMQ broker stops (`rabbitmqctl stop_app`: every connection is closed, the node keeps
 * its durable queues and persistent messages on disk) and starts again, under a stream of submissions
 * (~200/s) with a Node worker attached. A private node `h3chaos@localhost` on port 5682, never the
 * shared one. Results go to an in-process memory backend, so only the broker is at fault.
 *
 * Asserted: a 202 means RabbitMQ confirmed the message (publisher confirms), so every 202's task ends
 * SUCCESS after the restart (durable queue, persistent message; messages the worker held unacked are
 * requeued by RabbitMQ when its connection drops); every other answer is a 503 with a 503 code; there are
 * 503s while the broker is down; the gateway and the worker reconnect on their own within seconds.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { binaryGate, sleep, startPrivateRabbit, type PrivateRabbit } from '../support/private-servers.ts';
import { checkOutage, startSubmissionStream, waitForSuccess } from './stream.ts';

/** submissions per second */
const RATE = 200;
const skip = (await binaryGate('rabbitmq-server', 'apt-get install rabbitmq-server')) || (await binaryGate('rabbitmqctl', 'apt-get install rabbitmq-server'));

describe('chaos: RabbitMQ stopped and started under a stream of submissions', { skip }, () => {
  let rabbit: PrivateRabbit;
  const queue = `h3-ar-${randomUUID()}`;
  let gw: TestGateway;
  let broker: AmqpBroker;
  const backend = new MemoryBackend({ submittedTtlSec: 3600 });
  const closers: (() => Promise<void>)[] = [];

  before(async () => {
    rabbit = await startPrivateRabbit();
    broker = new AmqpBroker({ url: rabbit.url, logger: silentLogger });
    gw = await startGateway({ broker, backend });
    closers.push(async () => { await gw.app.close(); await broker.close(); });
    const wBroker = new AmqpBroker({ url: rabbit.url, logger: silentLogger });
    const worker = new Worker({
      broker: wBroker, backend, queues: [queue], concurrency: 16, prefetchMultiplier: 4,
      hostname: `h3-ar.${process.pid}@host`, logger: silentLogger, shutdownTimeout: 2, remoteControl: false,
      registry: new TaskRegistry().registerAll({ 'tasks.add': (x: number, y: number) => x + y }),
    });
    await worker.start();
    closers.push(async () => { await worker.close(); await wBroker.close(); });
  });
  after(async () => {
    for (const close of closers.reverse()) await close().catch(() => {});
    await backend.close();
    await rabbit?.destroy();
  });

  it('no 202 lost, 503s while down, recovery within seconds, the worker finishes every accepted task', async (t) => {
    const load = startSubmissionStream(gw, queue, RATE);
    const { answers } = load;

    await sleep(2000);
    const stoppingAt = Date.now();
    await rabbit.stopApp();
    const downAt = Date.now();
    await sleep(2000);
    await rabbit.startApp();
    const upAt = Date.now();
    await sleep(4000);
    await load.stop();

    // the AMQP reconnect backoff doubles up to 2 s (ManagedConnection), plus the node's own start-up
    const { accepted, refused, refusedWhileDown, recoveryMs } = checkOutage(answers, { faultAt: stoppingAt, downFrom: downAt, upAt }, 8000, 'RabbitMQ');

    const missing = await waitForSuccess(backend, accepted.map((a) => a.id!));
    const finishedAt = Date.now();
    assert.deepEqual(missing.slice(0, 10), [], `${missing.length} of ${accepted.length} accepted tasks never got SUCCESS`);
    const sent = answers.map((a) => a.sentAt);
    t.diagnostic(`amqp restart: ${answers.length} submissions (${Math.round((answers.length * 1000) / (Math.max(...sent) - Math.min(...sent)))}/s), ` +
      `${accepted.length} accepted, ${refused.length} refused (${[...new Set(refused.map((a) => a.code))].join(', ')}), ${refusedWhileDown} refused while down ` +
      `(stop_app ${downAt - stoppingAt} ms, down ${upAt - downAt} ms incl. start_app), first 202 ${recoveryMs} ms after start_app returned, ` +
      `all accepted tasks SUCCESS ${finishedAt - upAt} ms after it`);
    assert.equal(await broker.queueLength(queue), 0, 'the queue is drained');
  });
});
