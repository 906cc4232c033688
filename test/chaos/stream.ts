/** A steady stream of task submissions that does not wait for answers (the chaos tests' load), and checks on its answers. */
import assert from 'node:assert/strict';
import type { ResultBackend } from '../../src/backends/backend.ts';
import { ERRORS } from '../../src/errors.ts';
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

export interface OutageReport {
  accepted: Answer[];
  refused: Answer[];
  refusedWhileDown: number;
  /** ms from `upAt` to the answer of the first submission sent after it that was accepted */
  recoveryMs: number;
}

/**
 * Check a stream's answers across an outage: every refusal is a 503 with a 503 code of the catalogue,
 * none before `faultAt`, some for submissions sent while down (`downFrom`..`upAt`), load flowing before
 * the fault, and a 202 again within `recoverWithinMs` of `upAt`.
 */
export function checkOutage(answers: readonly Answer[], times: { faultAt: number; downFrom: number; upAt: number }, recoverWithinMs: number, what: string): OutageReport {
  const accepted = answers.filter((a) => a.status === 202);
  const refused = answers.filter((a) => a.status !== 202);
  for (const a of refused) {
    assert.equal(a.status, 503, `unexpected answer ${a.status} ${a.code}`);
    assert.ok(a.code && (ERRORS as Record<string, { status: number }>)[a.code]?.status === 503, `503 with code ${a.code}`);
  }
  assert.deepEqual(refused.filter((a) => a.at < times.faultAt), [], 'nothing refused before the fault');
  const refusedWhileDown = refused.filter((a) => a.sentAt >= times.downFrom && a.sentAt < times.upAt).length;
  assert.ok(refusedWhileDown > 0, `submissions were refused while ${what} was down`);
  const firstAfter = accepted.filter((a) => a.sentAt >= times.upAt).sort((a, b) => a.sentAt - b.sentAt)[0];
  assert.ok(firstAfter, 'submissions are accepted again after the restart');
  const recoveryMs = firstAfter.at - times.upAt;
  assert.ok(recoveryMs < recoverWithinMs, `recovered ${recoveryMs} ms after ${what} was back`);
  assert.ok(accepted.filter((a) => a.sentAt < times.faultAt).length > 100, 'load was flowing before the fault');
  return { accepted, refused, refusedWhileDown, recoveryMs };
}

/** Poll until every id has a SUCCESS meta or `timeoutMs` passes; resolves with the ids still without one. */
export async function waitForSuccess(backend: Pick<ResultBackend, 'get'>, ids: readonly string[], timeoutMs = 30_000): Promise<string[]> {
  const deadline = Date.now() + timeoutMs;
  let missing = [...ids];
  while (missing.length > 0 && Date.now() < deadline) {
    const metas = await Promise.all(missing.map((id) => backend.get(id)));
    missing = missing.filter((_, i) => metas[i]?.status !== 'SUCCESS');
    if (missing.length > 0) await new Promise((r) => setTimeout(r, 250));
  }
  return missing;
}
