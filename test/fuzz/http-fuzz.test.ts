/**
 * Fuzzing the HTTP API with fast-check (issue #8): generated bad inputs against the gateway on the
 * in-memory broker, through app.inject. For every request:
 *   - the status is never 5xx (and the process does not crash);
 *   - every 4xx is a JSON `{statusCode, code, error, message}` whose code is in the catalogue
 *     (src/errors.ts) with that same status;
 *   - a refused request published nothing (the broker counts every publish / broadcast);
 *   - inputs that are bad by construction are refused (4xx), not accepted.
 * Regression examples found by the fuzzer are kept at the end of the file.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import fc from 'fast-check';
import type { FastifyInstance } from 'fastify';
import type { InjectOptions } from 'light-my-request';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import type { Route } from '../../src/brokers/broker.ts';
import { loadConfig } from '../../src/config.ts';
import { ERRORS } from '../../src/errors.ts';
import { hashKey, KeyRing, parseApiKeys } from '../../src/auth/keys.ts';
import { buildApp } from '../../src/http/app.ts';
import { TASK_ID_PATTERN, TASK_NAME_PATTERN } from '../../src/http/schemas.ts';
import { buildMeta } from '../../src/protocol/result-meta.ts';
import { parseIsoDate } from '../../src/protocol/time.ts';
import type { RawMessage } from '../../src/protocol/types.ts';
import { silentLogger } from '../support/app.ts';

/** A memory broker that counts everything handed to it. */
class CountingBroker extends MemoryBroker {
  published = 0;
  override async publish(message: RawMessage, route: Route): Promise<void> {
    await super.publish(message, route);
    this.published += 1;
  }
  override async broadcast(message: RawMessage, exchange: string): Promise<void> {
    await super.broadcast(message, exchange);
    this.published += 1;
  }
  override async publishToExchange(message: RawMessage, exchange: string, routingKey: string): Promise<void> {
    await super.publishToExchange(message, exchange, routingKey);
    this.published += 1;
  }
}

const TASK_NAME_RE = new RegExp(TASK_NAME_PATTERN);
const TASK_ID_RE = new RegExp(TASK_ID_PATTERN);
const RUNS = Number(process.env['FUZZ_RUNS'] ?? 250);

let app: FastifyInstance;
let broker: CountingBroker;
let backend: MemoryBackend;
/** a task id whose SUCCESS is stored: a GET with any valid ?wait= answers at once */
const DONE_ID = 'h3-fuzz-done';

interface Outcome { status: number; body: any; published: number; raw: string }

async function send(opts: InjectOptions): Promise<Outcome> {
  const before = broker.published;
  const res = await app.inject(opts);
  let body: unknown = undefined;
  try { body = JSON.parse(res.body); } catch { /* checked below */ }
  return { status: res.statusCode, body, published: broker.published - before, raw: res.body };
}

/** The invariants of every answer; `refused` asks for a 4xx. */
function check(out: Outcome, what: string, refused: boolean): void {
  const ctx = `${what} → ${out.status} ${out.raw.slice(0, 300)}`;
  assert.ok(out.status < 500, `5xx: ${ctx}`);
  if (refused) assert.ok(out.status >= 400, `accepted a bad input: ${ctx}`);
  if (out.status >= 400) {
    assert.equal(typeof out.body, 'object', `error body is not JSON: ${ctx}`);
    assert.deepEqual(Object.keys(out.body).filter((k) => k !== 'details').sort(), ['code', 'error', 'message', 'statusCode'], ctx);
    assert.equal(out.body.statusCode, out.status, ctx);
    const spec = (ERRORS as Record<string, { status: number }>)[out.body.code];
    assert.ok(spec, `code ${out.body.code} is not in the catalogue: ${ctx}`);
    assert.equal(spec.status, out.status, `code ${out.body.code} has status ${spec.status}: ${ctx}`);
    assert.equal(typeof out.body.message, 'string', ctx);
    assert.equal(out.published, 0, `a refused request published ${out.published} message(s): ${ctx}`);
  }
}

const describeInput = (v: unknown): string => {
  try { return JSON.stringify(v)?.slice(0, 200) ?? String(v); } catch { return String(v).slice(0, 200); }
};

// ---------------------------------------------------------------------------------------------
// Generators

/** strings with the characters that break things: NUL, lone surrogates, RTL override, path characters */
const nasty = fc.constantFrom('\u0000', '\ud800', '\udfff', '\u202e', '\u200f', '\ufeff', '\uffff', '/', '\\', '..', '%', '%00', '%2F', '?', '#', '&', ' ', '\n', '\r', '\t', '"', "'", '<', '{', 'é', '😀', '\u0085', '\u2028');
const weirdString = fc.oneof(
  fc.string({ unit: fc.oneof(nasty, fc.string({ unit: 'binary', minLength: 1, maxLength: 1 })), maxLength: 40 }),
  fc.string({ unit: 'binary', maxLength: 40 }),
  fc.string({ maxLength: 40 }),
);
const hugeNumber = fc.constantFrom(1e308, -1e308, Number.MAX_SAFE_INTEGER + 2, -0, 5e-324, 1.7976931348623157e308, 2 ** 64, 123456789012345678901234567890);
/** any JSON value, odd strings and numbers included */
const jsonish = fc.letrec((tie) => ({
  value: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.constant(null), fc.boolean(), fc.integer(), fc.double({ noNaN: true, noDefaultInfinity: true }), hugeNumber, weirdString,
    fc.array(tie('value'), { maxLength: 4 }),
    fc.dictionary(weirdString, tie('value'), { maxKeys: 4 }),
  ),
})).value;

const notArray = jsonish.filter((v) => !Array.isArray(v));
const notObject = jsonish.filter((v) => v === null || typeof v !== 'object' || Array.isArray(v));
const notString = jsonish.filter((v) => typeof v !== 'string');
const notNumber = jsonish.filter((v) => typeof v !== 'number');
const badTaskId = fc.oneof(notString, weirdString.filter((s) => !TASK_ID_RE.test(s)), fc.constant('a'.repeat(256)));
const garbageDate = weirdString.filter((s) => parseIsoDate(s) === null);

const OPTION_KEYS = ['task_id', 'queue', 'exchange', 'routing_key', 'priority', 'countdown', 'eta', 'expires', 'time_limit', 'soft_time_limit', 'ignore_result', 'link', 'link_error'];

/** options with exactly one bad field: bad by construction */
const badOptions: fc.Arbitrary<Record<string, unknown>> = fc.oneof(
  fc.record({ task_id: badTaskId }),
  fc.record({ queue: fc.oneof(notString, weirdString.filter((s) => !/^[A-Za-z0-9_.:@#*-]{1,200}$/.test(s)), fc.constant('q'.repeat(201))) }),
  fc.record({ exchange: fc.oneof(notString, weirdString.filter((s) => !/^[A-Za-z0-9_.:@-]{0,200}$/.test(s))) }),
  fc.record({ priority: fc.oneof(notNumber, fc.integer({ min: 256 }), fc.integer({ max: -1 }), fc.double({ min: 0.01, max: 0.99 }), hugeNumber.filter((n) => !Number.isInteger(n) || n > 255 || n < 0)) }),
  fc.record({ countdown: fc.oneof(notNumber, fc.double({ max: -0.0001, noNaN: true }), fc.constant(1e12), hugeNumber.filter((n) => n > 315360000 || n < 0)) }),
  fc.record({ eta: fc.oneof(notString, garbageDate, fc.constant('9'.repeat(100))) }),
  fc.record({ expires: fc.oneof(fc.constant(null), fc.boolean(), fc.constant(0), fc.integer({ max: 0 }), fc.constant(1e12), garbageDate, fc.array(fc.integer(), { maxLength: 2 })) }),
  fc.record({ time_limit: fc.oneof(notNumber, fc.integer({ max: 0 })) }),
  fc.record({ soft_time_limit: fc.oneof(notNumber, fc.integer({ max: 0 })) }),
  fc.record({ ignore_result: jsonish.filter((v) => typeof v !== 'boolean') }),
  fc.record({ eta: fc.constant('2030-01-01T00:00:00Z'), countdown: fc.integer({ min: 1, max: 100 }) }),
  fc.record({ link: fc.oneof(fc.constant(null), fc.integer(), fc.constant([1]), fc.record({ task: weirdString.filter((s) => !TASK_NAME_RE.test(s)) }), fc.record({ nottask: fc.string() })) }),
  fc.record({ link_error: fc.oneof(fc.constant('tasks.x'), fc.constant([{ chain: [] }]), fc.array(fc.constant({ task: 'tasks.x' }), { minLength: 101, maxLength: 110 })) }),
  fc.dictionary(weirdString.filter((k) => !OPTION_KEYS.includes(k)), jsonish, { minKeys: 1, maxKeys: 3 }),
);

/** a submit body that is bad by construction (one wrong member) */
const badSubmitBody: fc.Arbitrary<unknown> = fc.oneof(
  notObject.filter((v) => v !== null), // `null` is read as no body (curl -X POST), by design
  fc.record({ args: notArray }),
  fc.record({ kwargs: notObject }),
  fc.record({ options: notObject }),
  fc.record({ args: fc.array(jsonish, { maxLength: 3 }), options: badOptions }),
  fc.dictionary(weirdString.filter((k) => !['args', 'kwargs', 'options'].includes(k)), jsonish, { minKeys: 1, maxKeys: 3 }),
);

/** a body that may be valid: odd values in args / kwargs are the client's business */
const oddButValidBody = fc.record({
  args: fc.array(jsonish, { maxLength: 5 }),
  kwargs: fc.dictionary(weirdString, jsonish, { maxKeys: 4 }),
}, { requiredKeys: [] });

/** whether a JSON value holds a "__proto__" key, or a "constructor" key whose value holds "prototype" */
function poisoned(value: unknown): boolean {
  if (value === null || typeof value !== 'object') return false;
  if (Array.isArray(value)) return value.some(poisoned);
  return Object.entries(value).some(([k, v]) => k === '__proto__'
    || (k === 'constructor' && v !== null && typeof v === 'object' && Object.hasOwn(v, 'prototype'))
    || poisoned(v));
}

/** text that JSON.parse refuses */
const malformedJsonText = fc.oneof(
  fc.string({ maxLength: 60 }),
  fc.string({ unit: 'binary', maxLength: 60 }),
  fc.json().map((s) => s.slice(0, Math.max(0, s.length - 1)) + '\u0000'),
  fc.json({ maxDepth: 3 }).chain((s) => fc.nat({ max: Math.max(0, s.length - 1) }).map((n) => s.slice(0, n))),
  fc.constantFrom('{', '{"args":[1,}', '{"args":[1]]', "{'args':[1]}", '{"args":NaN}', '{"args":[Infinity]}', '{"args":[01]}', 'undefined', '\ufeff{}x', '{"a":1}{"b":2}', '{"args":"\\x00"}', '[', '"\\ud800', '{"__proto__":'),
).filter((s) => { try { JSON.parse(s); return false; } catch { return true; } });

const badTaskName = fc.oneof(
  weirdString.filter((s) => s.length > 0 && !TASK_NAME_RE.test(s)),
  fc.constant('a'.repeat(256)),
  fc.constantFrom('..', '.', '-x', '1abc', 'tasks add', 'tasks/add', 'a\u0000b', '\u202eevil', 'tasks.%00', '%2e%2e'),
);

const pathSegment = (s: string): string => encodeURIComponent(s.replace(/[\ud800-\udfff]/g, '\ufffd'));

/** a workflow node, mostly wrong: unknown kinds, wrong member types, empty lists */
const workflowNode: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  node: fc.oneof(
    { depthSize: 'small', withCrossShrink: true },
    fc.record({ task: fc.oneof(fc.constantFrom('tasks.add', 'tasks.mul'), weirdString, notString) as fc.Arbitrary<unknown>, args: fc.oneof(fc.array(jsonish, { maxLength: 2 }), notArray) }, { requiredKeys: ['task'] }),
    fc.record({ chain: fc.oneof(fc.array(tie('node'), { maxLength: 3 }), notArray) }),
    fc.record({ group: fc.oneof(fc.array(tie('node'), { maxLength: 3 }), notArray), id: fc.oneof(fc.constant('g1'), badTaskId) }, { requiredKeys: ['group'] }),
    fc.record({ chord: fc.oneof(fc.record({ header: fc.array(tie('node'), { maxLength: 3 }), body: tie('node') }), notObject) }),
    fc.record({ map: fc.record({ task: fc.constantFrom('tasks.add', ''), items: fc.oneof(fc.array(jsonish, { maxLength: 3 }), notArray) }) }),
    fc.record({ chunks: fc.record({ task: fc.constant('tasks.add'), items: fc.array(fc.array(fc.integer(), { maxLength: 2 }), { maxLength: 3 }), size: fc.oneof(fc.integer(), notNumber) }) }),
    fc.record({ starmap: fc.record({ task: fc.constant('tasks.add'), items: fc.array(jsonish, { maxLength: 3 }) }) }),
    fc.dictionary(fc.constantFrom('nope', 'Chain', 'tasks', '', 'chain ', '__proto__', 'constructor'), jsonish, { minKeys: 1, maxKeys: 2 }),
    notObject,
    fc.record({ task: fc.constant('tasks.add'), chain: fc.constant([{ task: 'tasks.add' }]) }),
  ),
})).node;

// ---------------------------------------------------------------------------------------------

describe('HTTP fuzzing (fast-check, memory broker, app.inject)', () => {
  before(async () => {
    broker = new CountingBroker();
    backend = new MemoryBackend({ submittedTtlSec: 3600 });
    app = await buildApp({ broker, backend, config: loadConfig({ MAX_WAIT_SECONDS: '60' }), logger: silentLogger });
    await app.ready();
    await backend.store(buildMeta({ taskId: DONE_ID, status: 'SUCCESS', result: 42, now: new Date() }));
  });
  after(async () => {
    await app.close();
    await broker.close();
    await backend.close();
  });

  it('malformed JSON text: 400 GW_ERR_BAD_JSON, nothing published', async () => {
    await fc.assert(fc.asyncProperty(malformedJsonText, fc.constantFrom('/tasks/tasks.add', '/workflows', '/api/task/async-apply/tasks.add', '/tasks/abc/revoke', '/schedules/h3-x'), async (text, url) => {
      const out = await send({ method: url.startsWith('/schedules') ? 'PUT' : 'POST', url, payload: text, headers: { 'content-type': 'application/json' } });
      check(out, `${url} ${describeInput(text)}`, true);
      if (text.trim() !== '') assert.equal(out.body.code, 'GW_ERR_BAD_JSON', `${describeInput(text)} → ${out.raw}`);
    }), { numRuns: RUNS * 2, includeErrorInReport: true });
  });

  it('wrong types for args / kwargs / options, unknown keys, bad option values: 4xx, nothing published', async () => {
    await fc.assert(fc.asyncProperty(badSubmitBody, fc.constantFrom('/tasks/tasks.add', '/api/task/async-apply/tasks.add'), async (body, url) => {
      // the Flower alias takes options at the top level
      const payload = url.startsWith('/api') && body && typeof body === 'object' && !Array.isArray(body) && 'options' in body
        ? { ...(body as Record<string, unknown>), ...((body as { options: Record<string, unknown> }).options ?? {}), options: undefined }
        : body;
      const out = await send({ method: 'POST', url, payload: JSON.stringify(payload), headers: { 'content-type': 'application/json' } });
      // Flower accepts unknown top-level keys it does not know? check only the invariants there
      check(out, `${url} ${describeInput(payload)}`, url.startsWith('/tasks'));
    }), { numRuns: RUNS * 3, includeErrorInReport: true });
  });

  it('odd but valid values (huge numbers, lone surrogates, NUL, RTL) are accepted and published once', async () => {
    await fc.assert(fc.asyncProperty(oddButValidBody, async (body) => {
      const out = await send({ method: 'POST', url: '/tasks/tasks.echo', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      check(out, describeInput(body), false);
      if (poisoned(body)) {
        // fast-check plants "__proto__" keys on purpose: refused, as Fastify does by default
        assert.equal(out.status, 400, `${describeInput(body)} → ${out.raw}`);
        assert.match(out.body.message, /prototype poisoning/);
        return;
      }
      assert.equal(out.status, 202, `${describeInput(body)} → ${out.raw}`);
      assert.equal(out.published, 1);
    }), { numRuns: RUNS, includeErrorInReport: true });
  });

  it('huge strings and bodies: 413 GW_ERR_BODY_TOO_LARGE past BODY_LIMIT, nothing published', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1_048_577, max: 1_300_000 }), fc.constantFrom('x', 'é', '\u0000'), async (size, ch) => {
      const payload = JSON.stringify({ args: [ch.repeat(size)] });
      const out = await send({ method: 'POST', url: '/tasks/tasks.add', payload, headers: { 'content-type': 'application/json' } });
      check(out, `body of ${payload.length} chars`, true);
      assert.equal(out.body.code, 'GW_ERR_BODY_TOO_LARGE');
    }), { numRuns: 10, includeErrorInReport: true });
  });

  it('deep nesting in args, kwargs and options: never a 5xx', async () => {
    // built as text: JSON.stringify of the deepest values would overflow the test's own stack
    const nested = (depth: number, open: string, leaf: string, close: string): string => open.repeat(depth) + leaf + close.repeat(depth);
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1, max: 20_000 }), fc.constantFrom('array', 'object', 'kwargs', 'link'), async (depth, kind) => {
      let payload: string;
      if (kind === 'array') payload = `{"args":[${nested(depth, '[', '1', ']')}]}`;
      else if (kind === 'object') payload = `{"args":[${nested(depth, '{"a":', '1', '}')}]}`;
      else if (kind === 'kwargs') payload = `{"kwargs":${nested(depth, '{"k":', '{}', '}')}}`;
      else payload = `{"options":{"link":${nested(depth, '{"chain":[', '{"task":"tasks.add"}', ']}')}}}`;
      const out = await send({ method: 'POST', url: '/tasks/tasks.echo', payload, headers: { 'content-type': 'application/json' } });
      check(out, `${kind} nested ${depth} deep`, false);
    }), { numRuns: 60, includeErrorInReport: true });
  });

  it('bad task names: 400 GW_ERR_BAD_TASK_NAME or 404, nothing published', async () => {
    await fc.assert(fc.asyncProperty(badTaskName, fc.constantFrom('/tasks/', '/api/task/async-apply/', '/api/task/send-task/', '/api/task/apply/'), async (name, prefix) => {
      const out = await send({ method: 'POST', url: prefix + pathSegment(name), payload: '{}', headers: { 'content-type': 'application/json' } });
      check(out, `${prefix}${describeInput(name)}`, true);
      assert.ok(['GW_ERR_BAD_TASK_NAME', 'GW_ERR_NOT_FOUND', 'GW_ERR_VALIDATION'].includes(out.body.code), out.raw);
    }), { numRuns: RUNS * 2, includeErrorInReport: true });
    // empty name and raw path characters
    for (const url of ['/tasks/', '/tasks//', '/tasks/../tasks.add', '/tasks/%', '/tasks/%zz', '/tasks/%C0%AF', '/tasks/a%00b', '/tasks/%ED%A0%80']) {
      check(await send({ method: 'POST', url, payload: '{}', headers: { 'content-type': 'application/json' } }), url, true);
    }
  });

  it('bad ids on GET /results/:id, /results/:id/events, /workflows/:id, revoke: 4xx, nothing published', async () => {
    const badId = fc.oneof(weirdString.filter((s) => s.length > 0 && !TASK_ID_RE.test(s)), fc.constant('i'.repeat(256)));
    await fc.assert(fc.asyncProperty(badId, fc.constantFrom('GET /results/%s', 'GET /results/%s/events', 'GET /workflows/%s', 'POST /tasks/%s/revoke', 'POST /api/task/revoke/%s', 'GET /api/task/result/%s'), async (id, route) => {
      const [method, pattern] = route.split(' ') as [string, string];
      const url = pattern.replace('%s', pathSegment(id));
      const out = await send({ method: method as 'GET', url, ...(method === 'POST' ? { payload: '{}', headers: { 'content-type': 'application/json' } } : {}) });
      check(out, `${url}`, true);
    }), { numRuns: RUNS * 2, includeErrorInReport: true });
    // valid but unknown ids: 404 (no long wait, no publish)
    await fc.assert(fc.asyncProperty(fc.stringMatching(/^[A-Za-z0-9_.:@+=-]{1,40}$/).filter((s) => s !== DONE_ID && s !== '.' && s !== '..'), async (id) => {
      const out = await send({ method: 'GET', url: `/results/${encodeURIComponent(id)}` });
      check(out, id, true);
      assert.equal(out.body.code, 'GW_ERR_RESULT_NOT_FOUND', out.raw);
    }), { numRuns: RUNS, includeErrorInReport: true });
  });

  it('revoke with bad bodies and query strings: 4xx and no broadcast', async () => {
    const badRevokeBody = fc.oneof(
      notObject.filter((v) => v !== null),
      fc.record({ terminate: jsonish.filter((v) => typeof v !== 'boolean') }),
      fc.record({ signal: fc.oneof(notString, weirdString.filter((s) => !/^(SIG)?[A-Z0-9]{2,10}$/.test(s))) }),
      fc.dictionary(weirdString.filter((k) => k !== 'terminate' && k !== 'signal'), jsonish, { minKeys: 1, maxKeys: 2 }),
    );
    await fc.assert(fc.asyncProperty(badRevokeBody, async (body) => {
      const out = await send({ method: 'POST', url: '/tasks/abc/revoke', payload: JSON.stringify(body), headers: { 'content-type': 'application/json' } });
      check(out, describeInput(body), true);
    }), { numRuns: RUNS, includeErrorInReport: true });
  });

  it('bad query strings: 4xx (or an immediate answer), nothing published', async () => {
    const queryValue = fc.oneof(weirdString, fc.constantFrom('-1', '1e999', 'NaN', 'Infinity', '0x10', '99999', '', '[]', '{}', 'true', '1,2', '%', '%zz', '5%00'));
    await fc.assert(fc.asyncProperty(
      fc.constantFrom(`/results/${DONE_ID}?wait=`, `/api/task/result/${DONE_ID}?timeout=`, '/queues?names=', '/workers?timeout=', '/api/workers?timeout=', `/results/${DONE_ID}?`, '/schedules/h3-none?count=', '/tasks/abc/revoke?terminate='),
      queryValue, fc.boolean(),
      async (prefix, value, raw) => {
        const encoded = raw ? value.replace(/[\ud800-\udfff]/g, '?').replace(/[#\s]/g, '_') : encodeURIComponent(value.replace(/[\ud800-\udfff]/g, '\ufffd'));
        const url = prefix + encoded;
        // valid timeouts on /workers wait that many seconds for replies: keep those out
        if (/workers\?timeout=/.test(url)) {
          let text = encoded;
          try { text = decodeURIComponent(encoded).trim(); } catch { /* stays encoded */ }
          const n = Number(text);
          if (text !== '' && Number.isFinite(n) && n > 0.05) return;
        }
        const method = url.includes('/revoke') ? 'POST' : 'GET';
        const out = await send({ method, url, ...(method === 'POST' ? { payload: '{}', headers: { 'content-type': 'application/json' } } : {}) });
        check(out, url, false);
        if (!url.includes('/revoke')) assert.equal(out.published, url.includes('workers') ? out.published : 0);
      },
    ), { numRuns: RUNS * 2, includeErrorInReport: true });
  });

  it('wrong content types: 415 (or a 4xx), nothing published', async () => {
    const contentType = fc.oneof(
      fc.constantFrom('text/plain', 'application/xml', 'multipart/form-data; boundary=x', 'application/x-www-form-urlencoded', 'application/octet-stream', 'application/x-python-serialize', 'application/jsonx', 'json', 'application/', '/', ';', 'text/json', 'application/*', '*/*'),
      weirdString.map((s) => s.replace(/[^\x20-\x7e]/g, 'x')).filter((s) => !/^\s*application\/json\s*(;|$)/i.test(s)),
    );
    await fc.assert(fc.asyncProperty(contentType, fc.constantFrom('{"args":[1,2]}', '', 'args=1', '\u0000'), fc.constantFrom('/tasks/tasks.add', '/workflows', '/tasks/abc/revoke', '/api/task/async-apply/tasks.add'), async (type, payload, url) => {
      const out = await send({ method: 'POST', url, payload, headers: { 'content-type': type } });
      // an empty body with a content type is a POST without a body: /tasks and revoke accept it
      const isJson = /^\s*application\/json\s*(;|$)/i.test(type);
      check(out, `${url} content-type ${JSON.stringify(type)} body ${JSON.stringify(payload)}`, !isJson && (payload !== '' || url === '/workflows'));
    }), { numRuns: RUNS * 2, includeErrorInReport: true });
  });

  it('workflows: random and wrong node kinds never give a 5xx; refused ones publish nothing', async () => {
    await fc.assert(fc.asyncProperty(workflowNode, async (spec) => {
      const out = await send({ method: 'POST', url: '/workflows', payload: JSON.stringify(spec), headers: { 'content-type': 'application/json' } });
      check(out, describeInput(spec), false);
      if (out.status === 202) assert.ok(out.published > 0);
    }), { numRuns: RUNS * 3, includeErrorInReport: true });
  });

  it('workflows: too deep or too wide trees are 400 GW_ERR_BAD_WORKFLOW', async () => {
    await fc.assert(fc.asyncProperty(fc.integer({ min: 33, max: 5000 }), fc.constantFrom('chain', 'group', 'chord'), async (depth, kind) => {
      const [open, close] = kind === 'chord' ? ['{"chord":{"body":{"task":"tasks.xsum"},"header":[', ']}}'] : [`{"${kind}":[`, ']}'];
      const payload = open.repeat(depth) + '{"task":"tasks.add","args":[1,2]}' + close.repeat(depth);
      const out = await send({ method: 'POST', url: '/workflows', payload, headers: { 'content-type': 'application/json' } });
      check(out, `${kind} ${depth} deep`, true);
      // past JSON_MAX_DEPTH (256) the body is refused before the workflow is read
      assert.ok(['GW_ERR_BAD_WORKFLOW', 'GW_ERR_VALIDATION'].includes(out.body.code), out.raw);
    }), { numRuns: 30, includeErrorInReport: true });
    await fc.assert(fc.asyncProperty(fc.integer({ min: 1001, max: 20_000 }), async (width) => {
      const spec = { group: Array.from({ length: width }, (_, i) => ({ task: 'tasks.add', args: [i, i] })) };
      const out = await send({ method: 'POST', url: '/workflows', payload: JSON.stringify(spec), headers: { 'content-type': 'application/json' } });
      check(out, `group of ${width}`, true);
      assert.ok(['GW_ERR_BAD_WORKFLOW', 'GW_ERR_BODY_TOO_LARGE'].includes(out.body.code), out.raw);
    }), { numRuns: 10, includeErrorInReport: true });
  });

  it('schedules: bad entries are 4xx with a schedule code', async () => {
    const badEntry = fc.oneof(
      notObject,
      fc.record({ task: fc.oneof(notString, badTaskName), every: fc.constant(10) }),
      fc.record({ task: fc.constant('tasks.add'), every: fc.oneof(fc.integer({ max: 0 }), weirdString.filter((s) => !/\d/.test(s)), fc.constant(1e308), fc.constant(-1e308)) }),
      fc.record({ task: fc.constant('tasks.add'), cron: fc.oneof(weirdString, notString, fc.constant('* * * * * *'), fc.constant('61 * * * *')) }),
      fc.record({ task: fc.constant('tasks.add'), cron: fc.constant('* * * * *'), timezone: weirdString.filter((s) => !/^[A-Za-z0-9/_+-]*$/.test(s)) }), // a character no zone name has ("gb", "Pst" are zones)
      fc.record({ task: fc.constant('tasks.add'), at: fc.oneof(garbageDate, notString) }),
      fc.record({ task: fc.constant('tasks.add'), every: fc.constant(5), cron: fc.constant('* * * * *') }),
      fc.record({ task: fc.constant('tasks.add'), every: fc.constant(5), args: notArray }),
    );
    await fc.assert(fc.asyncProperty(badEntry, async (entry) => {
      const out = await send({ method: 'PUT', url: '/schedules/h3-fuzz', payload: JSON.stringify(entry), headers: { 'content-type': 'application/json' } });
      check(out, describeInput(entry), true);
    }), { numRuns: RUNS, includeErrorInReport: true });
    const listed = await send({ method: 'GET', url: '/schedules' });
    assert.equal(JSON.stringify(listed.body).includes('h3-fuzz'), false, 'no refused entry was stored');
  });

  describe('regressions found by the fuzzer', () => {
    it('args nested 4176 deep was a 500 (JSON.stringify overflowed the stack): now 400 GW_ERR_VALIDATION', async () => {
      const payload = `{"args":[${'['.repeat(4176)}1${']'.repeat(4176)}]}`;
      const out = await send({ method: 'POST', url: '/tasks/tasks.echo', payload, headers: { 'content-type': 'application/json' } });
      check(out, 'args 4176 deep', true);
      assert.equal(out.body.code, 'GW_ERR_VALIDATION');
      assert.match(out.body.message, /deeper than 256/);
    });

    it('a workflow task with deeply nested args: 400, nothing published', async () => {
      const payload = `{"chain":[{"task":"tasks.add","args":[${'{"a":'.repeat(5000)}1${'}'.repeat(5000)}]}]}`;
      const out = await send({ method: 'POST', url: '/workflows', payload, headers: { 'content-type': 'application/json' } });
      check(out, 'workflow args 5000 deep', true);
    });

    it('nesting up to the limit is still accepted', async () => {
      const payload = `{"args":[${'['.repeat(250)}1${']'.repeat(250)}]}`;
      const out = await send({ method: 'POST', url: '/tasks/tasks.echo', payload, headers: { 'content-type': 'application/json' } });
      check(out, 'args 250 deep', false);
      assert.equal(out.status, 202);
      assert.equal(out.published, 1);
    });

    it('a 256-character task name got Fastify\'s own 414 FST_ERR_MAX_PARAM_LENGTH (params were capped at 100): now our 400', async () => {
      const out = await send({ method: 'POST', url: `/tasks/${'a'.repeat(256)}`, payload: '{}', headers: { 'content-type': 'application/json' } });
      check(out, '256-char name', true);
      assert.equal(out.body.code, 'GW_ERR_BAD_TASK_NAME');
      const long = await send({ method: 'GET', url: `/results/${'i'.repeat(600)}` });
      check(long, '600-char id', true);
      assert.equal(long.body.code, 'GW_ERR_VALIDATION');
    });

    it('a 150-character task name (valid for Celery) was refused with a 414: now accepted', async () => {
      const name = `tasks.${'n'.repeat(144)}`;
      const out = await send({ method: 'POST', url: `/tasks/${name}`, payload: '{"args":[1]}', headers: { 'content-type': 'application/json' } });
      assert.equal(out.status, 202, out.raw);
      assert.equal(out.body.task, name);
      const id = 'x'.repeat(200);
      await backend.store(buildMeta({ taskId: id, status: 'SUCCESS', result: 1, now: new Date() }));
      const got = await send({ method: 'GET', url: `/results/${id}` });
      assert.equal(got.status, 200, got.raw);
    });

    it('GET /% was Fastify\'s FST_ERR_BAD_URL body: now 400 GW_ERR_VALIDATION in our shape', async () => {
      for (const url of ['/%', '/results/%E0%A4%A', '/tasks/%zz/revoke']) {
        const out = await send({ method: url.includes('revoke') ? 'POST' : 'GET', url });
        check(out, url, true);
        assert.equal(out.body.code, 'GW_ERR_VALIDATION');
      }
    });
  });

  it('unknown routes and methods: 404 / 405 JSON', async () => {
    await fc.assert(fc.asyncProperty(fc.constantFrom('GET', 'PATCH', 'DELETE', 'PUT', 'OPTIONS', 'POST'), fc.oneof(fc.constantFrom('/tasks/tasks.add', '/workflows', '/results/x', '/nope', '/', '//', '/tasks', '/%', '/..'), weirdString.map((s) => '/' + pathSegment(s))), async (method, url) => {
      const out = await send({ method: method as 'GET', url });
      check(out, `${method} ${url}`, false);
    }), { numRuns: RUNS, includeErrorInReport: true });
  });
});

describe('HTTP fuzzing with API keys', () => {
  const SECRET = 'h3-fuzz-secret-0123456789abcdef';
  let authed: FastifyInstance;
  let authBroker: CountingBroker;
  before(async () => {
    authBroker = new CountingBroker();
    const keys = new KeyRing(parseApiKeys(JSON.stringify([
      { name: 'reader', hash: `sha256:${hashKey(SECRET)}`, scopes: ['read'] },
      { name: 'narrow', hash: `sha256:${hashKey(`${SECRET}-narrow`)}`, scopes: ['submit'], tasks: ['reports.*'], queues: ['reports'] },
    ])));
    authed = await buildApp({ broker: authBroker, backend: new MemoryBackend({ submittedTtlSec: 60 }), config: loadConfig({}), logger: silentLogger, keys });
    await authed.ready();
  });
  after(async () => { await authed.close(); await authBroker.close(); });

  it('bad Authorization headers, wrong scopes and allowlists: 401 / 403 JSON, nothing published', async () => {
    const header = fc.oneof(
      weirdString.map((s) => s.replace(/[^\x20-\x7e]/g, 'x')),
      weirdString.map((s) => `Bearer ${s.replace(/[^\x21-\x7e]/g, 'x')}`),
      fc.constantFrom('Bearer', 'Bearer ', 'bearer  ', `Basic ${SECRET}`, `Bearer ${SECRET} extra`, `Bearer ${SECRET.toUpperCase()}`, `Bearer ${SECRET}`, `Bearer ${SECRET}-narrow`, `Token ${SECRET}`, `Bearer ${SECRET.slice(0, -1)}`),
    );
    await fc.assert(fc.asyncProperty(header, fc.constantFrom('tasks.add', 'reports.daily'), fc.constantFrom('celery', 'reports'), async (authorization, task, queue) => {
      const before = authBroker.published;
      const res = await authed.inject({ method: 'POST', url: `/tasks/${task}`, payload: JSON.stringify({ options: { queue } }), headers: { 'content-type': 'application/json', authorization } });
      const out: Outcome = { status: res.statusCode, body: JSON.parse(res.body), published: authBroker.published - before, raw: res.body };
      // only the narrow key, on its task and queue, may submit
      const allowed = authorization.trim() === `Bearer ${SECRET}-narrow` && task === 'reports.daily' && queue === 'reports';
      check(out, `${JSON.stringify(authorization)} ${task} ${queue}`, !allowed);
      if (!allowed) assert.ok(['GW_ERR_UNAUTHORIZED', 'GW_ERR_FORBIDDEN'].includes(out.body.code), out.raw);
      else assert.equal(out.status, 202);
    }), { numRuns: RUNS, includeErrorInReport: true });
  });
});
