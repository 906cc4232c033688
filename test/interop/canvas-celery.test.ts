/**
 * Canvas interop on Redis and on RabbitMQ (Redis results) with REAL Python Celery 5.2.6: workflows submitted through POST /workflows
 * whose steps alternate between a task only the Python worker has (its own queue) and one only our
 * Node worker has; and chain / group / chord built by the real Python client over Node-only tasks.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { RedisBackend } from '../../src/backends/redis.ts';
import { AmqpBroker } from '../../src/brokers/amqp.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import { RedisBroker } from '../../src/brokers/redis.ts';
import { amqpUrl, rabbitGate } from '../support/services.ts';
import { TaskRegistry } from '../../src/worker/registry.ts';
import { Worker } from '../../src/worker/worker.ts';
import { silentLogger, startGateway, type TestGateway } from '../support/app.ts';
import { celeryGate, redisGate, runCeleryClient, startCeleryWorker, type CeleryWorker } from '../support/python.ts';

const REDIS_URL = 'redis://127.0.0.1:6379/15';
const skip = (await celeryGate()) || (await redisGate(REDIS_URL));
const amqpSkip = skip || (await rabbitGate());
const tag = `${process.pid}-${Date.now().toString(36)}`;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The same workflows on each broker; results always on the Redis backend (chords need it). */
function canvasInterop(name: string, brokerUrl: string, makeBroker: () => Broker, skipReason: string | false): void {
const urls = { brokerUrl, backendUrl: REDIS_URL };
describe(`canvas across Python and Node workers (${name})`, { skip: skipReason }, () => {
  const pyQueue = `canvas-py-${tag}`;
  const nodeQueue = `canvas-node-${tag}`;
  let py: CeleryWorker;
  let gw: TestGateway;
  let worker: Worker;
  let broker: Broker;
  let backend: RedisBackend;

  /** a step only the Python worker can run / only ours can run */
  const pyStep = (task: string, ...args: unknown[]) => ({ task: `tasks.${task}`, args, options: { queue: pyQueue } });
  const nodeStep = (task: string, ...args: unknown[]) => ({ task: `node.${task}`, args, options: { queue: nodeQueue } });

  async function run(spec: unknown, also: (wf: any) => boolean = () => true): Promise<{ sent: any; done: any }> {
    const res = await gw.post('/workflows', spec);
    assert.equal(res.status, 202, JSON.stringify(res.json));
    const deadline = Date.now() + 20_000;
    for (;;) {
      const wf = await gw.get(`/workflows/${res.json.id}`);
      if (['succeeded', 'failed', 'revoked'].includes(wf.json.state) && also(wf.json)) return { sent: res.json, done: wf.json };
      if (Date.now() > deadline) assert.fail(`workflow still ${wf.json.state}: ${JSON.stringify(wf.json.tree)}\n${py.logs()}`);
      await sleep(50);
    }
  }

  before(async () => {
    broker = makeBroker();
    backend = new RedisBackend({ url: REDIS_URL, logger: silentLogger });
    const registry = new TaskRegistry().registerAll({
      'node.add': (x: number, y: number) => x + y,
      'node.mul': (x: number, y: number) => x * y,
      'node.xsum': (numbers: number[]) => numbers.reduce((a, b) => a + b, 0),
    });
    worker = new Worker({ broker, backend, registry, queues: [nodeQueue], concurrency: 4, prefetchMultiplier: 4, hostname: `canvas.${process.pid}@test`, logger: silentLogger, shutdownTimeout: 5, defaultQueue: nodeQueue });
    [py] = await Promise.all([startCeleryWorker({ ...urls, queues: [pyQueue], concurrency: 2 }), worker.start()]);
    gw = await startGateway({ broker: makeBroker(), backend: new RedisBackend({ url: REDIS_URL, logger: silentLogger }) });
  });
  after(async () => {
    await gw?.close();
    await worker?.close();
    await broker?.close();
    await backend?.close();
    await py?.stop();
  });

  it('a chain alternating Python-only and Node-only steps; Python reads the final result too', async () => {
    const { sent, done } = await run({ chain: [pyStep('add', 2, 3), nodeStep('mul', 10), pyStep('add', 1), nodeStep('mul', 2)] });
    assert.equal(done.state, 'succeeded', JSON.stringify(done.tree));
    assert.deepEqual(done.tree.steps.map((s: any) => s.result), [5, 50, 51, 102]);
    // each worker listed the step it published in children, with the ids Python and we pre-assigned
    const ids = sent.tree.steps.map((s: any) => s.id);
    for (let i = 0; i < 3; i += 1) assert.deepEqual((await backend.get(ids[i]))?.children, [[[ids[i + 1], null], null]], `children of step ${i + 1}`);
    const r = await runCeleryClient(['get', sent.tree.id, '--timeout', '10'], urls);
    assert.deepEqual([r.code, r.json.result], [0, 102], r.stdout + r.stderr);
  });

  it('chords: Node header with a Python body, and a Python header with a Node body', async () => {
    const [nodeHeader, pyHeader] = await Promise.all([
      run({ chord: { header: [nodeStep('add', 1, 1), nodeStep('add', 2, 2), nodeStep('mul', 3, 3)], body: pyStep('xsum') } }),
      run({ chord: { header: [pyStep('add', 1, 1), pyStep('mul', 2, 2), pyStep('add', 3, 3)], body: nodeStep('xsum') } }),
    ]);
    assert.equal(nodeHeader.done.state, 'succeeded', JSON.stringify(nodeHeader.done.tree));
    assert.equal(nodeHeader.done.tree.result, 15);
    assert.equal(pyHeader.done.state, 'succeeded', JSON.stringify(pyHeader.done.tree));
    assert.equal(pyHeader.done.tree.result, 12);
  });

  it('a group with members on both workers, and a chain ending in a mixed chord', async () => {
    const [group, chain] = await Promise.all([
      run({ group: [pyStep('add', 1, 2), nodeStep('mul', 3, 4), pyStep('mul', 5, 6)] }),
      run({ chain: [nodeStep('add', 1, 1), { group: [pyStep('mul', 2), nodeStep('mul', 3)] }, pyStep('xsum'), nodeStep('mul', 10)] }),
    ]);
    assert.equal(group.done.state, 'succeeded', JSON.stringify(group.done.tree));
    assert.deepEqual(group.done.tree.result, [3, 12, 30]);
    assert.equal(chain.done.state, 'succeeded', JSON.stringify(chain.done.tree));
    assert.equal(chain.done.tree.result, 100);
  });

  it('a failing Python step fails the rest of the chain, run on Node, and fires a Node errback', async () => {
    const { sent, done } = await run({ chain: [nodeStep('add', 1, 1), { ...pyStep('fail'), immutable: true, options: { queue: pyQueue, link_error: nodeStep('add', 'x') } }, nodeStep('mul', 2)] }, (wf) => wf.tree.steps[2].state !== 'PENDING');
    assert.equal(done.state, 'failed');
    assert.deepEqual(done.tree.steps.map((s: any) => [s.state, s.error?.type ?? null]), [['SUCCESS', null], ['FAILURE', 'ValueError'], ['FAILURE', 'ValueError']]);
    // Python published the errback as a group with [failed id] prepended; our worker ran it
    const errbackId = sent.tree.steps[1].link_error[0].id;
    const deadline = Date.now() + 10_000;
    while (!(await backend.get(errbackId)) && Date.now() < deadline) await sleep(50);
    assert.equal((await backend.get(errbackId))?.result, `${sent.tree.steps[1].id}x`);
  });

  it('chain, group and chord built by the real Python client over Node-only tasks', async () => {
    const opts = ['--queue', nodeQueue, '--timeout', '20'];
    const [chain, group, chord] = await Promise.all([
      runCeleryClient(['chain', 'node.add 2 3', 'node.mul 10', '!node.add 1 1', 'node.add 1', ...opts], urls),
      runCeleryClient(['group', 'node.add 1 1', 'node.mul 2 3', 'node.add 3 3', ...opts], urls),
      runCeleryClient(['chord', 'node.add 1 1', 'node.add 2 2', 'node.mul 3 3', '--body', 'node.xsum', ...opts], urls),
    ]);
    assert.deepEqual([chain.code, chain.json.result], [0, 3], chain.stdout + chain.stderr);
    assert.deepEqual([group.code, group.json.result], [0, [2, 6, 6]], group.stdout + group.stderr);
    assert.deepEqual([chord.code, chord.json.result], [0, 15], chord.stdout + chord.stderr);
  });
});
}

canvasInterop('Redis', REDIS_URL, () => new RedisBroker({ url: REDIS_URL, logger: silentLogger }), skip);
canvasInterop('RabbitMQ, Redis results', amqpUrl(), () => new AmqpBroker({ url: amqpUrl(), logger: silentLogger }), amqpSkip);
