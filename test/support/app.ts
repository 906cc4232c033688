/**
 * Builds a gateway on the in-memory adapters (or given ones) listening on a random loopback port, so
 * tests talk to it over a real socket as curl would.
 */
import type { FastifyInstance } from 'fastify';
import { pino } from 'pino';
import { MemoryBackend } from '../../src/backends/memory.ts';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import type { Broker } from '../../src/brokers/broker.ts';
import type { KeyRing } from '../../src/auth/keys.ts';
import type { TaskRoute } from '../../src/routing.ts';
import { loadConfig, type Config } from '../../src/config.ts';
import type { SharedState } from '../../src/state/shared-state.ts';
import type { Redis } from 'ioredis';
import { buildApp } from '../../src/http/app.ts';

export const silentLogger = pino({ level: process.env['TEST_LOG_LEVEL'] ?? 'silent' });

export interface TestGateway {
  app: FastifyInstance;
  broker: Broker;
  backend: ResultBackend;
  base: string;
  post(path: string, body?: unknown, headers?: Record<string, string>): Promise<{ status: number; json: any; headers: Headers }>;
  get(path: string): Promise<{ status: number; json: any; headers: Headers }>;
  close(): Promise<void>;
}

export interface GatewayOptions {
  broker?: Broker;
  backend?: ResultBackend;
  env?: Record<string, string>;
  keys?: KeyRing;
  state?: SharedState;
  rateLimitRedis?: Redis;
  replyTo?: string;
  routes?: readonly TaskRoute[];
}

export async function startGateway(opts: GatewayOptions = {}): Promise<TestGateway> {
  const broker = opts.broker ?? new MemoryBroker();
  const backend = opts.backend ?? new MemoryBackend({ submittedTtlSec: 3600 });
  const config: Config = loadConfig(opts.env ?? {});
  const app = await buildApp({
    broker, backend, config, logger: silentLogger,
    ...(opts.keys ? { keys: opts.keys } : {}),
    ...(opts.state ? { state: opts.state } : {}),
    ...(opts.rateLimitRedis ? { rateLimitRedis: opts.rateLimitRedis } : {}),
    ...(opts.replyTo ? { replyTo: opts.replyTo } : {}),
    ...(opts.routes ? { routes: opts.routes } : {}),
  });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const port = typeof address === 'object' && address ? address.port : 0;
  const base = `http://127.0.0.1:${port}`;
  const call = async (method: string, path: string, body?: unknown, headers: Record<string, string> = {}) => {
    const init: RequestInit = { method, headers: { ...headers } };
    if (body !== undefined) {
      init.body = typeof body === 'string' ? body : JSON.stringify(body);
      (init.headers as Record<string, string>)['content-type'] ??= 'application/json';
    }
    const res = await fetch(base + path, init);
    const text = await res.text();
    let json: unknown = text;
    try { json = JSON.parse(text); } catch { /* not JSON */ }
    return { status: res.status, json: json as any, headers: res.headers };
  };
  return {
    app, broker, backend, base,
    post: (path, body, headers) => call('POST', path, body, headers),
    get: (path) => call('GET', path),
    close: async () => { await app.close(); await broker.close(); await backend.close(); },
  };
}
