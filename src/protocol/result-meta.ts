/**
 * Result metas (`celery-task-meta-<id>`, §5.2) and exceptions in the JSON serializer's form (§5.3).
 */
import { GatewayError } from '../errors.ts';
import { naiveUtcIso } from './time.ts';
import { READY_STATES, type EncodedException, type Json, type JsonObject, type ResultMeta, type State } from './types.ts';

export interface BuildMetaInput {
  taskId: string;
  status: State;
  result: Json;
  traceback?: string | null;
  children?: Json[];
  groupId?: string | null;
  parentId?: string | null;
  now: Date;
}

/**
 * A meta exactly as Celery 5.2.6's backend writes it. Key order (checked against the fixtures):
 * status, result, traceback, children, date_done, [group_id], [parent_id], task_id — Celery adds
 * task_id last, after the optional keys.
 */
export function buildMeta(input: BuildMetaInput): ResultMeta {
  const meta: ResultMeta = {
    status: input.status,
    result: input.result,
    traceback: input.traceback ?? null,
    children: input.children ?? [],
    date_done: READY_STATES.has(input.status) ? naiveUtcIso(input.now) : null,
  } as ResultMeta;
  // Celery tests these with truthiness (`getattr(request, 'group', None)`): '' counts as absent.
  if (input.groupId) meta.group_id = input.groupId;
  if (input.parentId) meta.parent_id = input.parentId;
  meta.task_id = input.taskId;
  return meta;
}

/** What an error may carry to choose exactly the exception a Python client will see. */
export interface CeleryErrorLike {
  /** Python class name, e.g. "InsufficientFunds" (default: the error's name) */
  excType?: string;
  /** Python module, e.g. "myapp.errors" (default: "builtins" for builtin names, else UNKNOWN_EXC_MODULE) */
  excModule?: string;
  /** the exception's args (default: [message]) */
  excMessage?: Json[];
}

/**
 * Module written for exceptions Python does not know. A Python client cannot import it, so it
 * synthesizes a class of that name (`celery.exceptions.<Name>`, subclass of Exception) (§5.3).
 */
export const UNKNOWN_EXC_MODULE = 'celery_gateway.errors';

/**
 * Python builtin exception names we may label `builtins`. Python resolves `builtins.<name>` and
 * raises SecurityError for anything that is not an exception class, so only these ever get that
 * module. Left out on purpose: BaseException-only classes (SystemExit, KeyboardInterrupt,
 * GeneratorExit, StopIteration…) that would misbehave when a client re-raises them, warnings,
 * classes whose constructors need several arguments (UnicodeDecodeError…) and names missing
 * from older Pythons (ExceptionGroup).
 */
export const PYTHON_BUILTIN_EXCEPTIONS: ReadonlySet<string> = new Set([
  'ArithmeticError', 'AssertionError', 'AttributeError', 'BlockingIOError', 'BrokenPipeError', 'BufferError',
  'ChildProcessError', 'ConnectionAbortedError', 'ConnectionError', 'ConnectionRefusedError', 'ConnectionResetError',
  'EOFError', 'EnvironmentError', 'Exception', 'FileExistsError', 'FileNotFoundError', 'FloatingPointError', 'IOError',
  'ImportError', 'IndentationError', 'IndexError', 'InterruptedError', 'IsADirectoryError', 'KeyError', 'LookupError',
  'ModuleNotFoundError', 'NameError', 'NotADirectoryError', 'NotImplementedError', 'OSError', 'OverflowError',
  'PermissionError', 'ProcessLookupError', 'RecursionError', 'ReferenceError', 'RuntimeError', 'SyntaxError',
  'SystemError', 'TabError', 'TimeoutError', 'TypeError', 'UnboundLocalError', 'UnicodeError', 'ValueError',
  'ZeroDivisionError',
]);

/** A JSON-safe copy of anything (undefined → null; unserializable → its String()). */
function toJson(value: unknown): Json {
  try {
    const text = JSON.stringify(value);
    return text === undefined ? null : (JSON.parse(text) as Json);
  } catch {
    return String(value);
  }
}

function nonEmptyString(v: unknown): v is string {
  return typeof v === 'string' && v !== '';
}

/** Encode a thrown value the way Celery's JSON result serializer encodes an exception. */
export function encodeError(err: unknown): { exc: EncodedException; traceback: string | null } {
  const like = (typeof err === 'object' && err !== null ? err : {}) as CeleryErrorLike & { name?: unknown; message?: unknown; args?: unknown; stack?: unknown };
  const isError = err instanceof Error;

  let type = 'Error';
  if (nonEmptyString(like.excType)) type = like.excType;
  else if (isError) type = nonEmptyString(err.name) ? err.name : nonEmptyString(err.constructor?.name) ? err.constructor.name : 'Error';

  let message: Json[];
  if (Array.isArray(like.excMessage)) message = like.excMessage.map(toJson);
  else if (isError && Array.isArray(like.args)) message = like.args.map(toJson);
  else if (isError) message = [err.message];
  else if (typeof err === 'string') message = [err];
  else if (typeof like.message === 'string') message = [like.message];
  else message = [typeof err === 'object' && err !== null ? JSON.stringify(toJson(err)) : String(err)];

  let module = nonEmptyString(like.excModule) ? like.excModule : PYTHON_BUILTIN_EXCEPTIONS.has(type) ? 'builtins' : UNKNOWN_EXC_MODULE;
  // Never claim builtins for a name that is not a builtin exception (Python would raise SecurityError).
  if (module === 'builtins' && !PYTHON_BUILTIN_EXCEPTIONS.has(type)) module = UNKNOWN_EXC_MODULE;

  const traceback = isError && typeof err.stack === 'string' ? err.stack : null;
  return { exc: { exc_type: type, exc_message: message, exc_module: module }, traceback };
}

export type CeleryExceptionName = 'NotRegistered' | 'TaskRevokedError' | 'ChordError' | 'TimeLimitExceeded' | 'SoftTimeLimitExceeded' | 'Retry';

/**
 * Celery's own exceptions with their real modules. The time-limit classes live in billiard and are
 * only re-exported by celery.exceptions: `type(exc).__module__` is "billiard.exceptions" in 5.2.6.
 */
const CELERY_EXC_MODULES: Record<CeleryExceptionName, string> = {
  NotRegistered: 'celery.exceptions',
  TaskRevokedError: 'celery.exceptions',
  ChordError: 'celery.exceptions',
  Retry: 'celery.exceptions',
  TimeLimitExceeded: 'billiard.exceptions',
  SoftTimeLimitExceeded: 'billiard.exceptions',
};

export function celeryException(type: CeleryExceptionName, message: string): EncodedException {
  return { exc_type: type, exc_message: [message], exc_module: CELERY_EXC_MODULES[type] };
}

// ---------------------------------------------------------------------------------------------

function protocolError(message: string): GatewayError {
  return new GatewayError('GW_ERR_PROTOCOL', message);
}

/**
 * Parse and validate a stored meta. Missing fields get the defaults a Python client assumes
 * (a minimal `{"status", "result", "task_id"}` is valid, §5.2); a missing task_id becomes ''.
 * Keys come out in Celery's order, unknown keys (result_extended's name/args/…) after them.
 */
export function parseMeta(text: string): ResultMeta {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw new GatewayError('GW_ERR_PROTOCOL', `result meta is not valid JSON: ${(err as Error).message}`, { cause: err });
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw protocolError('result meta must be a JSON object');
  const { status, result = null, traceback = null, children = [], date_done = null, group_id, parent_id, task_id = '', ...rest } = value as JsonObject;
  if (typeof status !== 'string' || status === '') throw protocolError('result meta has no string "status"');
  if (traceback !== null && typeof traceback !== 'string') throw protocolError('result meta "traceback" must be a string or null');
  if (!Array.isArray(children)) throw protocolError('result meta "children" must be a list');
  if (date_done !== null && typeof date_done !== 'string') throw protocolError('result meta "date_done" must be a string or null');
  if (typeof task_id !== 'string') throw protocolError('result meta "task_id" must be a string');
  for (const [key, v] of [['group_id', group_id], ['parent_id', parent_id]] as const) {
    if (v !== undefined && v !== null && typeof v !== 'string') throw protocolError(`result meta "${key}" must be a string or null`);
  }
  const meta = { status, result, traceback, children, date_done } as ResultMeta;
  if (typeof group_id === 'string') meta.group_id = group_id;
  if (typeof parent_id === 'string') meta.parent_id = parent_id;
  meta.task_id = task_id;
  return Object.assign(meta, rest);
}

export function serializeMeta(meta: ResultMeta): string {
  return JSON.stringify(meta);
}

export interface ErrorDescription {
  type: string;
  message: string;
  module: string | null;
  args: Json[];
  traceback: string | null;
}

/** An encoded exception in a meta's result as an API-friendly object; null when it is not one. */
export function describeError(result: Json, traceback: string | null): ErrorDescription | null {
  if (typeof result !== 'object' || result === null || Array.isArray(result)) return null;
  const { exc_type: type, exc_message: raw, exc_module: module } = result;
  if (typeof type !== 'string') return null;
  const args: Json[] = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  const message = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(', ');
  return { type, message, module: typeof module === 'string' ? module : null, args, traceback: traceback ?? null };
}
