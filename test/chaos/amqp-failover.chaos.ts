/**
 * RabbitMQ scale-out (issue #9) on two private nodes clustered together (h4a@localhost :5692,
 * h4b@localhost :5693):
 * - CELERY_QUEUE_TYPE=quorum declares quorum queues and messages flow through them (consumers use
 *   per-consumer QoS: quorum queues refuse global QoS);
 * - a gateway on the URL list `amqp://…:5692//;amqp://…:5693//` fails over to node b when node a stops
 *   under a stream of submissions: 503 only during the gap, and every 202's task is run by a Node
 *   worker process on the same URL list, which fails over too.
 *
 * Two nodes cannot keep a quorum queue alive when one stops (a quorum needs a majority: 2 of 2), so the
 * failover queue is a classic queue mirrored on both nodes by an `ha-mode: all` policy (the operator's
 * side, RabbitMQ 3.x); with three nodes a quorum queue does the same (see README "Running at scale").
 * Without a cluster (two independent nodes) the gateway fails over the same way, but the messages on
 * the dead node wait for it to come back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { createBroker } from '../../src/compose.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { runCli, type CliProcess } from '../support/cli.ts';
import { sleep, startRabbitNodes, toolGate, until, type RabbitNode } from './h4-servers.ts';

const skip = toolGate('rabbitmq-server');

interface Attempt { i: number; at: number; status: number; code?: string; id?: string }

/** Task ids of the messages a consumer on `url` drains from `queue` (stops after `quietMs` without one). */
async function drain(url: string, queue: string, quietMs = 1500): Promise<string[]> {
  const broker = new AmqpBroker({ url, logger: silentLogger });
  const ids: string[] = [];
  let last = Date.now();
  try {
    const sub = await broker.consume({ queues: [queue], prefetch: 200 }, (d) => {
      ids.push(String(d.message.headers['id']));
      last = Date.now();
      void d.ack();
    });
    await until('the queue to be drained', async () => Date.now() - last > quietMs, 30_000, 100);
    await sub.cancel();
  } finally {
    await broker.close();
  }
  return ids;
}

describe('RabbitMQ cluster: quorum queues and node failover', { skip, timeout: 90_000 }, () => {
  let a: RabbitNode;
  let b: RabbitNode;
  let stopNodes: (() => Promise<void>) | undefined;

  before(async () => {
    const started = await startRabbitNodes([{ name: 'h4a', port: 5692, distPort: 25692 }, { name: 'h4b', port: 5693, distPort: 25693 }], true);
    stopNodes = started.stop;
    [a, b] = started.nodes as [RabbitNode, RabbitNode];
    assert.match(await a.ctl('cluster_status'), /h4b@localhost/, 'b joined a');
  });

  after(async () => {
    await stopNodes?.();
  });

  it('CELERY_QUEUE_TYPE=quorum: the queue is declared quorum and tasks flow through it', async () => {
    const queue = `h4-quorum-${randomUUID().slice(0, 6)}`;
    const env = { CELERY_BROKER_URL: `${a.url};${b.url}`, CELERY_QUEUE_TYPE: 'quorum', AUTH: 'none' };
    const config = loadConfig(env);
    const gw = await startGateway({ broker: createBroker(config, silentLogger), env });
    const consumerBroker = createBroker(config, silentLogger);
    try {
      const ids: string[] = [];
      for (let i = 0; i < 50; i += 1) {
        const res = await gw.post('/tasks/tasks.add', { args: [i, 1], options: { queue } });
        assert.equal(res.status, 202, JSON.stringify(res.json));
        ids.push(res.json.id);
      }
      const listed = await a.ctl('list_queues', '-q', 'name', 'type', 'arguments');
      const row = listed.split('\n').find((l) => l.startsWith(`${queue}\t`));
      assert.ok(row, `the queue exists:\n${listed}`);
      assert.match(row, /\tquorum\t.*x-queue-type.*quorum/, `a quorum queue: ${row}`);
      // (list_queues' message count of a quorum queue lags: ask with a passive declare)
      assert.equal(await consumerBroker.queueLength(queue), 50, 'the quorum queue holds the 50 messages');
      // a consumer made by the same settings (per-consumer QoS) receives them all
      const got: string[] = [];
      const sub = await consumerBroker.consume({ queues: [queue], prefetch: 8 }, (d) => { got.push(String(d.message.headers['id'])); void d.ack(); });
      await until('all 50 delivered', async () => got.length >= 50, 15_000);
      await sub.cancel();
      assert.deepEqual([...got].sort(), [...ids].sort());
      // the same queue with global QoS (Celery 5.2's default) is refused by RabbitMQ: why globalQos=false
      const globalQos = new AmqpBroker({ url: a.url, logger: silentLogger, queueArguments: { 'x-queue-type': 'quorum' } });
      try {
        await assert.rejects(globalQos.consume({ queues: [queue], prefetch: 8 }, () => {}), (err: Error) => /cannot consume/.test(err.message));
      } finally {
        await globalQos.close();
      }
    } finally {
      await gw.close();
      await consumerBroker.close();
    }
  });

  it('URL list: node a stops under load, gateway and worker fail over to b, no 202 is lost', async () => {
    const queue = `h4-ha-${randomUUID().slice(0, 6)}`;
    await a.ctl('set_policy', 'h4-ha', '^h4-ha-', '{"ha-mode":"all","ha-sync-mode":"automatic","ha-promote-on-shutdown":"always","ha-promote-on-failure":"always"}', '--apply-to', 'queues');
    const env = { CELERY_BROKER_URL: `${a.url};${b.url}`, AUTH: 'none' };
    const broker = createBroker(loadConfig(env), silentLogger) as AmqpBroker;
    const gw = await startGateway({ broker, env });
    const attempts: Attempt[] = [];
    let stop = false;
    let worker: CliProcess | undefined;
    try {
      // results stay in the worker (memory://): its log says which tasks succeeded
      worker = runCli(['worker', '--tasks', 'examples/tasks.ts', '-Q', queue, '-c', '8', '-n', 'h4-amqp@test'], { ...env, CELERY_RESULT_BACKEND: 'memory://', LOG_LEVEL: 'info' });
      await worker.waitFor(/h4-amqp@test ready\./, 30_000);
      const submitter = (async () => {
        for (let i = 0; !stop; i += 1) {
          const at = Date.now();
          try {
            const res = await gw.post('/tasks/tasks.add', { args: [i, 1], options: { queue } });
            attempts.push({ i, at, status: res.status, code: res.json?.code, id: res.json?.id });
          } catch (err) {
            attempts.push({ i, at, status: 0, code: (err as Error).message });
          }
          await sleep(10);
        }
      })();
      await until('200 accepted before the stop', async () => attempts.filter((x) => x.status === 202).length >= 200, 20_000);
      assert.equal(broker.conn.currentNode, 0, 'connected to node a (first of the list)');
      const stoppedAt = Date.now();
      await a.stop();
      const stopDoneAt = Date.now();
      await until('the gateway to accept again on node b', async () => {
        const tail = attempts.slice(-50);
        return tail.length === 50 && tail[0]!.at > stopDoneAt && tail.every((x) => x.status === 202);
      }, 30_000);
      stop = true;
      await submitter;
      assert.equal(broker.conn.currentNode, 1, 'now on node b');

      const failures = attempts.filter((x) => x.status !== 202);
      const accepted = attempts.filter((x) => x.status === 202);
      const lastFailure = failures.at(-1);
      const recoveredAt = attempts.find((x) => x.at > (lastFailure?.at ?? stoppedAt) && x.status === 202)?.at ?? stoppedAt;
      console.log(`# amqp failover: ${attempts.length} submissions, ${accepted.length} accepted (202), ${failures.length} refused (503); ` +
        `rabbitmqctl stop took ${stopDoneAt - stoppedAt} ms; stop → first 202 after the last 503 ${recoveredAt - stoppedAt} ms`);
      for (const f of failures) {
        assert.equal(f.status, 503, `only 503s (attempt ${f.i}: ${f.status} ${f.code})`);
        assert.equal(f.code, 'GW_ERR_BROKER_UNAVAILABLE');
        assert.ok(f.at >= stoppedAt - 50, `no failure before the stop (attempt ${f.i})`);
      }
      assert.ok(attempts.filter((x) => x.at >= recoveredAt).every((x) => x.status === 202), 'no 503 after the recovery');

      // every 202 is run by the worker (before the stop on a, or after its failover to b, where the
      // mirror was promoted); a 503'd publish may have arrived too
      const w = worker;
      const succeeded = (): Set<string> => new Set([...w.output().matchAll(/Task tasks\.add\[([0-9a-f-]{36})\] succeeded/g)].map((m) => m[1]!));
      await until('the worker to run every accepted task', async () => accepted.every((x) => succeeded().has(x.id!)), 30_000, 250).catch(() => undefined);
      const ran = succeeded();
      const lost = accepted.filter((x) => !ran.has(x.id!));
      assert.deepEqual(lost.map((x) => x.i), [], `accepted but never run: ${lost.length} of ${accepted.length}\n${w.output().slice(-2000)}`);
      assert.match(w.output(), /AMQP connection lost|reconnecting/i, 'the worker lost node a');
      // and nothing is left behind on node b
      await worker.stop();
      worker = undefined;
      assert.deepEqual(await drain(b.url, queue, 500), [], 'the queue on node b is empty');
    } finally {
      stop = true;
      await worker?.stop('SIGKILL');
      await gw.close();
    }
  });
});
