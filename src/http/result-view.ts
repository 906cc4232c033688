/**
 * A stored result meta → the JSON `GET /results/:id` answers. Pure.
 */
import { describeError } from '../protocol/result-meta.ts';
import { READY_STATES, States, type Json, type ResultMeta } from '../protocol/types.ts';

export interface ResultView {
  id: string;
  state: string;
  ready: boolean;
  result: Json;
  error: ReturnType<typeof describeError>;
  worker: string | null;
  date_done: string | null;
  children: Json[];
  parent_id: string | null;
  group_id: string | null;
}

export function pendingView(id: string): ResultView {
  return { id, state: States.PENDING, ready: false, result: null, error: null, worker: null, date_done: null, children: [], parent_id: null, group_id: null };
}

/** Celery's own states (celery.states.ALL_STATES); any other is a task's custom state. */
const BUILTIN_STATES: ReadonlySet<string> = new Set([...Object.values(States), 'REJECTED', 'IGNORED']);

export function resultView(id: string, meta: ResultMeta): ResultView {
  const state = meta.status;
  const isError = state === States.FAILURE || state === States.REVOKED || state === States.RETRY;
  let worker: string | null = null;
  if (state === States.STARTED && meta.result && typeof meta.result === 'object' && !Array.isArray(meta.result)) {
    const host = meta.result['hostname'];
    if (typeof host === 'string') worker = host;
  }
  return {
    id,
    state,
    ready: READY_STATES.has(state),
    // a custom state's meta (a task's update_state, e.g. PROGRESS) is what it has to say, as AsyncResult.info
    result: state === States.SUCCESS || !BUILTIN_STATES.has(state) ? meta.result : null,
    error: isError ? describeError(meta.result, meta.traceback) : null,
    worker,
    date_done: meta.date_done ?? null,
    children: Array.isArray(meta.children) ? meta.children : [],
    parent_id: meta.parent_id ?? null,
    group_id: meta.group_id ?? null,
  };
}
