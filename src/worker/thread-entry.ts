/**
 * Inside a `--pool threads` worker thread: loads the task module once, then runs one task at a time as
 * the main thread asks (src/worker/thread-pool.ts). Messages in: `run`, `soft` (soft time limit: abort
 * ctx.signal). Messages out: `ready` | `load-failed` once, then `done` per run.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { pino, type Logger } from 'pino';
import type { Json } from '../protocol/types.ts';
import { SoftTimeLimitExceeded } from './errors.ts';
import { contextExits, loadTaskModule, stateMeta, type TaskContext } from './registry.ts';
import { serializeError, type RunRequest, type ThreadReply } from './thread-messages.ts';

const port = parentPort;
if (!port) throw new Error('thread-entry.ts runs in a worker thread');
const { modulePath, logLevel, threadId } = workerData as { modulePath: string; logLevel: string; threadId: number };
const logger: Logger = pino({ level: logLevel, base: { pid: process.pid, thread: threadId } });
const send = (reply: ThreadReply): void => port.postMessage(reply);

let controller: AbortController | null = null;

try {
  const registry = await loadTaskModule(modulePath);
  port.on('message', (msg: RunRequest | { type: 'soft'; seconds: number }) => {
    if (msg.type === 'soft') {
      controller?.abort(new SoftTimeLimitExceeded(msg.seconds));
      return;
    }
    void run(msg, registry.get(msg.name)?.handler);
  });
  send({ type: 'ready' });
} catch (err) {
  send({ type: 'load-failed', error: serializeError(err) });
}

async function run(msg: RunRequest, handler: ((...args: unknown[]) => unknown) | undefined): Promise<void> {
  const abort = new AbortController();
  controller = abort;
  const { ctx: c } = msg;
  let log: Logger | undefined;
  const ctx: TaskContext = {
    id: c.id, name: c.name, kwargs: c.kwargs, retries: c.retries, rootId: c.rootId, parentId: c.parentId,
    groupId: c.groupId, headers: c.headers, hostname: c.hostname, redelivered: c.redelivered,
    signal: abort.signal,
    ...contextExits,
    updateState: (state: string, meta?: unknown) => {
      send({ type: 'state', state, meta: stateMeta(state, meta) });
      return Promise.resolve();
    },
    get log(): Logger {
      log ??= logger.child({ task: c.name, taskId: c.id });
      return log;
    },
  };
  const started = performance.now();
  try {
    if (!handler) throw new Error(`task ${msg.name} is not in the thread's module`);
    const value = await handler(...msg.args, ctx);
    // a JSON round trip: what the main thread stores must be JSON (and postMessage could not clone a function)
    const json = value === undefined ? null : JSON.parse(JSON.stringify(value) ?? 'null') as Json;
    send({ type: 'done', ok: true, value: json, runtimeMs: performance.now() - started });
  } catch (err) {
    send({ type: 'done', ok: false, error: serializeError(err), runtimeMs: performance.now() - started });
  } finally {
    if (controller === abort) controller = null;
  }
}
