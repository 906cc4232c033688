/**
 * Example handlers, used by `npm start` (celery-gateway dev). Each is registered under its Celery task
 * name; positional args come first, the TaskContext last.
 */
import { defineTasks, type TaskContext } from '../src/worker/registry.ts';

const sleep = (ms: number, signal: AbortSignal): Promise<void> =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal.addEventListener('abort', () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });

export default defineTasks({
  'tasks.add': (x: number, y: number) => x + y,
  'tasks.multiply': (x: number, y: number) => x * y,
  'tasks.mul': (x: number, y: number) => x * y,
  'tasks.xsum': (numbers: number[]) => numbers.reduce((a, b) => a + b, 0),
  'tasks.fail': () => { throw new Error('boom'); },
  'tasks.sleep': async (seconds: number, ctx: TaskContext) => { await sleep(seconds * 1000, ctx.signal); return seconds; },
  'tasks.echo': (...params: unknown[]) => {
    const ctx = params.pop() as TaskContext;
    return { args: params, kwargs: ctx.kwargs };
  },
});
