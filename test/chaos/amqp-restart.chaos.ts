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
import { ERRORS } from '../../src/errors.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { binaryGate, startPrivateRabbit, type PrivateRabbit } from './servers.ts';
import { startSubmissionStream } from './stream.ts';

/** submissions per second */
const RATE = 200;
const skip = (await binaryGate('rabbitmq-server', 'apt-get install rabbitmq-server')) || (await binaryGate('rabbitmqctl', 'apt-get install rabbitmq-server'));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

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

    const accepted = answers.filter((a) => a.status === 202);
    const refused = answers.filter((a) => a.status !== 202);
    for (const a of refused) {
      assert.equal(a.status, 503, `unexpected answer ${a.status} ${a.code}`);
      assert.ok(a.code && (ERRORS as Record<string, { status: number }>)[a.code]?.status === 503, `503 with code ${a.code}`);
    }
    assert.deepEqual(refused.filter((a) => a.at < stoppingAt), [], 'nothing refused before the stop');
    const refusedWhileDown = refused.filter((a) => a.sentAt >= downAt && a.sentAt < upAt).length;
    assert.ok(refusedWhileDown > 0, 'submissions were refused while RabbitMQ was down');
    const firstAfter = accepted.filter((a) => a.sentAt >= upAt).sort((a, b) => a.sentAt - b.sentAt)[0];
    assert.ok(firstAfter, 'submissions are accepted again after the restart');
    const recoveryMs = firstAfter.at - upAt;
    // the AMQP reconnect backoff doubles up to 5 s (ManagedConnection): the next attempt after a ~6 s outage may be that far off
    assert.ok(recoveryMs < 8000, `recovered ${recoveryMs} ms after RabbitMQ was back`);
    assert.ok(accepted.filter((a) => a.sentAt < stoppingAt).length > 100, 'load was flowing before the stop');

    const deadline = Date.now() + 30_000;
    let missing = accepted.map((a) => a.id!);
    while (missing.length > 0 && Date.now() < deadline) {
      const metas = await Promise.all(missing.map((id) => backend.get(id)));
      missing = missing.filter((_, i) => metas[i]?.status !== 'SUCCESS');
      if (missing.length > 0) await sleep(250);
    }
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
