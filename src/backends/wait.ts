/**
 * Wait for a task to reach a ready state through the backend's notifications (no polling loop).
 */
import { READY_STATES, type ResultMeta } from '../protocol/types.ts';
import type { ResultBackend } from './backend.ts';

const isReady = (meta: ResultMeta | null): meta is ResultMeta => meta !== null && READY_STATES.has(meta.status);

/**
 * Resolves with the meta as soon as it is ready, or with the latest meta seen (null if none) when
 * `timeoutMs` passes or `signal` aborts. Without a wait it is one read. With one, it subscribes and
 * reads at once: a result already stored answers after that one read; otherwise it reads again once
 * subscribed, so a result stored before the subscription took hold cannot be missed.
 */
export async function waitForResult(backend: ResultBackend, taskId: string, timeoutMs: number, signal?: AbortSignal): Promise<ResultMeta | null> {
  if (timeoutMs <= 0 || signal?.aborted) return backend.get(taskId);
  let latest: ResultMeta | null = null;
  let wake: () => void = () => {};
  const woken = new Promise<void>((resolve) => { wake = resolve; });
  const listening = backend.listen(taskId, (meta) => {
    latest = meta;
    if (isReady(meta)) wake();
  });
  listening.catch(() => {}); // awaited below unless the first read answers
  let unlisten: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const onAbort = (): void => wake();
  try {
    const first = await backend.get(taskId);
    if (isReady(first)) return first;
    unlisten = await listening;
    const stored = await backend.get(taskId);
    if (latest === null || isReady(stored)) latest = stored;
    if (isReady(latest) || signal?.aborted) return latest;
    timer = setTimeout(wake, timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
    await woken;
    return latest;
  } finally {
    if (timer) clearTimeout(timer);
    signal?.removeEventListener('abort', onAbort);
    if (unlisten) unlisten();
    else listening.then((stop) => stop(), () => {});
  }
}
