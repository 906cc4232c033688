/**
 * Every error code the gateway, worker and CLI can report: one catalogue, codes never reused.
 * docs/errors.md lists the same codes; test/unit/errors.test.ts keeps the two in sync.
 */

export interface ErrorSpec {
  /** HTTP status when the error reaches a client */
  status: number;
  /** what it means, for docs/errors.md */
  description: string;
}

export const ERRORS = {
  GW_ERR_VALIDATION: { status: 400, description: 'The request does not match the route schema (body, params or query).' },
  GW_ERR_BAD_JSON: { status: 400, description: 'The request body is empty or not valid JSON, or holds a `__proto__` key (or `constructor.prototype`), refused as prototype poisoning.' },
  GW_ERR_BAD_TASK_NAME: { status: 400, description: 'The task name is not a valid Celery task name.' },
  GW_ERR_BAD_OPTION: { status: 400, description: 'A task option has an invalid value (e.g. an eta that is not ISO 8601, or both eta and countdown).' },
  GW_ERR_SCHEDULE_INVALID: { status: 400, description: 'A schedule entry is invalid: missing or bad task name, not exactly one of `every`, `cron` and `at`, an `at` that is not ISO 8601, or a field of the wrong type.' },
  GW_ERR_SCHEDULE_BAD_CRON: { status: 400, description: 'A schedule entry has an invalid cron expression (five fields: minute hour day-of-month month day-of-week).' },
  GW_ERR_SCHEDULE_BAD_INTERVAL: { status: 400, description: 'A schedule entry has an invalid `every`: it must be a positive duration of at least 1 s (seconds, or e.g. "10s", "5m", "1h").' },
  GW_ERR_SCHEDULE_BAD_TIMEZONE: { status: 400, description: 'A schedule entry names an unknown time zone (use an IANA name such as "Europe/Berlin").' },
  GW_ERR_SCHEDULE_NOT_FOUND: { status: 404, description: 'No schedule entry has this name.' },
  GW_ERR_BAD_WORKFLOW: { status: 400, description: 'The workflow spec is invalid (unknown node type, empty chain or group, chord with an empty header, args or options of the wrong type, more than 1000 nodes or deeper than 32 levels by default); `details.pointer` is the JSON pointer of the offending node.' },
  GW_ERR_WORKFLOW_NOT_FOUND: { status: 404, description: 'No workflow has this id (never submitted through this gateway, or its record expired with the results).' },
  GW_ERR_WORKFLOW_UNSUPPORTED: { status: 501, description: 'The result backend cannot keep workflows or chords (rpc://): use the Redis result backend.' },
  GW_ERR_BODY_TOO_LARGE: { status: 413, description: 'The request body is larger than the configured limit (BODY_LIMIT).' },
  GW_ERR_ARGS_TOO_LARGE: { status: 413, description: 'The JSON-encoded args and kwargs of one task (or one workflow node) are larger than MAX_ARGS_BYTES; `details` has `bytes`, `limit` and, in a workflow, the node\'s `pointer`.' },
  GW_ERR_ARGS_INVALID: { status: 400, description: 'The args or kwargs do not match the task\'s JSON Schema in the task registry (TASK_REGISTRY_FILE); `details.pointer` is the JSON pointer (into the request body) of the first error.' },
  GW_ERR_TASK_NOT_REGISTERED: { status: 400, description: 'TASK_REGISTRY_STRICT=true and the task name (in the path, a workflow node or a link) is not in the task registry.' },
  GW_ERR_UNSUPPORTED_MEDIA_TYPE: { status: 415, description: 'The request body is not application/json.' },
  GW_ERR_NOT_FOUND: { status: 404, description: 'No such route.' },
  GW_ERR_METHOD_NOT_ALLOWED: { status: 405, description: 'The route exists but not for this HTTP method.' },
  GW_ERR_UNAUTHORIZED: { status: 401, description: 'No valid API key: send `Authorization: Bearer <key>`.' },
  GW_ERR_FORBIDDEN: { status: 403, description: "The API key lacks the scope this route needs, or the task name or queue is outside the key's allowlist." },
  GW_ERR_RATE_LIMITED: { status: 429, description: 'Too many requests for this API key (or address); retry after the number of seconds in `Retry-After`.' },
  GW_ERR_IDEMPOTENCY_MISMATCH: { status: 422, description: 'The Idempotency-Key was already used for a different request (other route or body).' },
  GW_ERR_IDEMPOTENCY_IN_FLIGHT: { status: 409, description: 'A request with the same Idempotency-Key is still being processed; retry shortly.' },
  GW_ERR_RESULT_NOT_FOUND: { status: 404, description: 'The task id was never submitted through this gateway and the result backend has no result for it.' },
  GW_ERR_BROKER_UNAVAILABLE: { status: 503, description: 'The broker could not be reached or did not take the message; nothing was published.' },
  GW_ERR_BROKER_NOT_REPLICATED: { status: 503, description: 'The Redis master took the task but fewer than REDIS_WAIT_REPLICAS replicas acknowledged it within REDIS_WAIT_TIMEOUT_MS: it may still run, or be lost if the master fails now. A retry may run it twice.' },
  GW_ERR_BACKEND_UNAVAILABLE: { status: 503, description: 'The result backend could not be reached.' },
  GW_ERR_TOO_MANY_WAITS: { status: 503, description: 'MAX_LONG_POLLS long-polls or event streams are open on this instance; retry shortly (Retry-After), or read without ?wait.' },
  GW_ERR_SHUTTING_DOWN: { status: 503, description: 'The gateway is shutting down and takes no new requests.' },
  GW_ERR_INTERNAL: { status: 500, description: 'An unexpected error; the logs carry the details.' },
  GW_ERR_CONFIG: { status: 500, description: 'Invalid configuration at start-up (bad URL, unknown scheme, bad number).' },
  GW_ERR_PROTOCOL: { status: 500, description: 'A message that is not a valid Celery protocol v2 message (wrong body shape, missing headers).' },
  GW_ERR_CONTENT_DISALLOWED: { status: 500, description: 'A message whose content type is not JSON (pickle, yaml, msgpack are refused, never deserialized).' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorCode = keyof typeof ERRORS;

/** An error with a stable code; the HTTP layer turns it into `{statusCode, code, error, message}`. */
export class GatewayError extends Error {
  readonly code: ErrorCode;
  readonly statusCode: number;
  /** extra machine-readable detail, e.g. a JSON pointer */
  readonly details?: Record<string, unknown>;

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; details?: Record<string, unknown> }) {
    super(message, options?.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'GatewayError';
    this.code = code;
    this.statusCode = ERRORS[code].status;
    if (options?.details) this.details = options.details;
  }
}

export function isGatewayError(err: unknown): err is GatewayError {
  return err instanceof GatewayError;
}
