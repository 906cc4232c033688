/**
 * The optional task registry (TASK_REGISTRY_FILE): per Celery task name, a JSON Schema for its args
 * array and one for its kwargs object, a description and a default queue:
 *
 *   {"tasks.add": {"args": {"type": "array", "prefixItems": [{"type": "number"}, {"type": "number"}],
 *                           "items": false, "minItems": 2},
 *                  "kwargs": {"type": "object", "additionalProperties": false},
 *                  "description": "x + y", "queue": "math"}}
 *
 * Schemas are JSON Schema 2020-12 (the dialect of OpenAPI 3.1, so they are shown in /openapi.json as
 * written), compiled once at start-up with ajv (unknown keywords and formats are start-up errors naming
 * the entry). Submissions are checked against them: the first error becomes a 400 GW_ERR_ARGS_INVALID
 * with the JSON pointer of the offending value. With `strict`, task names missing from the registry are
 * refused (400 GW_ERR_TASK_NOT_REGISTERED).
 */
import { readFileSync } from 'node:fs';
import { Ajv2020, type ErrorObject, type ValidateFunction } from 'ajv/dist/2020.js';
import addFormatsModule from 'ajv-formats';
import { GatewayError } from '../errors.ts';
import type { Json } from '../protocol/types.ts';
import type { TaskRoute } from '../routing.ts';
import { QUEUE_NAME_PATTERN, TASK_NAME_PATTERN } from './schemas.ts';

// ajv-formats is CommonJS: its default import is module.exports, the plugin function itself
const addFormats = addFormatsModule as unknown as typeof addFormatsModule.default;

type Schema = boolean | Record<string, unknown>;

export interface RegistryEntry {
  name: string;
  description?: string;
  queue?: string;
  /** JSON Schema of the args array, as written in the file */
  args?: Schema;
  /** JSON Schema of the kwargs object, as written in the file */
  kwargs?: Schema;
}

interface CompiledEntry extends RegistryEntry {
  checkArgs?: ValidateFunction;
  checkKwargs?: ValidateFunction;
}

/** Where a call's arguments sit in the request body, for error pointers (RFC 6901). */
export interface CallLocation {
  /** pointer of the args array ('/args' for POST /tasks/:name), or a mapping from ajv's instancePath */
  args: string | ((instancePath: string) => string);
  /** pointer of the kwargs object */
  kwargs: string;
  /** pointer of the task name, when it is in the body (workflow nodes, links) */
  task?: string;
  /**
   * the args will get a parent's result prepended (a chain step after the first, a chord body, a link
   * callback, unless immutable): they are incomplete at submit time, so only kwargs are checked
   */
  partial?: boolean;
}

const ENTRY_KEYS = new Set(['args', 'kwargs', 'description', 'queue']);
const TASK_NAME = new RegExp(TASK_NAME_PATTERN);
const QUEUE_NAME = new RegExp(QUEUE_NAME_PATTERN);

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

/** `type` of a schema, when it says one, must allow `expected`. */
function typeAllows(schema: Schema, expected: string): boolean {
  if (typeof schema === 'boolean') return true;
  const type = schema['type'];
  if (type === undefined) return true;
  return Array.isArray(type) ? type.includes(expected) : type === expected;
}

export class TaskRegistry {
  readonly strict: boolean;
  readonly #entries = new Map<string, CompiledEntry>();

  private constructor(strict: boolean) {
    this.strict = strict;
  }

  /**
   * Parse and compile a registry. `source` names it in errors (e.g. `TASK_REGISTRY_FILE=tasks.json`);
   * every problem is a GW_ERR_CONFIG naming the entry.
   */
  static parse(text: string, source: string, strict: boolean): TaskRegistry {
    const fail = (message: string): GatewayError => new GatewayError('GW_ERR_CONFIG', `${source}: ${message}`);
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (err) {
      throw fail(`not valid JSON (${(err as Error).message})`);
    }
    if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
      throw fail('expected an object {"task.name": {"args": <JSON Schema>, "kwargs": <JSON Schema>, "description"?, "queue"?}}');
    }
    const registry = new TaskRegistry(strict);
    const ajv = new Ajv2020({ allErrors: false, strict: true, strictTypes: false, strictTuples: false, strictRequired: false, coerceTypes: false, useDefaults: false });
    addFormats(ajv);
    for (const [name, value] of Object.entries(raw as Record<string, unknown>)) {
      const where = `task ${JSON.stringify(name)}`;
      if (!TASK_NAME.test(name)) throw fail(`${where}: not a Celery task name (letters, digits, _ . : -)`);
      if (typeof value !== 'object' || value === null || Array.isArray(value)) throw fail(`${where}: expected an object {args?, kwargs?, description?, queue?}`);
      const spec = value as Record<string, unknown>;
      const unknown = Object.keys(spec).find((k) => !ENTRY_KEYS.has(k));
      if (unknown) throw fail(`${where}: unknown member ${JSON.stringify(unknown)} (allowed: args, kwargs, description, queue)`);
      const entry: CompiledEntry = { name };
      if (spec['description'] !== undefined) {
        if (typeof spec['description'] !== 'string') throw fail(`${where}: description must be a string`);
        entry.description = spec['description'];
      }
      if (spec['queue'] !== undefined) {
        if (typeof spec['queue'] !== 'string' || !QUEUE_NAME.test(spec['queue'])) throw fail(`${where}: queue must be a queue name (letters, digits, _ . : @ # * -)`);
        entry.queue = spec['queue'];
      }
      for (const part of ['args', 'kwargs'] as const) {
        const schema = spec[part];
        if (schema === undefined) continue;
        if (typeof schema !== 'boolean' && (typeof schema !== 'object' || schema === null || Array.isArray(schema))) {
          throw fail(`${where}: ${part} must be a JSON Schema (an object or a boolean)`);
        }
        const expected = part === 'args' ? 'array' : 'object';
        if (!typeAllows(schema as Schema, expected)) throw fail(`${where}: the ${part} schema must describe an ${expected} (its "type" excludes "${expected}")`);
        let check: ValidateFunction;
        try {
          check = ajv.compile(schema as Schema);
        } catch (err) {
          throw fail(`${where}: invalid ${part} schema: ${(err as Error).message}`);
        }
        entry[part] = schema as Schema;
        if (part === 'args') entry.checkArgs = check;
        else entry.checkKwargs = check;
      }
      registry.#entries.set(name, entry);
    }
    return registry;
  }

  get size(): number {
    return this.#entries.size;
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** The entries as written (schemas included), in file order. */
  entries(): RegistryEntry[] {
    return [...this.#entries.values()].map(({ checkArgs: _a, checkKwargs: _k, ...entry }) => entry);
  }

  /** Entries with a queue, as task_routes (exact names): put them before CELERY_TASK_ROUTES. */
  routes(): TaskRoute[] {
    return [...this.#entries.values()]
      .filter((e) => e.queue !== undefined)
      .map((e) => ({ pattern: e.name, test: new RegExp(`^${escapeRegExp(e.name)}$`), options: { queue: e.queue! } }));
  }

  /**
   * Check one call. Throws GW_ERR_TASK_NOT_REGISTERED (strict, unknown name) or GW_ERR_ARGS_INVALID
   * (`details.pointer`: the first error's location in the request body).
   */
  check(task: string, args: readonly Json[], kwargs: Readonly<Record<string, Json>>, at: CallLocation): void {
    const entry = this.#entries.get(task);
    if (!entry) {
      if (this.strict) {
        throw new GatewayError('GW_ERR_TASK_NOT_REGISTERED', `task ${task} is not in the task registry (TASK_REGISTRY_STRICT=true)`, {
          details: { task, ...(at.task !== undefined ? { pointer: at.task } : {}) },
        });
      }
      return;
    }
    if (entry.checkArgs && !at.partial && !entry.checkArgs(args)) throw invalid(task, 'args', at.args, entry.checkArgs.errors);
    if (entry.checkKwargs && !entry.checkKwargs(kwargs)) throw invalid(task, 'kwargs', at.kwargs, entry.checkKwargs.errors);
  }
}

function invalid(task: string, part: 'args' | 'kwargs', base: CallLocation['args'], errors: ErrorObject[] | null | undefined): GatewayError {
  const first = errors?.[0];
  const pointer = typeof base === 'function' ? base(first?.instancePath ?? '') : `${base}${first?.instancePath ?? ''}`;
  const what = first?.keyword === 'additionalProperties' && typeof first.params['additionalProperty'] === 'string'
    ? `must not have the member ${JSON.stringify(first.params['additionalProperty'])}`
    : first?.message ?? 'is invalid';
  return new GatewayError('GW_ERR_ARGS_INVALID', `${task}: ${pointer} ${what}`, {
    details: { task, pointer, ...(first ? { keyword: first.keyword, params: first.params, schemaPath: `/${part}${first.schemaPath.replace(/^#/, '')}` } : {}) },
  });
}

/** What the gateway and beat publish by: a registry entry's queue routes that exact name, before CELERY_TASK_ROUTES. */
export function publishRoutes(registry: TaskRegistry | undefined, taskRoutes: readonly TaskRoute[] = []): TaskRoute[] {
  return [...(registry?.routes() ?? []), ...taskRoutes];
}

/** The registry named by TASK_REGISTRY_FILE, or undefined when none is configured. */
export function loadTaskRegistry(config: { taskRegistryFile: string; taskRegistryStrict: boolean }): TaskRegistry | undefined {
  const file = config.taskRegistryFile;
  if (!file) {
    if (config.taskRegistryStrict) throw new GatewayError('GW_ERR_CONFIG', 'TASK_REGISTRY_STRICT=true needs TASK_REGISTRY_FILE (the registry of allowed tasks)');
    return undefined;
  }
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch (err) {
    throw new GatewayError('GW_ERR_CONFIG', `TASK_REGISTRY_FILE=${file}: ${(err as Error).message}`);
  }
  return TaskRegistry.parse(text, `TASK_REGISTRY_FILE=${file}`, config.taskRegistryStrict);
}

// ---------------------------------------------------------------------------------------------
// OpenAPI: one operation per registered task, added to the document @fastify/swagger generates.

type OpenApiDoc = { paths?: Record<string, Record<string, any>>; tags?: { name: string; description?: string }[] } & Record<string, unknown>;

const clone = <T>(value: T): T => JSON.parse(JSON.stringify(value)) as T;

/** Keywords whose values are data, not schemas: a "$ref" member there is left alone. */
const DATA_KEYWORDS = new Set(['const', 'enum', 'default', 'examples', 'example']);

/** Whether a schema holds a `$ref` into itself ("#…"), which would resolve against the OpenAPI document once embedded. */
function hasLocalRef(schema: unknown): boolean {
  if (Array.isArray(schema)) return schema.some(hasLocalRef);
  if (schema === null || typeof schema !== 'object') return false;
  return Object.entries(schema).some(([k, v]) => (k === '$ref' ? typeof v === 'string' && v.startsWith('#') : !DATA_KEYWORDS.has(k) && hasLocalRef(v)));
}

/** A copy of `schema` whose local refs point into it at `base` (a JSON pointer URI such as "#/components/schemas/x"). */
function rebaseRefs(schema: unknown, base: string): unknown {
  if (Array.isArray(schema)) return schema.map((v) => rebaseRefs(v, base));
  if (schema === null || typeof schema !== 'object') return schema;
  const out: Record<string, unknown> = {};
  for (const [k, v] of Object.entries(schema)) {
    if (k === '$ref' && typeof v === 'string' && v.startsWith('#')) out[k] = base + v.slice(1);
    else out[k] = DATA_KEYWORDS.has(k) ? clone(v) : rebaseRefs(v, base);
  }
  return out;
}

/**
 * An args or kwargs schema as the OpenAPI document shows it: as it is, or, when it refers into itself
 * (`"$ref": "#/$defs/point"`), as a component of its own whose refs are rebased onto it, so they
 * resolve in the document as they did in the schema.
 */
function documentedSchema(schema: unknown, component: string, components: Record<string, unknown>): unknown {
  if (schema !== null && typeof schema === 'object' && '$id' in schema) return clone(schema); // its refs resolve against its own $id
  if (!hasLocalRef(schema)) return clone(schema);
  const ref = `#/components/schemas/${component}`;
  components[component] = rebaseRefs(schema, ref);
  return { $ref: ref };
}

/**
 * `transformObject` for @fastify/swagger: `POST /tasks/<name>` for each registered task with its args
 * and kwargs schemas (the generic `POST /tasks/{name}` stays; concrete paths take precedence in
 * OpenAPI), and a note on the generic operation.
 */
export function registryOpenapi(registry: TaskRegistry): (input: { openapiObject: Partial<OpenApiDoc> }) => Partial<OpenApiDoc> {
  return ({ openapiObject }) => {
    const doc = clone(openapiObject) as OpenApiDoc;
    const generic = doc.paths?.['/tasks/{name}']?.['post'];
    if (!doc.paths || !generic) return doc;
    const names = registry.entries().map((e) => e.name);
    generic.description = `${generic.description ?? ''}\n\nThis gateway has a task registry of ${names.length} task(s), each documented as its own \`POST /tasks/<name>\` operation (tag "registered tasks"); their args and kwargs are validated (400 GW_ERR_ARGS_INVALID).` +
      (registry.strict ? ' Strict mode: any other task name is refused (400 GW_ERR_TASK_NOT_REGISTERED).' : ' Other task names are accepted unchecked.');
    const genericBody = generic.requestBody?.content?.['application/json']?.schema ?? {};
    const optionsSchema = genericBody.properties?.options ?? { type: 'object' };
    const used = new Set<string>();
    const components: Record<string, unknown> = {};
    for (const entry of registry.entries()) {
      let operationId = `submit_${entry.name.replace(/[^A-Za-z0-9_]/g, '_')}`;
      for (let i = 2; used.has(operationId); i += 1) operationId = `submit_${entry.name.replace(/[^A-Za-z0-9_]/g, '_')}_${i}`;
      used.add(operationId);
      const lines = [
        entry.description ?? `Submit ${entry.name}.`,
        '',
        `\`POST /tasks/{name}\` with name \`${entry.name}\`; \`args\` and \`kwargs\` must match the schemas below (400 GW_ERR_ARGS_INVALID with \`details.pointer\`).`,
      ];
      if (entry.queue) lines.push(`Default queue: \`${entry.queue}\` (\`options.queue\` overrides it).`);
      doc.paths[`/tasks/${entry.name}`] = {
        post: {
          summary: `Submit ${entry.name}`,
          description: lines.join('\n'),
          tags: ['registered tasks'],
          operationId,
          requestBody: {
            content: {
              'application/json': {
                schema: {
                  type: 'object',
                  additionalProperties: false,
                  properties: {
                    args: entry.args !== undefined ? documentedSchema(entry.args, `${operationId}.args`, components) : { type: 'array' },
                    kwargs: entry.kwargs !== undefined ? documentedSchema(entry.kwargs, `${operationId}.kwargs`, components) : { type: 'object' },
                    options: clone(optionsSchema),
                  },
                },
              },
            },
          },
          responses: clone(generic.responses ?? {}),
        },
      };
    }
    if (Object.keys(components).length > 0) {
      const existing = (doc['components'] ?? {}) as { schemas?: Record<string, unknown> };
      doc['components'] = { ...existing, schemas: { ...(existing.schemas ?? {}), ...components } };
    }
    doc.tags = [...(doc.tags ?? []), { name: 'registered tasks', description: 'Tasks of the task registry (TASK_REGISTRY_FILE), with their argument schemas' }];
    return doc;
  };
}
