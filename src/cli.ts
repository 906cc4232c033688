/**
 * The only entry point: `celery-gateway serve | worker | dev`. The only module that listens, exits or
 * reads process.env / argv.
 */
import { randomUUID } from 'node:crypto';
import { availableParallelism, hostname as osHostname } from 'node:os';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import type { Logger } from 'pino';
import { hashKey } from './auth/keys.ts';
import { startBeat } from './beat/beat.ts';
import { CATCH_UP_POLICIES, type CatchUp } from './beat/entry.ts';
import type { ScheduleStore } from './beat/store.ts';
import { createBackend, createBroker, createScheduleStore, createSharedState, loadKeys } from './compose.ts';
import { Producer } from './producer.ts';
import { parseTaskRoutes, type TaskRoute } from './routing.ts';
import { RevokedCache } from './state/revoked.ts';
import { loadConfig, SETTINGS, type Config } from './config.ts';
import { GatewayError } from './errors.ts';
import { buildApp } from './http/app.ts';
import { GatewayMetrics } from './http/metrics.ts';
import { loadTaskRegistry, publishRoutes } from './http/task-registry.ts';
import { createLogger } from './log.ts';
import { banner } from './worker/banner.ts';
import { loadTaskModule } from './worker/registry.ts';
import { ThreadPool } from './worker/thread-pool.ts';
import { Worker } from './worker/worker.ts';

export const VERSION = '0.1.0';
const EXAMPLE_TASKS = fileURLToPath(new URL('../examples/tasks.ts', import.meta.url));
const EXAMPLE_SCHEDULE = fileURLToPath(new URL('../examples/schedule.json', import.meta.url));

const HELP = `celery-gateway ${VERSION}: an HTTP gateway and Node worker for Celery

Usage:
  celery-gateway serve  [--host H] [--port P]          the HTTP gateway
  celery-gateway worker --tasks FILE [options]         a Node worker running FILE's handlers
  celery-gateway beat   [--schedule FILE] [--catch-up once|skip]
                                                       publish periodic tasks (run any number: one leads)
  celery-gateway dev    [--tasks FILE] [--schedule FILE] [--port P]
                                                       gateway + worker + beat in one process (npm start)
  celery-gateway hash-key KEY                          print the hash to put in API_KEYS for KEY
  celery-gateway --help | --version

Worker options:
  -A, --tasks FILE          module whose default export maps task names to handlers (.js or .ts)
  -Q, --queues Q1,Q2        queues to consume (default: CELERY_DEFAULT_QUEUE plus the tasks' declared queues)
  -c, --concurrency N       tasks run at once (default 8; with --pool threads: the number of threads, default the cores)
  -P, --pool async|threads  async (default): handlers on the event loop; threads: each in a worker thread
                            (CPU-bound handlers; time limits and terminate stop them for real)
  -n, --hostname NAME       node name (default node.<pid>@<host>)
      --prefetch-multiplier N
  -E, --events              send task-* Celery events (CELERY_WORKER_SEND_TASK_EVENTS); worker-* always

Environment (defaults in brackets):
${Object.values(SETTINGS).map((s) => `  ${s.env.padEnd(34)} ${s.doc} [${s.default || 'see text'}]`).join('\n')}
`;

/** `celery-gateway <command> --help` */
const COMMAND_HELP: Record<string, string> = {
  serve: `celery-gateway serve [--host H] [--port P] [-l LEVEL]
  The HTTP gateway. Requires API keys (API_KEYS / API_KEYS_FILE) unless AUTH=none.
  Broker and results from CELERY_BROKER_URL / CELERY_RESULT_BACKEND; see celery-gateway --help for every variable.
`,
  worker: `celery-gateway worker --tasks FILE [-Q Q1,Q2] [-c N] [-P async|threads] [-n NAME] [--prefetch-multiplier N] [-E] [-l LEVEL]
  A Node worker: runs the handlers FILE exports (default export { "task.name": handler }), JS or TS.
  Late ack; SIGTERM finishes running tasks (SHUTDOWN_TIMEOUT) and returns the rest; a second signal exits.
`,
  beat: `celery-gateway beat [--schedule FILE] [--catch-up once|skip]
  Publishes periodic tasks. Run as many as you like: one leads (Redis lock). FILE is JSON
  {"name": {"task", "args", "kwargs", "options", "every" | "cron" + "timezone" | "at"}}; see docs/beat.md.
`,
  dev: `celery-gateway dev [--tasks FILE] [--schedule FILE] [--port P]
  Gateway + worker + beat in one process, open (no API keys), on memory:// unless CELERY_BROKER_URL is set.
  With no flags it runs examples/tasks.ts and examples/schedule.json (npm start).
`,
  'hash-key': `celery-gateway hash-key KEY
  Prints sha256:<hex> for KEY, to put in API_KEYS; give KEY itself to the client (Authorization: Bearer KEY).
`,
};

const OPTIONS = {
  help: { type: 'boolean', short: 'h' },
  version: { type: 'boolean' },
  host: { type: 'string' },
  port: { type: 'string', short: 'p' },
  tasks: { type: 'string', short: 'A' },
  queues: { type: 'string', short: 'Q' },
  concurrency: { type: 'string', short: 'c' },
  pool: { type: 'string', short: 'P' },
  hostname: { type: 'string', short: 'n' },
  'prefetch-multiplier': { type: 'string' },
  events: { type: 'boolean', short: 'E' },
  'log-level': { type: 'string', short: 'l' },
  schedule: { type: 'string' },
  'catch-up': { type: 'string' },
} as const;

type Closer = () => Promise<void>;

/** First SIGTERM/SIGINT: graceful close (memoised). Second: exit at once (cold shutdown). */
/** Returns the graceful shutdown, for the worker's `shutdown` remote-control command. */
function onSignals(logger: Logger, close: Closer): (reason: string) => void {
  let closing = false;
  const handle = (signal: NodeJS.Signals): void => {
    if (closing) {
      logger.warn({ signal }, 'second signal: cold shutdown');
      process.exit(130);
    }
    closing = true;
    logger.info({ signal }, 'graceful shutdown');
    close().then(() => process.exit(0), (err: unknown) => {
      logger.error({ err }, 'shutdown failed');
      process.exit(1);
    });
  };
  process.on('SIGTERM', handle);
  process.on('SIGINT', handle);
  return (reason) => {
    if (closing) return;
    logger.warn({ reason }, 'remote shutdown');
    handle('SIGTERM');
  };
}

function positiveInt(raw: string | undefined, fallback: number, flag: string): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < 1 || value > 10_000) throw new GatewayError('GW_ERR_CONFIG', `${flag} must be an integer from 1 to 10000, got ${JSON.stringify(raw)}`);
  return value;
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  const { values, positionals } = parseArgs({ args: argv, options: OPTIONS, allowPositionals: true, strict: true });
  const command = positionals[0];
  if (values.version) { process.stdout.write(`${VERSION}\n`); return; }
  if (values.help || !command) { process.stdout.write(command && COMMAND_HELP[command] ? COMMAND_HELP[command] : HELP); return; }
  if (command === 'hash-key') {
    const secret = positionals[1];
    if (!secret || secret.length < 16) throw new GatewayError('GW_ERR_CONFIG', 'hash-key needs a key of at least 16 characters (e.g. from `openssl rand -hex 24`)');
    process.stdout.write(`sha256:${hashKey(secret)}\n`);
    return;
  }
  if (!['serve', 'worker', 'dev', 'beat'].includes(command)) throw new GatewayError('GW_ERR_CONFIG', `unknown command ${JSON.stringify(command)}; see celery-gateway --help`);

  const config = loadConfig(env, {
    ...(values.host !== undefined ? { host: values.host } : {}),
    ...(values.port !== undefined ? { port: values.port } : {}),
    ...(values['log-level'] !== undefined ? { logLevel: values['log-level'] } : {}),
    ...(values['prefetch-multiplier'] !== undefined ? { prefetchMultiplier: values['prefetch-multiplier'] } : {}),
    ...(values.events ? { workerSendTaskEvents: 'true' } : {}),
  });
  const logger = createLogger(config.logLevel);
  const serving = command === 'serve' || command === 'dev';
  // the task registry first: a bad schema file stops start-up before anything connects. Its queues
  // route what the gateway and beat publish.
  const taskRegistry = command === 'worker' ? undefined : loadTaskRegistry(config);
  // the gateway's /metrics; the adapters count their reconnects into it
  const metrics = serving ? new GatewayMetrics() : undefined;
  const broker = createBroker(config, logger, metrics ? { onReconnect: () => metrics.brokerReconnects.inc({ transport: broker.kind }) } : {});
  // this process's oid: the reply_to of the tasks it publishes and, with rpc://, its reply queue
  const replyTo = randomUUID();
  const backend = createBackend(config, logger, replyTo, metrics ? { onReconnect: () => metrics.backendReconnects.inc() } : {});
  const closers: Closer[] = [];
  const schedules = command === 'worker' ? undefined : createScheduleStore(config, logger);
  const routes = parseTaskRoutes(config.taskRoutes);
  // state shared with other instances: idempotency records, the revoked set
  const shared = createSharedState(config, logger);

  if (command === 'serve' && broker.kind === 'memory') {
    logger.warn('memory:// broker with `serve`: only a worker in this same process could consume; use `dev`, or set CELERY_BROKER_URL');
  }
  // the worker's `shutdown` remote-control command: the same warm shutdown as SIGTERM (set below)
  let requestShutdown: (reason: string) => void = () => {};
  if (command === 'worker' || command === 'dev') {
    const tasksPath = values.tasks ?? (command === 'dev' ? EXAMPLE_TASKS : undefined);
    if (!tasksPath) throw new GatewayError('GW_ERR_CONFIG', 'worker needs --tasks FILE (a module exporting { "task.name": handler })');
    // the revoked ids, loaded now and refreshed every second: no round trip per task
    const revoked = new RevokedCache(shared.state, config.resultExpires, { logger: logger.child({ component: 'revoked' }) });
    await revoked.start();
    const worker = await startWorker(config, values, tasksPath, {
      broker, backend, logger, revoked, onShutdown: (reason) => requestShutdown(reason),
    });
    closers.push(async () => { await worker.close(); revoked.close(); });
  }
  if (command === 'beat' || command === 'dev') {
    const beat = await startBeatCommand(command, values, { broker, backend, config, logger, replyTo, routes: publishRoutes(taskRegistry, routes), schedules: schedules as ScheduleStore });
    closers.push(() => beat.close());
  }
  if (command === 'serve' || command === 'dev') {
    const keys = loadKeys(config, command);
    const workflowLimits = { maxNodes: config.workflowMaxNodes, maxDepth: config.workflowMaxDepth };
    const app = await buildApp({ broker, backend, config, logger, replyTo, workflowLimits, routes, state: shared.state, ...(metrics ? { metrics } : {}), ...(taskRegistry ? { taskRegistry } : {}), ...(schedules ? { schedules } : {}), ...(keys ? { keys } : {}), ...(shared.rateLimitRedis ? { rateLimitRedis: shared.rateLimitRedis } : {}) });
    await app.listen({ host: config.host, port: config.port });
    const address = app.server.address();
    const port = typeof address === 'object' && address ? address.port : config.port;
    process.stdout.write(`celery-gateway ${command}: listening on http://${config.host}:${port}, broker ${broker.displayUrl}, results ${backend.displayUrl}\n`);
    if (!keys) process.stdout.write('authentication is OFF (AUTH=none or dev mode): anyone who can reach this port can submit tasks\n');
    if (taskRegistry) process.stdout.write(`task registry: ${taskRegistry.size} task(s) from ${config.taskRegistryFile}${taskRegistry.strict ? ', strict (other task names are refused)' : ''}\n`);
    if (command === 'dev') {
      process.stdout.write(`Try:\n  curl -X POST localhost:${port}/tasks/tasks.multiply -H 'content-type: application/json' -d '{"args":[4,5]}'\n` +
        `  curl localhost:${port}/schedules        # beat runs tasks.add every 10 s\n\n`);
    }
    closers.unshift(() => app.close());
  }
  requestShutdown = onSignals(logger, async () => {
    await Promise.all(closers.map((close) => close()));
    await Promise.all([broker.close(), backend.close(), schedules?.close(), shared.state.close(), shared.rateLimitRedis?.disconnect()]);
  });
}

interface BeatDeps {
  broker: ReturnType<typeof createBroker>;
  backend: ReturnType<typeof createBackend>;
  config: Config;
  logger: Logger;
  replyTo: string;
  routes: readonly TaskRoute[];
  schedules: ScheduleStore;
}

async function startBeatCommand(command: string, values: { schedule?: string | undefined; 'catch-up'?: string | undefined }, deps: BeatDeps): Promise<{ close(): Promise<void> }> {
  const { broker, backend, config, logger, replyTo, routes, schedules } = deps;
  const scheduleFile = values.schedule ?? (command === 'dev' ? EXAMPLE_SCHEDULE : undefined);
  if (!scheduleFile && schedules.kind !== 'redis') throw new GatewayError('GW_ERR_CONFIG', 'beat needs --schedule FILE (or a Redis result backend, whose schedule table the HTTP API fills)');
  const catchUp = values['catch-up'] ?? 'once';
  if (!CATCH_UP_POLICIES.includes(catchUp as CatchUp)) throw new GatewayError('GW_ERR_CONFIG', `--catch-up must be once or skip, got ${JSON.stringify(catchUp)}`);
  if (command === 'beat' && broker.kind === 'memory') logger.warn('memory:// broker with `beat`: nothing outside this process sees the tasks; set CELERY_BROKER_URL');
  const producer = new Producer({ broker, backend, defaultQueue: config.defaultQueue, logger, replyTo, routes });
  const beat = await startBeat({ producer, store: schedules, logger, catchUp: catchUp as CatchUp, lockTtlMs: config.beatLockTtl * 1000, tickMs: config.beatTick * 1000, ...(scheduleFile ? { scheduleFile } : {}) });
  process.stdout.write(`celery-gateway beat: ${scheduleFile ? `schedule ${scheduleFile}, ` : ''}table ${schedules.kind}, catch-up ${catchUp}, lock TTL ${beat.lockTtlMs / 1000} s\n`);
  return beat;
}

async function startWorker(
  config: Config,
  values: { queues?: string | undefined; concurrency?: string | undefined; hostname?: string | undefined; pool?: string | undefined },
  tasksPath: string,
  deps: { broker: ReturnType<typeof createBroker>; backend: ReturnType<typeof createBackend>; logger: Logger; revoked: RevokedCache; onShutdown: (reason: string) => void },
): Promise<Worker> {
  const { broker, backend, logger, revoked, onShutdown } = deps;
  const registry = await loadTaskModule(tasksPath);
  // without -Q: the default queue plus the queues the tasks declare (TaskSpec.queue)
  const queues = values.queues !== undefined
    ? values.queues.split(',').map((q) => q.trim()).filter(Boolean)
    : [...new Set([config.defaultQueue, ...registry.queues()])];
  const poolKind = values.pool ?? 'async';
  if (poolKind !== 'async' && poolKind !== 'threads') throw new GatewayError('GW_ERR_CONFIG', `--pool must be async or threads, got ${JSON.stringify(poolKind)}`);
  const concurrency = positiveInt(values.concurrency, poolKind === 'threads' ? availableParallelism() : 8, '--concurrency');
  const hostname = values.hostname ?? `node.${process.pid}@${osHostname()}`;
  let pool: ThreadPool | undefined;
  if (poolKind === 'threads') {
    pool = new ThreadPool({ modulePath: tasksPath, size: concurrency, logger, logLevel: config.logLevel });
    await pool.start();
  }
  const worker = new Worker({
    broker, backend, registry, queues, concurrency, hostname, logger, revoked,
    defaultQueue: config.defaultQueue,
    prefetchMultiplier: config.prefetchMultiplier,
    shutdownTimeout: config.shutdownTimeout,
    taskEvents: config.workerSendTaskEvents,
    maxMessageBytes: config.workerMaxMessageBytes,
    version: VERSION,
    onShutdown,
    ...(pool ? { pool } : {}),
  });
  process.stdout.write(banner({
    hostname, version: VERSION, transport: broker.displayUrl, results: backend.displayUrl,
    concurrency, pool: poolKind, prefetch: concurrency * config.prefetchMultiplier, queues, tasks: registry.names(), now: new Date(), taskEvents: config.workerSendTaskEvents,
  }) + '\n');
  await worker.start();
  process.stdout.write(`${hostname} ready.\n`);
  return worker;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  main(process.argv.slice(2), process.env).catch((err: unknown) => {
    process.stderr.write(`celery-gateway: ${err instanceof Error ? err.message : String(err)}\n`);
    process.exit(2);
  });
}
