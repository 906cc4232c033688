/**
 * Graceful close over raw keep-alive sockets against a real listening server: during app.close() (what
 * SIGTERM runs), in-flight requests (a submit, a long-poll) complete, a request pipelined behind them
 * gets 503 GW_ERR_SHUTTING_DOWN in our JSON shape with `Connection: close`, idle kept-alive connections
 * are closed, and the close does not wait for keep-alive timeouts. Memory adapters, one slowed down.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import net from 'node:net';
import { describe, it } from 'node:test';
import type { FastifyInstance } from 'fastify';
import { MemoryBackend } from '../../src/backends/memory.ts';
import type { Route } from '../../src/brokers/broker.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { loadConfig } from '../../src/config.ts';
import { buildApp } from '../../src/http/app.ts';
import type { RawMessage } from '../../src/protocol/types.ts';
import { silentLogger } from '../support/app.ts';
import { runCli } from '../support/cli.ts';

/** A broker whose publishes of `slow.*` tasks wait until release(). */
class GatedBroker extends MemoryBroker {
  release!: () => void;
  readonly #gate = new Promise<void>((resolve) => { this.release = resolve; });
  reached!: () => void;
  readonly atGate = new Promise<void>((resolve) => { this.reached = resolve; });
  override async publish(message: RawMessage, route: Route): Promise<void> {
    if (String(message.headers['task']).startsWith('slow.')) {
      this.reached();
      await this.#gate;
    }
    return super.publish(message, route);
  }
}

interface RawResponse { status: number; headers: Record<string, string>; body: string }

/** A raw HTTP/1.1 connection: write requests (pipelined if you like), collect every response. */
class RawConnection {
  readonly socket: net.Socket;
  #buffer = '';
  readonly responses: RawResponse[] = [];
  readonly closed: Promise<void>;
  #waiters = new Set<() => void>();

  constructor(port: number) {
    this.socket = net.connect(port, '127.0.0.1');
    this.socket.setEncoding('utf8');
    this.socket.on('data', (chunk: string) => { this.#buffer += chunk; this.#parse(); });
    this.closed = new Promise((resolve) => this.socket.once('close', () => { resolve(); for (const w of this.#waiters) w(); }));
  }

  static async open(port: number): Promise<RawConnection> {
    const c = new RawConnection(port);
    await new Promise<void>((resolve, reject) => { c.socket.once('connect', resolve); c.socket.once('error', reject); });
    return c;
  }

  send(method: string, path: string, body?: unknown): void {
    const text = body === undefined ? '' : JSON.stringify(body);
    const headers = [`${method} ${path} HTTP/1.1`, 'Host: 127.0.0.1', 'Connection: keep-alive'];
    if (body !== undefined) headers.push('Content-Type: application/json', `Content-Length: ${Buffer.byteLength(text)}`);
    this.socket.write(`${headers.join('\r\n')}\r\n\r\n${text}`);
  }

  #parse(): void {
    for (;;) {
      const end = this.#buffer.indexOf('\r\n\r\n');
      if (end === -1) return;
      const [statusLine = '', ...lines] = this.#buffer.slice(0, end).split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const i = line.indexOf(':');
        headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
      }
      const length = Number(headers['content-length'] ?? 0);
      if (this.#buffer.length < end + 4 + length) return; // ASCII bodies only here
      this.responses.push({ status: Number(statusLine.split(' ')[1]), headers, body: this.#buffer.slice(end + 4, end + 4 + length) });
      this.#buffer = this.#buffer.slice(end + 4 + length);
      for (const w of this.#waiters) w();
    }
  }

  /** Resolves once `n` responses arrived (rejects if the connection closes first or after timeoutMs). */
  waitFor(n: number, timeoutMs = 5000): Promise<RawResponse[]> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => { this.#waiters.delete(check); reject(new Error(`${this.responses.length} of ${n} responses within ${timeoutMs} ms`)); }, timeoutMs);
      const check = (): void => {
        if (this.responses.length >= n) { clearTimeout(timer); this.#waiters.delete(check); resolve(this.responses); }
        else if (this.socket.destroyed) { clearTimeout(timer); this.#waiters.delete(check); reject(new Error(`connection closed after ${this.responses.length} of ${n} responses`)); }
      };
      this.#waiters.add(check);
      check();
    });
  }
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

async function listen(broker: MemoryBroker): Promise<{ app: FastifyInstance; port: number; backend: MemoryBackend }> {
  const backend = new MemoryBackend({ submittedTtlSec: 3600 });
  const app = await buildApp({ broker, backend, config: loadConfig({ MAX_WAIT_SECONDS: '60' }), logger: silentLogger });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  return { app, backend, port: typeof address === 'object' && address ? address.port : 0 };
}

describe('graceful close', () => {
  it('finishes in-flight requests, answers requests pipelined behind them 503 GW_ERR_SHUTTING_DOWN + Connection: close, closes idle connections', async () => {
    const broker = new GatedBroker();
    const { app, port, backend } = await listen(broker);

    // an idle kept-alive connection, and a task to long-poll on
    const idle = await RawConnection.open(port);
    idle.send('POST', '/tasks/tasks.add', { args: [1, 2] });
    const [submitted] = await idle.waitFor(1);
    assert.equal(submitted!.status, 202);
    assert.notEqual(submitted!.headers['connection'], 'close');
    const taskId = JSON.parse(submitted!.body).id as string;

    // in flight when the close begins: a submit held by the broker, and a long-poll
    const busy = await RawConnection.open(port);
    busy.send('POST', '/tasks/slow.report', { args: ['r1'] });
    await broker.atGate;
    const poll = await RawConnection.open(port);
    poll.send('GET', `/results/${taskId}?wait=30`);
    await sleep(100);
    assert.equal(poll.responses.length, 0, 'the long-poll is waiting');

    const started = Date.now();
    let closedAt = 0;
    const closing = app.close().then(() => { closedAt = Date.now(); });
    await sleep(50);

    // the long-poll is woken by the close and answers the current state at once
    const [polled] = await poll.waitFor(1);
    assert.equal(polled!.status, 200);
    assert.equal(JSON.parse(polled!.body).state, 'PENDING');
    assert.equal(polled!.headers['connection'], 'close');
    await poll.closed;
    // the idle kept-alive connection was closed by the server
    await idle.closed;

    // a new request on the busy kept-alive connection, pipelined behind the submit
    busy.send('GET', '/healthz');
    await sleep(100);
    broker.release();
    const [first, second] = await busy.waitFor(2);
    assert.equal(first!.status, 202, 'the in-flight submit completes');
    assert.equal(JSON.parse(first!.body).task, 'slow.report');
    assert.equal(await broker.queueLength('celery'), 2, 'and its message was published');
    assert.equal(second!.status, 503);
    assert.equal(second!.headers['connection'], 'close');
    assert.match(second!.headers['content-type'] ?? '', /application\/json/);
    assert.deepEqual(JSON.parse(second!.body), {
      statusCode: 503, code: 'GW_ERR_SHUTTING_DOWN', error: 'Service Unavailable', message: 'the gateway is shutting down: retry on another instance',
    });
    assert.equal(second!.headers['retry-after'], '1');
    await busy.closed;

    await closing;
    assert.ok(closedAt - started < 3000, `app.close() took ${closedAt - started} ms (no keep-alive timeout wait)`);
    await assert.rejects(RawConnection.open(port), /ECONNREFUSED/);
    await broker.close();
    await backend.close();
  });

  it('SIGTERM to `celery-gateway serve`: a kept-alive long-poll completes, the process exits 0', async () => {
    const cli = runCli(['serve', '--port', '0'], { AUTH: 'none', CELERY_BROKER_URL: 'memory://', MAX_WAIT_SECONDS: '60' });
    const [, port] = await cli.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
    const conn = await RawConnection.open(Number(port));
    conn.send('POST', '/tasks/tasks.add', { args: [1, 2] });
    const [sent] = await conn.waitFor(1);
    const id = JSON.parse(sent!.body).id as string;
    conn.send('GET', `/results/${id}?wait=30`);
    await sleep(200);
    assert.equal(conn.responses.length, 1, 'the long-poll waits (no worker)');
    const started = Date.now();
    cli.child.kill('SIGTERM');
    const [, polled] = await conn.waitFor(2);
    assert.equal(polled!.status, 200);
    assert.equal(JSON.parse(polled!.body).state, 'PENDING');
    assert.equal(polled!.headers['connection'], 'close');
    assert.equal(await cli.stop(), 0);
    assert.ok(Date.now() - started < 5000);
  });

  it('is documented: every operation of openapi/openapi.json lists the 503 with GW_ERR_SHUTTING_DOWN', () => {
    const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        assert.match(op.responses['503']?.description ?? '', /GW_ERR_SHUTTING_DOWN/, `${method} ${path}`);
      }
    }
    // /metrics answers text, but this error in JSON
    assert.ok(doc.paths['/metrics'].get.responses['503'].content['application/json']);
  });
});
