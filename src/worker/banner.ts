/**
 * The start-up banner, shaped like Celery's so operators recognise it.
 */
import { release, type as osType } from 'node:os';

export interface BannerInfo {
  hostname: string;
  version: string;
  transport: string;
  results: string;
  concurrency: number;
  /** "async" (default) or "threads" */
  pool?: string;
  prefetch: number;
  queues: readonly string[];
  tasks: readonly string[];
  now: Date;
  /** task events on (-E) */
  taskEvents?: boolean;
}

export function banner(info: BannerInfo): string {
  const lines = [
    ` -------------- ${info.hostname} v${info.version} (celery-gateway, node ${process.version})`,
    `--- ***** ----- `,
    `-- ******* ---- ${osType()}-${release()} ${info.now.toISOString().replace('T', ' ').slice(0, 19)}`,
    `- *** --- * --- `,
    `- ** ---------- [config]`,
    `- ** ---------- .> app:         celery-gateway`,
    `- ** ---------- .> transport:   ${info.transport}`,
    `- ** ---------- .> results:     ${info.results}`,
    `- *** --- * --- .> concurrency: ${info.concurrency} (${info.pool ?? 'async'}), prefetch ${info.prefetch}`,
    `-- ******* ---- .> task events: ${info.taskEvents ? 'ON' : 'OFF (enable -E to monitor tasks in this worker)'}`,
    `--- ***** ----- `,
    ` -------------- [queues]`,
    ...info.queues.map((q) => `                .> ${q.padEnd(16)} exchange=${q}(direct) key=${q}`),
    '',
    '[tasks]',
    ...info.tasks.map((t) => `  . ${t}`),
    '',
  ];
  return lines.join('\n');
}
