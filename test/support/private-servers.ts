/**
 * Private servers for the chaos and scale-out tests (never the shared ones): a redis-server on a port of our own and a
 * RabbitMQ node `h3chaos@localhost` on AMQP port 5682. Gates skip with a reason when a binary is
 * missing, and throw under CI=true.
 */
import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { chownSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir, userInfo } from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { pingRedis, tcpConnect } from './services.ts';

const run = promisify(execFile);

/** false when `binary` is on PATH (or an absolute path that exists), else a skip reason; throws under CI=true. */
export async function binaryGate(binary: string, hint: string): Promise<string | false> {
  const found = binary.startsWith('/') ? existsSync(binary) : await run('sh', ['-c', `command -v ${binary}`]).then(() => true, () => false);
  if (found) return false;
  const reason = `${binary} not found (${hint})`;
  if (process.env['CI'] === 'true') throw new Error(`${reason}; required under CI=true`);
  return reason;
}

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Polls `fn` until it returns something other than undefined/false (errors count as "not yet"); that value. */
export async function until<T>(what: string, fn: () => Promise<T | undefined | false>, timeoutMs: number, everyMs = 100): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  let last: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false) return v;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}${last ? `: ${(last as Error).message}` : ''}`);
    await sleep(everyMs);
  }
}

/** Rejects when something already listens on `port` (a leftover server would answer in our place). */
async function portFree(port: number): Promise<void> {
  const taken = await tcpConnect('127.0.0.1', port, 300).then(() => true, () => false);
  if (taken) throw new Error(`port ${port} is already in use (a leftover server from an earlier run?): stop it first`);
}

export interface PrivateRedis {
  url(db?: number): string;
  port: number;
  dir: string;
  /** SIGKILL (no shutdown save) and wait for the exit */
  kill(): Promise<void>;
  /** start again on the same port and directory (reads the AOF back); resolves once it answers PING */
  start(): Promise<void>;
  /** stop and remove the directory */
  destroy(): Promise<void>;
}

/** A redis-server on `port` with `--appendonly yes --appendfsync always`: every acknowledged write is on disk. */
export async function startPrivateRedis(port: number, persistence = true): Promise<PrivateRedis> {
  const dir = mkdtempSync(path.join(tmpdir(), `h3-redis-${port}-`));
  let child: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--dir', dir, '--save', '', '--daemonize', 'no', '--loglevel', 'warning',
    ...(persistence ? ['--appendonly', 'yes', '--appendfsync', 'always'] : ['--appendonly', 'no'])];
  const url = (db = 0): string => `redis://127.0.0.1:${port}/${db}`;
  const start = async (): Promise<void> => {
    const c = spawn('redis-server', args, { stdio: ['ignore', 'ignore', 'pipe'] });
    child = c;
    exited = new Promise((resolve) => c.once('exit', () => resolve()));
    process.once('exit', () => c.kill('SIGKILL'));
    await until(`redis-server :${port}`, async () => { await pingRedis(url(), 300); return true; }, 10_000);
  };
  const kill = async (): Promise<void> => {
    if (child && child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  };
  await portFree(port);
  await start();
  return {
    url, port, dir, kill, start,
    destroy: async () => { await kill(); rmSync(dir, { recursive: true, force: true }); },
  };
}

export interface PrivateRabbit {
  url: string;
  node: string;
  /** rabbitmqctl stop_app: the node stays, the broker goes (connections are closed) */
  stopApp(): Promise<void>;
  startApp(): Promise<void>;
  /** `rabbitmqctl -n … stop` and remove the directory */
  destroy(): Promise<void>;
}

export const RABBIT_NODE = 'h3chaos@localhost';
export const RABBIT_PORT = 5682;
const RABBIT_DIST_PORT = 25682;

export function rabbitctl(...args: string[]): Promise<{ stdout: string; stderr: string }> {
  return run('rabbitmqctl', ['-n', RABBIT_NODE, ...args], { timeout: 60_000 });
}

/**
 * A RabbitMQ node of our own (`h3chaos@localhost`, AMQP 5682, distribution 25682, no plugins so no
 * management port), with its own mnesia / log / pid under a temp dir and its own config file (the
 * system one points at the shared node's port). Resolves once AMQP accepts connections.
 */
export async function startPrivateRabbit(): Promise<PrivateRabbit> {
  await portFree(RABBIT_PORT);
  const dir = mkdtempSync(path.join(tmpdir(), 'h3-rabbit-'));
  mkdirSync(path.join(dir, 'mnesia'));
  mkdirSync(path.join(dir, 'log'));
  writeFileSync(path.join(dir, 'enabled_plugins'), '[].\n');
  writeFileSync(path.join(dir, 'rabbitmq.conf'), `listeners.tcp.local = 127.0.0.1:${RABBIT_PORT}\nloopback_users = none\n`);
  writeFileSync(path.join(dir, 'rabbitmq-env.conf'), `NODENAME=${RABBIT_NODE}\nERL_EPMD_ADDRESS=127.0.0.1\n`);
  // run as root, the rabbitmq scripts switch to the rabbitmq user: it must own the directory
  if (userInfo().uid === 0) {
    const ids = await run('id', ['-u', 'rabbitmq']).then(async (u) => [Number(u.stdout), Number((await run('id', ['-g', 'rabbitmq'])).stdout)] as const, () => null);
    if (ids) for (const p of ['', 'mnesia', 'log', 'enabled_plugins', 'rabbitmq.conf', 'rabbitmq-env.conf']) chownSync(path.join(dir, p), ids[0], ids[1]);
  }
  const env = {
    ...process.env,
    RABBITMQ_CONF_ENV_FILE: path.join(dir, 'rabbitmq-env.conf'),
    RABBITMQ_CONFIG_FILE: path.join(dir, 'rabbitmq.conf'),
    RABBITMQ_NODENAME: RABBIT_NODE,
    RABBITMQ_NODE_PORT: String(RABBIT_PORT),
    RABBITMQ_DIST_PORT: String(RABBIT_DIST_PORT),
    RABBITMQ_MNESIA_BASE: path.join(dir, 'mnesia'),
    RABBITMQ_LOG_BASE: path.join(dir, 'log'),
    RABBITMQ_PID_FILE: path.join(dir, 'pid'),
    RABBITMQ_ENABLED_PLUGINS_FILE: path.join(dir, 'enabled_plugins'),
  };
  const child = spawn('rabbitmq-server', [], { cwd: dir, env, stdio: ['ignore', 'ignore', 'ignore'], detached: false });
  let output = '';
  const stopNode = async (): Promise<void> => {
    await rabbitctl('stop').catch(() => {});
    if (child.exitCode === null && child.signalCode === null) {
      await Promise.race([new Promise((r) => child.once('exit', r)), sleep(10_000)]);
    }
  };
  process.once('exit', () => { try { child.kill('SIGKILL'); } catch { /* gone */ } });
  try {
    await until(`RabbitMQ node ${RABBIT_NODE}`, async () => { await tcpConnect('127.0.0.1', RABBIT_PORT, 300); return true; }, 60_000);
    await rabbitctl('await_startup');
  } catch (err) {
    await stopNode();
    output = (err as Error).message;
    rmSync(dir, { recursive: true, force: true });
    throw new Error(`cannot start ${RABBIT_NODE}: ${output}`);
  }
  return {
    url: `amqp://guest:guest@127.0.0.1:${RABBIT_PORT}//`,
    node: RABBIT_NODE,
    stopApp: async () => { await rabbitctl('stop_app'); },
    startApp: async () => { await rabbitctl('start_app'); },
    destroy: async () => { await stopNode(); rmSync(dir, { recursive: true, force: true }); },
  };
}
