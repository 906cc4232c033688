/**
 * Test harness for interop with REAL Python Celery 5.2.6 (Debian python3-celery).
 *
 * Drives `<repo>/../shared/interop/python` (tasks.py + client.py):
 *   - startCeleryWorker(): a real `celery worker` process, resolved once `<node> ready.` is logged.
 *   - runCeleryClient():   one `client.py …` invocation, its JSON output parsed.
 *   - celeryGate() / redisGate() / rabbitGate(): `describe(…, { skip: await xGate() }, …)`
 *     values; they skip locally with a reason but THROW under CI=true.
 *
 * Broker/backend URLs are passed to each child only (CELERY_BROKER_URL / CELERY_RESULT_BACKEND).
 * Inherited CELERY_* variables are dropped from the child env, so a gateway test that sets
 * process.env.CELERY_* never leaks into the Python processes (pass extraEnv instead).
 *
 * Children are started through a tiny Python wrapper that sets PR_SET_PDEATHSIG(SIGTERM) and
 * then exec()s the real command, so a Celery worker dies with the node test process even when
 * node is killed by a signal. Celery's prefork pool children already use PDEATHSIG(SIGKILL).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { pingRedis, serviceGate, tcpConnect } from './services.ts';

export const PYTHON = '/usr/bin/python3';

const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export function repoRoot(): string {
  return REPO_ROOT;
}

export function interopDir(): string {
  const fromEnv = process.env.INTEROP_DIR;
  return fromEnv ? path.resolve(fromEnv) : path.resolve(REPO_ROOT, '../shared/interop/python');
}

export function isCI(): boolean {
  return process.env.CI === 'true';
}

/** Skip reason locally; under CI=true a missing dependency is a failure. */
function gateResult(reason: string | false): string | false {
  if (reason !== false && isCI()) {
    throw new Error(`${reason} (CI=true: required, not skipping)`);
  }
  return reason;
}

// ---------------------------------------------------------------------------
// Child processes

/**
 * Sets PDEATHSIG (Linux; ignored elsewhere), bails out if the parent is already gone, then exec()s
 * argv[1:]. PDEATHSIG survives execve(2), so the real program inherits it.
 */
const PDEATHSIG_WRAPPER = [
  'import os, signal, sys',
  'try:',
  '    import ctypes',
  "    ctypes.CDLL(None, use_errno=True).prctl(1, int(signal.SIGTERM), 0, 0, 0)",
  'except Exception:',
  '    pass',
  'if os.getppid() != int(sys.argv[1]):',
  '    sys.exit(143)',
  'os.execv(sys.argv[2], sys.argv[2:])',
].join('\n');

function pythonEnv(brokerUrl: string, backendUrl: string, extraEnv?: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(process.env)) {
    if (k.startsWith('CELERY_') || k === 'PYTHONPATH' || k === 'PYTHONHOME') continue;
    env[k] = v;
  }
  env.PYTHONUNBUFFERED = '1';
  env.PYTHONDONTWRITEBYTECODE = '1';
  env.CELERY_BROKER_URL = brokerUrl;
  env.CELERY_RESULT_BACKEND = backendUrl;
  return { ...env, ...(extraEnv ?? {}) };
}

function spawnPython(args: string[], env: NodeJS.ProcessEnv): ChildProcess {
  return spawn(PYTHON, ['-c', PDEATHSIG_WRAPPER, String(process.pid), PYTHON, ...args], {
    cwd: interopDir(),
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
}

type Unrefable = { ref?: () => void; unref?: () => void };

function setRef(child: ChildProcess, ref: boolean): void {
  for (const h of [child, child.stdout, child.stderr] as unknown as Unrefable[]) {
    if (!h) continue;
    if (ref) h.ref?.();
    else h.unref?.();
  }
}

/** Keeps the last `max` lines of a stream of chunks. */
class LineRing {
  private lines: string[] = [];
  private partial = '';
  constructor(private readonly max: number) {}
  push(chunk: string): string[] {
    const parts = (this.partial + chunk).split('\n');
    this.partial = parts.pop() ?? '';
    for (const l of parts) this.lines.push(l);
    if (this.lines.length > this.max) this.lines.splice(0, this.lines.length - this.max);
    return parts;
  }
  text(): string {
    return [...this.lines, ...(this.partial ? [this.partial] : [])].join('\n');
  }
}

// Workers still running when the node process exits get SIGKILLed (pool children follow through
// their own PDEATHSIG). Normal termination of node also triggers the wrapper's PDEATHSIG.
const liveChildren = new Set<ChildProcess>();
let exitHookInstalled = false;
function track(child: ChildProcess): void {
  liveChildren.add(child);
  child.once('exit', () => liveChildren.delete(child));
  if (!exitHookInstalled) {
    exitHookInstalled = true;
    process.on('exit', () => {
      for (const c of liveChildren) {
        try {
          c.kill('SIGKILL');
        } catch {
          /* already gone */
        }
      }
    });
  }
}

function exited(child: ChildProcess): boolean {
  return child.exitCode !== null || child.signalCode !== null;
}

// ---------------------------------------------------------------------------
// Gates

let celeryProbe: Promise<string | false> | undefined;

function probeCelery(): Promise<string | false> {
  const dir = interopDir();
  if (!existsSync(path.join(dir, 'tasks.py')) || !existsSync(path.join(dir, 'client.py'))) {
    return Promise.resolve(`Celery interop harness not found at ${dir} (set INTEROP_DIR)`);
  }
  if (!existsSync(PYTHON)) return Promise.resolve(`${PYTHON} not found`);
  return new Promise((resolve) => {
    const p = spawn(PYTHON, ['-c', 'import celery, kombu, redis, amqp; print(celery.__version__)'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.on('error', (e) => resolve(`cannot run ${PYTHON}: ${e.message}`));
    p.on('close', (code) => {
      if (code === 0) resolve(false);
      else {
        const last = out.trim().split('\n').pop() ?? '';
        resolve(`python Celery not importable by ${PYTHON} (apt-get install python3-celery python3-redis): ${last}`);
      }
    });
  });
}

/**
 * false when /usr/bin/python3 can import celery (+ kombu, redis, amqp) and the interop dir exists,
 * else a skip reason. Under CI=true it throws instead.
 */
export async function celeryGate(): Promise<string | false> {
  celeryProbe ??= probeCelery();
  return gateResult(await celeryProbe);
}

/** Redis by URL (a real PING), for tests that hold a URL rather than a db number; see services.ts. */
export function redisGate(url = 'redis://127.0.0.1:6379'): Promise<string | false> {
  return serviceGate('redis', () => pingRedis(url));
}

/** RabbitMQ by URL (a TCP connect); see services.ts. */
export function rabbitGate(url = 'amqp://guest:guest@127.0.0.1:5672//'): Promise<string | false> {
  const u = new URL(url);
  return serviceGate('rabbitmq', () => tcpConnect(u.hostname || '127.0.0.1', u.port ? Number(u.port) : 5672));
}

// ---------------------------------------------------------------------------
// Worker

export interface CeleryWorkerOptions {
  brokerUrl: string;
  backendUrl: string;
  /** -Q; default: Celery's default queue ("celery", or CELERY_DEFAULT_QUEUE in extraEnv). */
  queues?: string[];
  /** Node name (with or without "@host"); default a unique `pyw-<pid>-<n>-<rand>@example`. */
  nodeName?: string;
  /** -c; default 2 (ignored by Celery for pool 'solo'). */
  concurrency?: number;
  /** default 'prefork' (Celery's default). */
  pool?: 'solo' | 'prefork' | 'threads';
  /** e.g. { CELERY_RESULT_EXTENDED: '1', CELERY_SEND_EVENTS: '1', CELERY_DEFAULT_QUEUE: 'q' }. */
  extraEnv?: Record<string, string>;
  /** Keep worker event heartbeats (default false: --without-heartbeat). */
  heartbeat?: boolean;
  /** -E: send task events (default false). */
  events?: boolean;
  /** Appended verbatim to the worker command line. */
  extraArgs?: string[];
  /** Startup timeout, default 30 s. */
  startTimeoutMs?: number;
}

export interface CeleryWorker {
  pid: number;
  /** Full node name, e.g. `pyw-123-1-ab12@example`. */
  nodeName: string;
  /** The last ~200 lines of stdout+stderr. */
  logs(): string;
  /** Resolves once a log line matches (checks already-captured lines first). */
  waitForLog(pattern: RegExp, timeoutMs?: number): Promise<string>;
  /** SIGTERM (warm shutdown), SIGKILL after 10 s. Idempotent. */
  stop(): Promise<void>;
}

let nodeCounter = 0;

function uniqueNodeName(): string {
  nodeCounter += 1;
  return `pyw-${process.pid}-${nodeCounter}-${Math.random().toString(36).slice(2, 8)}@example`;
}

export async function startCeleryWorker(opts: CeleryWorkerOptions): Promise<CeleryWorker> {
  const nodeName = opts.nodeName
    ? opts.nodeName.includes('@')
      ? opts.nodeName
      : `${opts.nodeName}@example`
    : uniqueNodeName();
  const pool = opts.pool ?? 'prefork';
  const args = [
    '-m', 'celery', '-A', 'tasks', 'worker',
    '-l', 'INFO',
    '-P', pool,
    '-c', String(opts.concurrency ?? 2),
    '-n', nodeName,
    '--without-mingle',
    '--without-gossip',
  ];
  if (!opts.heartbeat) args.push('--without-heartbeat');
  if (opts.events) args.push('-E');
  if (opts.queues && opts.queues.length > 0) args.push('-Q', opts.queues.join(','));
  if (opts.extraArgs) args.push(...opts.extraArgs);

  const child = spawnPython(args, pythonEnv(opts.brokerUrl, opts.backendUrl, opts.extraEnv));
  track(child);
  const ring = new LineRing(200);
  const listeners = new Set<(line: string) => void>();
  const onData = (d: Buffer) => {
    for (const line of ring.push(d.toString())) for (const l of listeners) l(line);
  };
  child.stdout?.on('data', onData);
  child.stderr?.on('data', onData);
  const exitPromise = new Promise<void>((resolve) => child.once('exit', () => resolve()));

  const waitForLog = (pattern: RegExp, timeoutMs = 30_000): Promise<string> =>
    new Promise((resolve, reject) => {
      const already = ring.text().split('\n').find((l) => pattern.test(l));
      if (already !== undefined) return resolve(already);
      if (exited(child)) return reject(new Error(`celery worker ${nodeName} has exited; logs:\n${ring.text()}`));
      const cleanup = () => {
        clearTimeout(timer);
        listeners.delete(onLine);
        child.off('exit', onExit);
      };
      const onLine = (line: string) => {
        if (pattern.test(line)) {
          cleanup();
          resolve(line);
        }
      };
      const onExit = (code: number | null, signal: NodeJS.Signals | null) => {
        cleanup();
        reject(new Error(`celery worker ${nodeName} exited (code ${code}, signal ${signal}) while waiting for ${pattern}; logs:\n${ring.text()}`));
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern} from celery worker ${nodeName}; logs:\n${ring.text()}`));
      }, timeoutMs);
      listeners.add(onLine);
      child.once('exit', onExit);
    });

  let stopping: Promise<void> | undefined;
  const stop = (): Promise<void> => {
    stopping ??= (async () => {
      if (exited(child) || child.pid === undefined) return;
      setRef(child, true); // keep node alive until the worker is really gone
      child.kill('SIGTERM');
      const killTimer = setTimeout(() => {
        if (!exited(child)) child.kill('SIGKILL');
      }, 10_000);
      await exitPromise;
      clearTimeout(killTimer);
    })();
    return stopping;
  };

  const spawnError = new Promise<never>((_, reject) =>
    child.once('error', (e) => reject(new Error(`cannot spawn ${PYTHON}: ${e.message}`))),
  );
  spawnError.catch(() => {});
  try {
    const readyRe = new RegExp(`${nodeName.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} ready\\.`);
    await Promise.race([waitForLog(readyRe, opts.startTimeoutMs ?? 30_000), spawnError]);
  } catch (err) {
    await stop().catch(() => {});
    throw err;
  }
  // A test that forgets stop() must not keep node alive; the exit hook / PDEATHSIG clean up.
  setRef(child, false);

  return {
    pid: child.pid ?? -1,
    nodeName,
    logs: () => ring.text(),
    waitForLog,
    stop,
  };
}

// ---------------------------------------------------------------------------
// Client

export interface CeleryClientOptions {
  brokerUrl: string;
  backendUrl: string;
  /** Kill the client after this long (default 60 s) and reject. Pass client.py's own --timeout for waits. */
  timeoutMs?: number;
  extraEnv?: Record<string, string>;
}

export interface CeleryClientResult {
  /** Exit status: 0 SUCCESS / --no-wait, 1 FAILURE/REVOKED/timeout, 2 client raised or usage error. */
  code: number;
  /** The parsed JSON object client.py printed (last JSON line of stdout), or null. */
  json: any;
  stdout: string;
  stderr: string;
}

/** Runs `/usr/bin/python3 client.py ...args` in the interop dir. */
export function runCeleryClient(args: string[], opts: CeleryClientOptions): Promise<CeleryClientResult> {
  const timeoutMs = opts.timeoutMs ?? 60_000;
  return new Promise((resolve, reject) => {
    const child = spawnPython(['client.py', ...args], pythonEnv(opts.brokerUrl, opts.backendUrl, opts.extraEnv));
    track(child);
    let stdout = '';
    let stderr = '';
    child.stdout?.on('data', (d: Buffer) => (stdout += d.toString()));
    child.stderr?.on('data', (d: Buffer) => (stderr += d.toString()));
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      child.kill('SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`cannot spawn ${PYTHON}: ${e.message}`));
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      if (timedOut) {
        reject(new Error(`client.py ${args.join(' ')} timed out after ${timeoutMs} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`));
        return;
      }
      let json: unknown = null;
      const lines = stdout.split('\n').map((l) => l.trim()).filter((l) => l.startsWith('{'));
      for (let i = lines.length - 1; i >= 0 && json === null; i--) {
        try {
          json = JSON.parse(lines[i]!);
        } catch {
          /* not JSON */
        }
      }
      resolve({ code: code ?? (signal ? 128 : -1), json, stdout, stderr });
    });
  });
}
