/**
 * The data model of Celery's protocol v2 (JSON serializer), shared by every layer.
 * Pure types: no I/O. See shared/docs/celery-protocol.md for the facts behind each field.
 */

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type JsonObject = { [key: string]: Json };

/**
 * A message as a transport carries it: AMQP natively, kombu's Redis transport inside its JSON envelope.
 * The body stays text so routing, expiry and revocation never need to parse it.
 */
export interface RawMessage {
  headers: JsonObject;
  properties: MessageProperties;
  /** e.g. "application/json" */
  contentType: string;
  /** e.g. "utf-8" */
  contentEncoding: string;
  /** the body as text (decoded from base64 on Redis) */
  body: string;
}

/** AMQP basic properties Celery sets (emulated on Redis inside `properties`). */
export interface MessageProperties {
  correlation_id?: string;
  reply_to?: string;
  /** 2 = persistent (tasks), 1 = transient (events, rpc results) */
  delivery_mode?: 1 | 2;
  priority?: number;
  /** per-message TTL in milliseconds, as a string (AMQP) */
  expiration?: string;
}

/** `timelimit` header: [hard, soft] seconds. */
export type TimeLimit = [number | null, number | null];

/** Protocol v2 task headers, as a 5.2.6 client sends them (§1.1). */
export interface TaskHeaders {
  lang: string;
  task: string;
  id: string;
  shadow: string | null;
  /** ISO 8601 with offset */
  eta: string | null;
  /** ISO 8601 with offset */
  expires: string | null;
  group: string | null;
  group_index: number | null;
  retries: number;
  timelimit: TimeLimit;
  root_id: string | null;
  parent_id: string | null;
  argsrepr: string;
  kwargsrepr: string;
  origin: string;
  ignore_result: boolean;
  /** headers we do not know are kept, as Celery keeps them in task.request */
  [extra: string]: Json | undefined;
}

/** A signature in Celery's dict form (§2). */
export interface SignatureDict {
  task: string;
  args: Json[];
  kwargs: JsonObject;
  options: JsonObject;
  subtask_type: string | null;
  immutable: boolean;
  [extra: string]: Json;
}

/** The third element of the body (§1.3); missing keys mean null. */
export interface Embed {
  callbacks: SignatureDict[] | null;
  errbacks: SignatureDict[] | null;
  /** remaining chain steps, reversed: the next step is the last element */
  chain: SignatureDict[] | null;
  chord: SignatureDict | null;
}

/** A decoded task message. */
export interface TaskMessage {
  headers: TaskHeaders;
  properties: MessageProperties;
  args: Json[];
  kwargs: JsonObject;
  embed: Embed;
}

/** Celery task states (§5). PENDING is never stored. */
export const States = {
  PENDING: 'PENDING',
  RECEIVED: 'RECEIVED',
  STARTED: 'STARTED',
  RETRY: 'RETRY',
  SUCCESS: 'SUCCESS',
  FAILURE: 'FAILURE',
  REVOKED: 'REVOKED',
} as const;
export type State = (typeof States)[keyof typeof States] | (string & {});

/** States after which nothing changes (Celery's READY_STATES). */
export const READY_STATES: ReadonlySet<string> = new Set([States.SUCCESS, States.FAILURE, States.REVOKED]);

/** An exception in the JSON result serializer's form (§5.3). */
export interface EncodedException {
  exc_type: string;
  exc_message: Json[] | string;
  exc_module: string | null;
}

/** `celery-task-meta-<id>` value (§5.2). */
export interface ResultMeta {
  status: State;
  result: Json;
  traceback: string | null;
  children: Json[];
  /** naive UTC ISO 8601 for ready states, null otherwise */
  date_done: string | null;
  task_id: string;
  group_id?: string;
  parent_id?: string;
  [extra: string]: Json | undefined;
}
