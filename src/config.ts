/**
 * One validated, frozen configuration: defaults < environment < command-line flags.
 * The only module that reads process.env (through the `env` argument given by the CLI).
 * Names follow Celery's where Celery has one (CELERY_BROKER_URL, CELERY_RESULT_BACKEND, …).
 */
import { GatewayError } from './errors.ts';

export interface Config {
  brokerUrl: string;
  resultBackend: string;
  host: string;
  port: number;
  defaultQueue: string;
  /** seconds a stored result lives (Celery's result_expires) */
  resultExpires: number;
  /** bytes */
  bodyLimit: number;
  /** longest `?wait=` a client may ask for, seconds */
  maxWaitSeconds: number;
  logLevel: string;
  /** Redis broker: seconds before an unacked message is restored (kombu's visibility_timeout) */
  visibilityTimeout: number;
  /** Celery's worker_prefetch_multiplier */
  prefetchMultiplier: number;
  /** graceful shutdown bound, seconds */
  shutdownTimeout: number;
  /** worker: send task-* Celery events from the start (Celery's worker_send_task_events, `-E`) */
  workerSendTaskEvents: boolean;
  /** worker: larger task messages are rejected without being parsed, bytes */
  workerMaxMessageBytes: number;
  /** "required" | "none" | "" (= required for serve, none for dev unless keys are given) */
  auth: string;
  /** JSON array of API keys (hashes only) */
  apiKeys: string;
  /** a file holding the same JSON */
  apiKeysFile: string;
  /** default requests per minute per API key (or address without auth); 0 = no limit */
  rateLimitPerMinute: number;
  /** seconds an Idempotency-Key is remembered */
  idempotencyTtl: number;
  /** AMQP: x-max-priority of declared queues (Celery's task_queue_max_priority); 0 = none */
  queueMaxPriority: number;
  /** AMQP: x-queue-type of declared task queues: classic | quorum */
  queueType: string;
  /** Celery's broker_transport_options as JSON (Sentinel: master_name, sentinel_kwargs) */
  brokerTransportOptions: string;
  /** Celery's result_backend_transport_options as JSON */
  resultBackendTransportOptions: string;
  /** Redis broker: replicas that must acknowledge a published task (WAIT) before the 202; 0 = no WAIT */
  redisWaitReplicas: number;
  /** Redis broker: how long WAIT waits, ms */
  redisWaitTimeoutMs: number;
  /** most long-polls / event streams open at once per instance */
  maxLongPolls: number;
  /** Celery's task_routes as JSON: {"glob": {queue, exchange, routing_key, priority}} */
  taskRoutes: string;
  /** most nodes (signatures) one workflow may have */
  workflowMaxNodes: number;
  /** deepest nesting of one workflow */
  workflowMaxDepth: number;
  /** largest JSON-encoded args + kwargs of one task, bytes */
  maxArgsBytes: number;
  /** a JSON file: task name → {args, kwargs JSON Schemas, description, queue} */
  taskRegistryFile: string;
  /** refuse task names missing from the registry */
  taskRegistryStrict: boolean;
  /** beat leader lock expiry, seconds */
  beatLockTtl: number;
  /** beat pass period, seconds */
  beatTick: number;
}

/** Every setting with its env var, default and meaning: the README table and .env.example mirror this. */
export const SETTINGS = {
  brokerUrl: { env: 'CELERY_BROKER_URL', default: 'memory://', doc: 'Broker URL: redis://[:password@]host:port/db, rediss://…, amqp://user:pass@host:5672//vhost, amqps://…, memory://' },
  resultBackend: { env: 'CELERY_RESULT_BACKEND', default: '', doc: 'Result backend URL: redis://…, rpc:// (AMQP broker only), memory://. Default: the broker URL for redis://, rpc:// for amqp://, memory:// for memory://' },
  host: { env: 'HOST', default: '127.0.0.1', doc: 'Address the gateway listens on (0.0.0.0 in containers)' },
  port: { env: 'PORT', default: '8080', doc: 'Port the gateway listens on' },
  defaultQueue: { env: 'CELERY_DEFAULT_QUEUE', default: 'celery', doc: "Queue for tasks published without a queue (Celery's task_default_queue)" },
  resultExpires: { env: 'CELERY_RESULT_EXPIRES', default: '86400', doc: 'Seconds results (and the record of client-chosen task ids) are kept' },
  bodyLimit: { env: 'BODY_LIMIT', default: '1048576', doc: 'Largest accepted request body, bytes' },
  maxWaitSeconds: { env: 'MAX_WAIT_SECONDS', default: '60', doc: 'Longest long-poll (`GET /results/:id?wait=`) a client may ask for, seconds' },
  logLevel: { env: 'LOG_LEVEL', default: 'info', doc: 'pino log level: fatal, error, warn, info, debug, trace, silent' },
  visibilityTimeout: { env: 'CELERY_VISIBILITY_TIMEOUT', default: '3600', doc: 'Redis broker: seconds before a message unacked by a dead worker is delivered again' },
  prefetchMultiplier: { env: 'CELERY_WORKER_PREFETCH_MULTIPLIER', default: '4', doc: 'Worker: unacked messages held per unit of concurrency' },
  workerSendTaskEvents: { env: 'CELERY_WORKER_SEND_TASK_EVENTS', default: 'false', doc: 'Worker: true sends task-* Celery events (as `worker -E`); worker-online/heartbeat/offline are always sent' },
  workerMaxMessageBytes: { env: 'WORKER_MAX_MESSAGE_BYTES', default: '10485760', doc: 'Worker: a task message whose body is larger (bytes) is rejected and logged without being parsed' },
  shutdownTimeout: { env: 'SHUTDOWN_TIMEOUT', default: '30', doc: 'Seconds a graceful shutdown waits for running requests and tasks' },
  auth: { env: 'AUTH', default: '', doc: 'required | none. Default: required for serve, none for dev (unless API keys are set)' },
  apiKeys: { env: 'API_KEYS', default: '', doc: 'API keys as JSON: [{"name","hash":"sha256:<hex>","scopes":["submit","read","revoke","admin"],"tasks"?,"queues"?,"rateLimit"?}]' },
  apiKeysFile: { env: 'API_KEYS_FILE', default: '', doc: 'A file holding the API_KEYS JSON' },
  rateLimitPerMinute: { env: 'RATE_LIMIT_PER_MINUTE', default: '0', doc: 'Requests per minute per API key (per address without auth); 0 = no limit. Shared through Redis when configured' },
  idempotencyTtl: { env: 'IDEMPOTENCY_TTL', default: '86400', doc: 'Seconds an Idempotency-Key answer is replayed' },
  maxLongPolls: { env: 'MAX_LONG_POLLS', default: '10000', doc: 'Most long-polls and event streams open at once per gateway instance (more get 503 GW_ERR_TOO_MANY_WAITS)' },
  taskRoutes: { env: 'CELERY_TASK_ROUTES', default: '', doc: 'Routing by task name (Celery\'s task_routes) as JSON: {"reports.*": {"queue": "reports"}, "billing.*": {"exchange": "billing", "routing_key": "charge"}}' },
  workflowMaxNodes: { env: 'WORKFLOW_MAX_NODES', default: '1000', doc: 'Most signatures one POST /workflows may hold' },
  workflowMaxDepth: { env: 'WORKFLOW_MAX_DEPTH', default: '32', doc: 'Deepest nesting of one POST /workflows spec' },
  maxArgsBytes: { env: 'MAX_ARGS_BYTES', default: '262144', doc: 'Largest JSON-encoded args + kwargs of one task (each workflow node counts alone), bytes; more gets 413 GW_ERR_ARGS_TOO_LARGE' },
  taskRegistryFile: { env: 'TASK_REGISTRY_FILE', default: '', doc: 'A JSON file {"task.name": {"args": <JSON Schema of the args array>, "kwargs": <JSON Schema of the kwargs object>, "description"?, "queue"?}}: submissions are validated against it (400 GW_ERR_ARGS_INVALID) and it is shown in /openapi.json' },
  taskRegistryStrict: { env: 'TASK_REGISTRY_STRICT', default: 'false', doc: 'true: refuse task names missing from TASK_REGISTRY_FILE (400 GW_ERR_TASK_NOT_REGISTERED)' },
  beatLockTtl: { env: 'BEAT_LOCK_TTL', default: '10', doc: 'Beat: seconds the leader lock lasts without renewal; a dead leader is replaced within about this long (RabbitMQ only: also the lock connection\'s heartbeat)' },
  beatTick: { env: 'BEAT_TICK', default: '1', doc: 'Beat: seconds between passes (lock renewal and due-task check); at most a third of BEAT_LOCK_TTL' },
  queueType: { env: 'CELERY_QUEUE_TYPE', default: 'classic', doc: 'RabbitMQ: classic | quorum (x-queue-type of declared task queues; quorum queues are replicated across a cluster but have no priorities, so CELERY_QUEUE_MAX_PRIORITY must be 0; the Python side must declare the same queue_arguments)' },
  brokerTransportOptions: { env: 'CELERY_BROKER_TRANSPORT_OPTIONS', default: '', doc: 'Celery\'s broker_transport_options as JSON; for sentinel:// URLs {"master_name":"mymaster"} (required) and optionally "sentinel_kwargs":{"password":"…"}' },
  resultBackendTransportOptions: { env: 'CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS', default: '', doc: 'Celery\'s result_backend_transport_options as JSON (as CELERY_BROKER_TRANSPORT_OPTIONS, for a sentinel:// result backend). Default: the broker\'s when the backend URL is the broker URL' },
  redisWaitReplicas: { env: 'REDIS_WAIT_REPLICAS', default: '0', doc: 'Redis broker: after publishing a task, WAIT until this many replicas have it before answering 202 (fewer within REDIS_WAIT_TIMEOUT_MS: 503 GW_ERR_BROKER_NOT_REPLICATED); 0 = no WAIT (faster, but a master failover can lose the last writes)' },
  redisWaitTimeoutMs: { env: 'REDIS_WAIT_TIMEOUT_MS', default: '1000', doc: 'Redis broker: longest WAIT for REDIS_WAIT_REPLICAS, ms' },
  queueMaxPriority: { env: 'CELERY_QUEUE_MAX_PRIORITY', default: '0', doc: "RabbitMQ: declare queues with x-max-priority (must match the Python side's task_queue_max_priority); 0 = none" },
} as const satisfies Record<keyof Config, { env: string; default: string; doc: string }>;

const LOG_LEVELS = new Set(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']);

function num(key: keyof Config, raw: string, min: number, max: number, integer = true): number {
  const value = Number(raw);
  if (raw.trim() === '' || !Number.isFinite(value) || value < min || value > max || (integer && !Number.isInteger(value))) {
    const setting = SETTINGS[key];
    throw new GatewayError('GW_ERR_CONFIG', `${setting.env}=${JSON.stringify(raw)} is invalid: expected ${integer ? 'an integer' : 'a number'} from ${min} to ${max}`);
  }
  return value;
}

/** The default result backend for a broker URL. */
function defaultBackendFor(brokerUrl: string): string {
  if (/^(rediss?|sentinels?):/.test(brokerUrl)) return brokerUrl;
  if (/^(amqps?|pyamqp):/.test(brokerUrl)) return 'rpc://';
  return 'memory://';
}

/** Build the configuration. `overrides` are command-line flags (already parsed), highest precedence. */
export function loadConfig(env: Record<string, string | undefined>, overrides: Partial<Record<keyof Config, string>> = {}): Readonly<Config> {
  const raw = (key: keyof Config): string => overrides[key] ?? env[SETTINGS[key].env] ?? SETTINGS[key].default;
  const brokerUrl = raw('brokerUrl');
  const logLevel = raw('logLevel');
  if (!LOG_LEVELS.has(logLevel)) {
    throw new GatewayError('GW_ERR_CONFIG', `LOG_LEVEL=${JSON.stringify(logLevel)} is invalid: use one of ${[...LOG_LEVELS].join(', ')}`);
  }
  const defaultQueue = raw('defaultQueue');
  if (!/^[\w.:@-]{1,200}$/.test(defaultQueue)) {
    throw new GatewayError('GW_ERR_CONFIG', `CELERY_DEFAULT_QUEUE=${JSON.stringify(defaultQueue)} is invalid: letters, digits and . _ - : @ only`);
  }
  return Object.freeze({
    brokerUrl,
    resultBackend: raw('resultBackend') || defaultBackendFor(brokerUrl),
    host: raw('host'),
    port: num('port', raw('port'), 0, 65535),
    defaultQueue,
    resultExpires: num('resultExpires', raw('resultExpires'), 1, 10 * 365 * 86400),
    bodyLimit: num('bodyLimit', raw('bodyLimit'), 1024, 1024 * 1024 * 1024),
    maxWaitSeconds: num('maxWaitSeconds', raw('maxWaitSeconds'), 0, 3600, false),
    logLevel,
    visibilityTimeout: num('visibilityTimeout', raw('visibilityTimeout'), 1, 30 * 86400),
    prefetchMultiplier: num('prefetchMultiplier', raw('prefetchMultiplier'), 1, 1000),
    shutdownTimeout: num('shutdownTimeout', raw('shutdownTimeout'), 0, 3600, false),
    workerSendTaskEvents: bool('workerSendTaskEvents', raw('workerSendTaskEvents')),
    workerMaxMessageBytes: num('workerMaxMessageBytes', raw('workerMaxMessageBytes'), 1024, 2 ** 31),
    auth: authMode(raw('auth')),
    apiKeys: raw('apiKeys'),
    apiKeysFile: raw('apiKeysFile'),
    rateLimitPerMinute: num('rateLimitPerMinute', raw('rateLimitPerMinute'), 0, 10_000_000),
    idempotencyTtl: num('idempotencyTtl', raw('idempotencyTtl'), 1, 30 * 86400),
    queueMaxPriority: num('queueMaxPriority', raw('queueMaxPriority'), 0, 255),
    queueType: queueType(raw('queueType'), num('queueMaxPriority', raw('queueMaxPriority'), 0, 255)),
    brokerTransportOptions: jsonObject('brokerTransportOptions', raw('brokerTransportOptions')),
    resultBackendTransportOptions: jsonObject('resultBackendTransportOptions', raw('resultBackendTransportOptions')),
    redisWaitReplicas: num('redisWaitReplicas', raw('redisWaitReplicas'), 0, 100),
    redisWaitTimeoutMs: num('redisWaitTimeoutMs', raw('redisWaitTimeoutMs'), 1, 600_000),
    maxLongPolls: num('maxLongPolls', raw('maxLongPolls'), 1, 1_000_000),
    taskRoutes: raw('taskRoutes'),
    workflowMaxNodes: num('workflowMaxNodes', raw('workflowMaxNodes'), 1, 100_000),
    workflowMaxDepth: num('workflowMaxDepth', raw('workflowMaxDepth'), 1, 1000),
    maxArgsBytes: num('maxArgsBytes', raw('maxArgsBytes'), 16, 1024 * 1024 * 1024),
    taskRegistryFile: raw('taskRegistryFile'),
    taskRegistryStrict: bool('taskRegistryStrict', raw('taskRegistryStrict')),
    beatLockTtl: num('beatLockTtl', raw('beatLockTtl'), 0.3, 3600, false),
    beatTick: num('beatTick', raw('beatTick'), 0.01, 60, false),
  });
}

function bool(key: keyof Config, raw: string): boolean {
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new GatewayError('GW_ERR_CONFIG', `${SETTINGS[key].env}=${JSON.stringify(raw)} is invalid: use true or false`);
}

function queueType(raw: string, maxPriority: number): string {
  if (raw !== 'classic' && raw !== 'quorum') throw new GatewayError('GW_ERR_CONFIG', `CELERY_QUEUE_TYPE=${JSON.stringify(raw)} is invalid: use classic or quorum`);
  if (raw === 'quorum' && maxPriority > 0) {
    throw new GatewayError('GW_ERR_CONFIG', `CELERY_QUEUE_TYPE=quorum cannot be combined with CELERY_QUEUE_MAX_PRIORITY=${maxPriority}: RabbitMQ quorum queues have no message priorities (x-max-priority); set CELERY_QUEUE_MAX_PRIORITY=0 or use classic queues`);
  }
  return raw;
}

function jsonObject(key: keyof Config, raw: string): string {
  if (raw.trim() === '') return '';
  let value: unknown;
  try {
    value = JSON.parse(raw);
  } catch {
    throw new GatewayError('GW_ERR_CONFIG', `${SETTINGS[key].env} is not valid JSON`);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new GatewayError('GW_ERR_CONFIG', `${SETTINGS[key].env} must be a JSON object`);
  return raw;
}

function authMode(raw: string): string {
  if (raw !== '' && raw !== 'required' && raw !== 'none') throw new GatewayError('GW_ERR_CONFIG', `AUTH=${JSON.stringify(raw)} is invalid: use required or none`);
  return raw;
}

/** A URL with its password replaced by `**`, for banners and logs. */
export function redactUrl(url: string): string {
  // `;` separates the URLs of a list (sentinels, AMQP nodes); sentinel_password is folded into the query
  return url.split(';').map((part) => part
    .replace(/^(\s*[a-z][a-z0-9+.-]*:\/\/)([^:@/]*):([^@/]*)@/i, (_m, scheme: string, user: string) => `${scheme}${user}:**@`)
    .replace(/([?&]sentinel_password=)[^&]*/, '$1**')).join(';');
}
