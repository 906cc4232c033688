/**
 * RabbitMQ scale-out (issue #9) on three private nodes clustered together (h4a@localhost :5692,
 * h4b@localhost :5693, h4c@localhost :5694):
 * - CELERY_QUEUE_TYPE=quorum declares quorum queues and messages flow through them (consumers use
 *   per-consumer QoS: quorum queues refuse global QoS); quorum queues have no priorities (RabbitMQ
 *   refuses `x-max-priority` on them, and so does our config);
 * - a gateway on the URL list `amqp://…:5692//;amqp://…:5693//;amqp://…:5694//` with
 *   CELERY_QUEUE_TYPE=quorum fails over when node a (the node it is connected to, and the quorum queue's
 *   leader) stops under a stream of submissions: 503 only during the gap, the queue elects a new leader
 *   on b or c (2 of 3 members left: still a majority), and every 202's task is run by a Node worker
 *   process on the same URL list, which fails over too (SUCCESS stored on Redis).
 *
 * Three nodes because a quorum needs a majority: with two nodes, losing one stops the queue.
 * Without a cluster (independent nodes) the gateway fails over the same way, but the messages on the
 * dead node wait for it to come back.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { after, before, describe, it } from 'node:test';
import { Redis } from 'ioredis';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import { createBroker } from '../../src/compose.ts';
import { loadConfig } from '../../src/config.ts';
import { silentLogger, startGateway } from '../support/app.ts';
import { runCli, type CliProcess } from '../support/cli.ts';
import { redisGate, redisUrl } from '../support/services.ts';
import { sleep, startRabbitNodes, toolGate, until, type RabbitNode } from './h4-servers.ts';

/** results of the failover test's worker (only this file's task ids are read and deleted, never flushed) */
const REDIS_DB = 3;
const skip = (await toolGate('rabbitmq-server')) || (await redisGate(REDIS_DB));

interface Attempt { i: number; at: number; status: number; code?: string; id?: string }

/** `list_queues` row of `queue` as { type, leader, members }, asked on `node`. */
async function queueInfo(node: RabbitNode, queue: string): Promise<{ type: string; leader: string; members: string } | undefined> {
  const listed = await node.ctl('list_queues', '-q', 'name', 'type', 'leader', 'members');
  const row = listed.split('\n').find((l) => l.startsWith(`${queue}\t`));
  if (!row) return undefined;
  const [, type = '', leader = '', members = ''] = row.split('\t');
  return { type, leader, members };
}

describe('RabbitMQ three-node cluster: quorum queues and node failover', { skip, timeout: 120_000 }, () => {
  let a: RabbitNode;
  let b: RabbitNode;
  let c: RabbitNode;
  let stopNodes: (() => Promise<void>) | undefined;

  before(async () => {
    const started = await startRabbitNodes([
      { name: 'h4a', port: 5692, distPort: 25692 },
      { name: 'h4b', port: 5693, distPort: 25693 },
      { name: 'h4c', port: 5694, distPort: 25694 },
    ], true);
    stopNodes = started.stop;
    [a, b, c] = started.nodes as [RabbitNode, RabbitNode, RabbitNode];
    console.log(`# rabbitmq: 3 nodes booted in ${started.timings.bootMs} ms, clustered in ${started.timings.clusterMs} ms more`);
    const status = await a.ctl('cluster_status');
    assert.match(status, /h4b@localhost/, 'b joined a');
    assert.match(status, /h4c@localhost/, 'c joined a');
  });

  after(async () => {
    await stopNodes?.();
  });

  it('CELERY_QUEUE_TYPE=quorum: the queue is declared quorum on all three nodes and tasks flow through it; no priorities', async () => {
    const queue = `h4-quorum-${randomUUID().slice(0, 6)}`;
    const env = { CELERY_BROKER_URL: `${a.url};${b.url};${c.url}`, CELERY_QUEUE_TYPE: 'quorum', AUTH: 'none' };
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
      const info = await queueInfo(a, queue);
      for (const n of [a, b, c]) assert.ok(info?.members.includes(n.name), `${n.name} is a member: ${JSON.stringify(info)}`);
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
      // priorities: our config refuses the combination before start-up, and RabbitMQ itself refuses to
      // declare a quorum queue with x-max-priority (what a hand-built broker would run into)
      assert.throws(() => loadConfig({ ...env, CELERY_QUEUE_MAX_PRIORITY: '10' }),
        (err: Error & { code?: string }) => err.code === 'GW_ERR_CONFIG' && /quorum queues have no message priorities/.test(err.message));
      const withPriority = new AmqpBroker({ url: a.url, logger: silentLogger, maxPriority: 10, queueArguments: { 'x-queue-type': 'quorum' } });
      const prioQueue = `h4-quorum-prio-${randomUUID().slice(0, 6)}`;
      try {
        await assert.rejects(withPriority.consume({ queues: [prioQueue], prefetch: 1 }, () => {}),
          (err: Error) => /x-max-priority/.test(err.message), 'RabbitMQ refuses x-max-priority on a quorum queue');
      } finally {
        await withPriority.close();
      }
      assert.equal(await queueInfo(a, prioQueue), undefined, 'no queue was created');
    } finally {
      await gw.close();
      await consumerBroker.close();
    }
  });

  it('URL list + quorum: the node the gateway is on (and the queue leader) stops under load, no 202 is lost', async () => {
    const queue = `h4-qfail-${randomUUID().slice(0, 6)}`;
    const env = { CELERY_BROKER_URL: `${a.url};${b.url};${c.url}`, CELERY_QUEUE_TYPE: 'quorum', AUTH: 'none' };
    const config = loadConfig(env);
    const broker = createBroker(config, silentLogger) as AmqpBroker;
    const gw = await startGateway({ broker, env });
    const redis = new Redis(redisUrl(REDIS_DB));
    const attempts: Attempt[] = [];
    let stop = false;
    let worker: CliProcess | undefined;
    try {
      worker = runCli(['worker', '--tasks', 'examples/tasks.ts', '-Q', queue, '-c', '8', '-n', 'h4-amqp@test'],
        { ...env, CELERY_RESULT_BACKEND: redisUrl(REDIS_DB), LOG_LEVEL: 'info' });
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
      // the queue was declared through node a (worker and gateway), so a leads it (client-local leader)
      const initial = await queueInfo(b, queue);
      assert.ok(initial, 'the queue exists');
      assert.equal(initial.type, 'quorum', JSON.stringify(initial));
      for (const n of [a, b, c]) assert.ok(initial.members.includes(n.name), `${n.name} is a member: ${initial.members}`);
      assert.equal(initial.leader, a.name, 'node a leads the queue');

      const stoppedAt = Date.now();
      await a.stop();
      const stopDoneAt = Date.now();
      await until('the gateway to accept again on another node', async () => {
        const tail = attempts.slice(-50);
        return tail.length === 50 && tail[0]!.at > stopDoneAt && tail.every((x) => x.status === 202);
      }, 30_000);
      stop = true;
      await submitter;
      assert.equal(broker.conn.currentNode, 1, 'now on node b (next in the list)');
      const afterStop = await queueInfo(b, queue);
      assert.ok(afterStop, 'the queue is still there');
      assert.ok([b.name, c.name].includes(afterStop.leader), `a new leader on b or c: ${JSON.stringify(afterStop)}`);

      const failures = attempts.filter((x) => x.status !== 202);
      const accepted = attempts.filter((x) => x.status === 202);
      const lastFailure = failures.at(-1);
      const recoveredAt = attempts.find((x) => x.at > (lastFailure?.at ?? stoppedAt) && x.status === 202)?.at ?? stoppedAt;
      console.log(`# amqp quorum failover: ${attempts.length} submissions, ${accepted.length} accepted (202), ${failures.length} refused (503); ` +
        `rabbitmqctl stop took ${stopDoneAt - stoppedAt} ms; stop → first 202 after the last 503 ${recoveredAt - stoppedAt} ms; ` +
        `new leader ${afterStop.leader}`);
      for (const f of failures) {
        assert.equal(f.status, 503, `only 503s (attempt ${f.i}: ${f.status} ${f.code})`);
        assert.equal(f.code, 'GW_ERR_BROKER_UNAVAILABLE');
        assert.ok(f.at >= stoppedAt - 50, `no failure before the stop (attempt ${f.i})`);
      }
      assert.ok(attempts.filter((x) => x.at >= recoveredAt).every((x) => x.status === 202), 'no 503 after the recovery');

      // every 202 ran on the worker (before the stop through a, after it through b, from the surviving
      // members of the quorum queue): SUCCESS with the right value on the Redis backend
      const results = async (): Promise<Map<string, { status: string; result: unknown }>> => {
        const out = new Map<string, { status: string; result: unknown }>();
        const ids = accepted.map((x) => x.id!);
        for (let k = 0; k < ids.length; k += 200) {
          const chunk = ids.slice(k, k + 200);
          const values = await redis.mget(chunk.map((id) => `celery-task-meta-${id}`));
          values.forEach((v, j) => { if (v) out.set(chunk[j]!, JSON.parse(v) as { status: string; result: unknown }); });
        }
        return out;
      };
      await until('a result for every accepted task', async () => (await results()).size === accepted.length, 30_000, 250).catch(() => undefined);
      const stored = await results();
      const lost = accepted.filter((x) => stored.get(x.id!)?.status !== 'SUCCESS');
      assert.deepEqual(lost.map((x) => x.i), [], `accepted but no SUCCESS: ${lost.length} of ${accepted.length}\n${worker.output().slice(-2000)}`);
      for (const x of accepted) assert.equal(stored.get(x.id!)?.result, x.i + 1, `task ${x.i} computed ${x.i} + 1`);
      assert.match(worker.output(), /AMQP connection lost|reconnecting/i, 'the worker lost node a');
      // and nothing is left behind (a 503'd publish that did arrive was run too)
      await until('the queue to be empty', async () => (await broker.queueLength(queue)) === 0, 10_000, 200);
    } finally {
      stop = true;
      await worker?.stop('SIGKILL');
      await gw.close();
      const ids = attempts.flatMap((x) => (x.id ? [`celery-task-meta-${x.id}`] : []));
      for (let k = 0; k < ids.length; k += 500) await redis.del(...ids.slice(k, k + 500)).catch(() => 0);
      redis.disconnect();
    }
  });
});
