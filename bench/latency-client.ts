/**
 * The Node side of the latency benchmark, in its own process as Celery's client is in its own
 * (bench/celery_roundtrip.py): the benchmark harness's heap and timers stay out of the figures.
 * `node --import tsx bench/latency-client.ts <port> <round trips> <warm-up trips>`: submits tasks.add(1, 2),
 * long-polls its result, one round trip at a time over one kept-alive connection, after the warm-up
 * trips; prints {"p50": ms, "p99": ms} on its last line.
 */
import { Agent, request } from 'node:http';

const port = Number(process.argv[2] ?? 18082);
const count = Number(process.argv[3] ?? 1000);
const warmup = Number(process.argv[4] ?? 2000);
const agent = new Agent({ keepAlive: true, maxSockets: 1 });

/**
 * One request on a kept-alive connection with node:http, as a lean client (curl, Go's net/http) makes
 * it. Node's fetch (undici) adds 0.5-1 ms per request of its own on this machine (p50 1.2-1.5 ms
 * against 0.3-1.0 ms for the same POST to the bare ceiling route), which would be measured as ours.
 */
function httpJson(method: string, path: string, body?: string): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent, headers: body === undefined ? {} : { 'content-type': 'application/json' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => { text += chunk; });
      res.on('end', () => { try { resolve(JSON.parse(text)); } catch (err) { reject(err); } });
    });
    req.on('error', reject);
    req.end(body);
  });
}

const times: number[] = [];
for (let i = 0; i < warmup + count; i += 1) {
  const t0 = performance.now();
  const { id } = (await httpJson('POST', '/tasks/tasks.add', '{"args":[1,2]}')) as { id: string };
  const got = (await httpJson('GET', `/results/${id}?wait=10`)) as { result: number };
  if (got.result !== 3) throw new Error(`bad result ${JSON.stringify(got)}`);
  if (i >= warmup) times.push(performance.now() - t0);
}
agent.destroy();
times.sort((a, b) => a - b);
const pct = (p: number): number => times[Math.floor((times.length - 1) * p)] ?? NaN;
process.stdout.write(`${JSON.stringify({ p50: pct(0.5), p99: pct(0.99) })}\n`);
