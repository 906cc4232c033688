/** A steady stream of task submissions that does not wait for answers (the chaos tests' load). */
import type { TestGateway } from '../support/app.ts';

export interface Answer { sentAt: number; at: number; status: number; id?: string; code?: string }

export interface SubmissionStream {
  /** every answer so far (status 0: the request failed, `code` holds the error) */
  readonly answers: Answer[];
  /** stop sending; resolves once every request sent has its answer */
  stop(): Promise<void>;
}

/** About `rate` POST /tasks/tasks.add per second to `queue`, each on its own, whatever the timer granularity. */
export function startSubmissionStream(gw: Pick<TestGateway, 'post'>, queue: string, rate: number): SubmissionStream {
  const answers: Answer[] = [];
  const inflight = new Set<Promise<void>>();
  let stopped = false;
  let n = 0;
  const loop = (async () => {
    const started = Date.now();
    while (!stopped) {
      const due = Math.floor(((Date.now() - started) * rate) / 1000) - n;
      for (let k = 0; k < due; k += 1) {
        const i = n++;
        const sentAt = Date.now();
        const p = gw.post('/tasks/tasks.add', { args: [i, 1], options: { queue } }).then(
          (res) => { answers.push({ sentAt, at: Date.now(), status: res.status, id: (res.json as { id?: string })?.id, code: (res.json as { code?: string })?.code }); },
          (err: Error) => { answers.push({ sentAt, at: Date.now(), status: 0, code: err.message }); },
        ).finally(() => inflight.delete(p));
        inflight.add(p);
      }
      await new Promise((r) => setTimeout(r, 2));
    }
  })();
  return {
    answers,
    stop: async () => {
      stopped = true;
      await loop;
      await Promise.all([...inflight]);
    },
  };
}
