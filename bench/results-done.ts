/** Wait for the results of a batch of tasks without loading Redis (shared by the benchmarks). */
import type { Redis } from 'ioredis';

/**
 * Resolves once every id has a result meta. Polls the last id queued first, then checks all once, then
 * only those still missing (an EXISTS of 20,000 keys every poll cost Redis more than the tasks did).
 */
export async function resultsDone(redis: Redis, ids: readonly string[], pollMs = 20): Promise<void> {
  let pending = [`celery-task-meta-${ids.at(-1)}`];
  let checkedAll = false;
  for (;;) {
    const missing: string[] = [];
    for (let i = 0; i < pending.length; i += 5000) {
      const chunk = pending.slice(i, i + 5000);
      const replies = (await redis.pipeline(chunk.map((key) => ['exists', key])).exec()) ?? [];
      chunk.forEach((key, j) => { if (replies[j]?.[1] !== 1) missing.push(key); });
    }
    if (missing.length === 0 && !checkedAll) {
      pending = ids.map((id) => `celery-task-meta-${id}`);
      checkedAll = true;
      continue;
    }
    if (missing.length === 0) return;
    pending = missing;
    await new Promise((r) => setTimeout(r, pollMs));
  }
}
