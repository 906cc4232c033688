/**
 * API keys: parsed from configuration, stored only as SHA-256 hashes, each with scopes and optional
 * allowlists of task-name globs and queues. Pure.
 */
import { createHash } from 'node:crypto';
import type { Route } from '../brokers/broker.ts';
import { GatewayError } from '../errors.ts';

export const SCOPES = ['submit', 'read', 'revoke', 'admin'] as const;
export type Scope = (typeof SCOPES)[number];

export interface ApiKey {
  name: string;
  /** sha256 hex of the key */
  hash: string;
  scopes: ReadonlySet<Scope>;
  /** task-name globs (`*` any run of characters); absent = every task */
  tasks?: readonly RegExp[];
  /** queues this key may publish to; absent = any */
  queues?: ReadonlySet<string>;
  /** requests per minute for this key; absent = the gateway default */
  rateLimit?: number;
}

export function hashKey(secret: string): string {
  return createHash('sha256').update(secret, 'utf8').digest('hex');
}

/** `reports.*` → /^reports\..*$/ */
export function globToRegExp(glob: string): RegExp {
  return new RegExp(`^${glob.split('*').map((part) => part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')).join('.*')}$`);
}

function bad(message: string): GatewayError {
  return new GatewayError('GW_ERR_CONFIG', `API keys: ${message}`);
}

const isStringArray = (v: unknown): v is string[] => Array.isArray(v) && v.every((x) => typeof x === 'string');

/**
 * Parse the key table: a JSON array of `{name, hash: "sha256:<hex>", scopes, tasks?, queues?, rateLimit?}`.
 * Plain keys are refused: only hashes are kept in configuration (`celery-gateway hash-key KEY` makes one).
 */
export function parseApiKeys(text: string): ApiKey[] {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw bad(`not valid JSON (${(err as Error).message})`);
  }
  if (!Array.isArray(raw)) throw bad('expected a JSON array of keys');
  const names = new Set<string>();
  return raw.map((entry: unknown, i) => {
    if (typeof entry !== 'object' || entry === null) throw bad(`entry ${i} is not an object`);
    const e = entry as Record<string, unknown>;
    const name = e['name'];
    if (typeof name !== 'string' || !/^[\w.@-]{1,100}$/.test(name)) throw bad(`entry ${i}: "name" must be letters, digits, . _ - @`);
    if (names.has(name)) throw bad(`duplicate key name ${name}`);
    names.add(name);
    const hash = e['hash'];
    if (typeof hash !== 'string' || !/^sha256:[0-9a-f]{64}$/.test(hash)) throw bad(`key ${name}: "hash" must be "sha256:<64 hex>" (make one with: celery-gateway hash-key <key>)`);
    const scopes = e['scopes'];
    if (!isStringArray(scopes) || scopes.length === 0 || !scopes.every((s) => (SCOPES as readonly string[]).includes(s))) {
      throw bad(`key ${name}: "scopes" must be a non-empty list of ${SCOPES.join(', ')}`);
    }
    const key: ApiKey = { name, hash: hash.slice('sha256:'.length), scopes: new Set(scopes as Scope[]) };
    if (e['tasks'] !== undefined) {
      if (!isStringArray(e['tasks'])) throw bad(`key ${name}: "tasks" must be a list of globs`);
      key.tasks = e['tasks'].map(globToRegExp);
    }
    if (e['queues'] !== undefined) {
      if (!isStringArray(e['queues'])) throw bad(`key ${name}: "queues" must be a list of queue names`);
      key.queues = new Set(e['queues']);
    }
    if (e['rateLimit'] !== undefined) {
      const limit = e['rateLimit'];
      if (typeof limit !== 'number' || !Number.isInteger(limit) || limit < 1) throw bad(`key ${name}: "rateLimit" must be a positive integer (requests per minute)`);
      key.rateLimit = limit;
    }
    return key;
  });
}

export class KeyRing {
  readonly #byHash: Map<string, ApiKey>;

  constructor(keys: readonly ApiKey[]) {
    this.#byHash = new Map(keys.map((k) => [k.hash, k]));
  }

  get size(): number {
    return this.#byHash.size;
  }

  /** true when some key has its own rate limit */
  get hasRateLimits(): boolean {
    return [...this.#byHash.values()].some((k) => k.rateLimit !== undefined);
  }

  /** The key for a presented secret. Lookup is by hash, so timing reveals nothing about the secret. */
  find(secret: string): ApiKey | undefined {
    return this.#byHash.get(hashKey(secret));
  }
}

export function hasScope(key: ApiKey, scope: Scope): boolean {
  return key.scopes.has('admin') || key.scopes.has(scope);
}

export function mayRunTask(key: ApiKey, task: string): boolean {
  return !key.tasks || key.tasks.some((re) => re.test(task));
}

/**
 * Refuse (GW_ERR_FORBIDDEN) a publish outside the key's queue allowlist. `route` is where the message
 * really goes, after task_routes and registry queues; through an exchange its bindings choose the
 * queue, which a queue allowlist cannot check, so a key with one may not publish through an exchange.
 */
export function assertMayPublish(key: ApiKey, route: Route): void {
  if (!key.queues) return;
  if (route.exchange) {
    throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} has a queue allowlist and may not publish through exchange ${route.exchange}`);
  }
  if (!key.queues.has(route.queue)) throw new GatewayError('GW_ERR_FORBIDDEN', `API key ${key.name} may not publish to queue ${route.queue}`);
}

/** The producer's `authorize` for a request's key: none without a key or a queue allowlist. */
export function publishCheck(key: ApiKey | undefined): ((route: Route) => void) | undefined {
  return key?.queues ? (route) => assertMayPublish(key, route) : undefined;
}
