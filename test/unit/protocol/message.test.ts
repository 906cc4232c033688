import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { isGatewayError } from '../../../src/errors.ts';
import { buildTaskMessage, celeryOrigin, parseTaskMessage, STANDARD_HEADER_KEYS, type TaskCall } from '../../../src/protocol/message.ts';
import { saferepr } from '../../../src/protocol/repr.ts';
import { parseIsoDate } from '../../../src/protocol/time.ts';
import type { Json, JsonObject, RawMessage } from '../../../src/protocol/types.ts';

const FIXTURES = new URL('../../fixtures/celery/', import.meta.url);
type Obj = Record<string, any>;
const load = (name: string): Obj => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));

interface Captured {
  where: string;
  raw: RawMessage;
  body: Json[];
}

/** The kombu Redis envelope → RawMessage (decoded here: the envelope module is someone else's). */
function fromEnvelope(env: Obj): RawMessage {
  const base64 = env.properties?.body_encoding === 'base64';
  return {
    headers: env.headers,
    properties: env.properties,
    contentType: env['content-type'],
    contentEncoding: env['content-encoding'],
    body: base64 ? Buffer.from(env.body, 'base64').toString('utf8') : env.body,
  };
}

function fromAmqp(msg: Obj): RawMessage {
  const { content_type, content_encoding, ...properties } = msg.properties;
  return { headers: msg.headers, properties, contentType: content_type, contentEncoding: content_encoding, body: msg.body_raw };
}

/** Every task message anywhere in the fixtures (Redis envelopes and AMQP captures with a `task` header). */
function collectTaskMessages(): Captured[] {
  const found: Captured[] = [];
  const walk = (node: unknown, where: string): void => {
    if (Array.isArray(node)) return node.forEach((n, i) => walk(n, `${where}[${i}]`));
    if (typeof node !== 'object' || node === null) return;
    const o = node as Obj;
    if (o.headers && typeof o.headers.task === 'string') {
      if ('content-type' in o && 'body' in o) {
        const raw = fromEnvelope(o);
        found.push({ where, raw, body: JSON.parse(raw.body) });
      } else if ('body_raw' in o) {
        found.push({ where, raw: fromAmqp(o), body: JSON.parse(o.body_raw) });
      }
    }
    for (const [k, v] of Object.entries(o)) walk(v, `${where}.${k}`);
  };
  for (const file of readdirSync(FIXTURES).filter((f) => f.endsWith('.json')).sort()) walk(load(file), file);
  return found;
}

function assertCode(fn: () => unknown, code: string, pattern?: RegExp): void {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isGatewayError(err), `expected a GatewayError, got ${String(err)}`);
    assert.equal(err.code, code);
    if (pattern) assert.match(err.message, pattern);
    return true;
  });
}

describe('parseTaskMessage on every captured Celery message', () => {
  const captured = collectTaskMessages();

  it('finds the task messages of all redis-* and amqp-* fixtures', () => {
    assert.ok(captured.length >= 45, `only ${captured.length} task messages found`);
    assert.ok(captured.some((c) => c.where.startsWith('amqp-')));
    assert.ok(captured.some((c) => c.where.startsWith('redis-visibility-restore')));
  });

  for (const { where, raw, body } of captured) {
    it(`decodes ${where}`, () => {
      const msg = parseTaskMessage(raw);
      for (const [key, value] of Object.entries(raw.headers)) assert.deepEqual(msg.headers[key], value, `header ${key}`);
      assert.deepEqual(msg.args, body[0]);
      assert.deepEqual(msg.kwargs, body[1]);
      const embed = (body[2] ?? {}) as JsonObject;
      for (const key of ['callbacks', 'errbacks', 'chain', 'chord'] as const) assert.deepEqual(msg.embed[key], embed[key] ?? null, `embed.${key}`);
      assert.equal(msg.properties.correlation_id, raw.properties.correlation_id);
    });
  }

  it('accepts the hand-built body [[1, 2], {}, {}] of redis-embed-empty, with a minimal header set', () => {
    const id = load('redis-embed-empty.json').value.task_id as string;
    const msg = parseTaskMessage({
      headers: { task: 'tasks.add', id, redelivered: true },
      properties: {},
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      body: '[[1, 2], {}, {}]',
    });
    assert.deepEqual(msg.embed, { callbacks: null, errbacks: null, chain: null, chord: null });
    assert.deepEqual(msg.args, [1, 2]);
    // Celery's defaults for everything that is missing
    assert.equal(msg.headers.retries, 0);
    assert.deepEqual(msg.headers.timelimit, [null, null]);
    assert.equal(msg.headers.root_id, null);
    assert.equal(msg.headers.parent_id, null);
    assert.equal(msg.headers.eta, null);
    assert.equal(msg.headers.expires, null);
    assert.equal(msg.headers.group_index, null);
    assert.equal(msg.headers.argsrepr, '');
    assert.equal(msg.headers.ignore_result, false);
    assert.equal(msg.headers['redelivered'], true, 'unknown headers are kept');
  });

  it('keeps a "__proto__" header as a key, never as the headers\' prototype', () => {
    const headers = JSON.parse('{"task": "t", "id": "i", "__proto__": {"polluted": true, "retries": 7}}') as RawMessage['headers'];
    const msg = parseTaskMessage({ headers, properties: {}, contentType: 'application/json', contentEncoding: 'utf-8', body: '[[], {}, {}]' });
    assert.equal(Object.getPrototypeOf(msg.headers), Object.prototype);
    assert.deepEqual(Object.getOwnPropertyDescriptor(msg.headers, '__proto__')?.value, { polluted: true, retries: 7 });
    assert.equal((msg.headers as Record<string, unknown>)['polluted'], undefined);
    assert.equal(msg.headers.retries, 0);
    assert.equal(JSON.stringify(msg.headers).includes('"__proto__":{"polluted":true'), true, 'written back as the key it was');
  });

  it('fills missing signature keys with Signature defaults', () => {
    const msg = parseTaskMessage({
      headers: { task: 't', id: 'i' },
      properties: {},
      contentType: 'application/json',
      contentEncoding: 'utf-8',
      body: JSON.stringify([[], {}, { callbacks: [{ task: 'tasks.mul' }], chord: null }]),
    });
    assert.deepEqual(msg.embed.callbacks, [{ task: 'tasks.mul', args: [], kwargs: {}, options: {}, subtask_type: null, immutable: false }]);
  });
});

describe('parseTaskMessage refusals', () => {
  const good = (over: Partial<RawMessage> = {}): RawMessage => ({
    headers: { task: 'tasks.add', id: 'abc' },
    properties: {},
    contentType: 'application/json',
    contentEncoding: 'utf-8',
    body: '[[1], {}, null]',
    ...over,
  });

  it('accepts the baseline message (embed null)', () => assert.deepEqual(parseTaskMessage(good()).embed.chain, null));

  for (const type of ['application/x-python-serialize', 'application/x-pickle', 'application/x-yaml', 'application/x-msgpack', 'text/plain', '']) {
    it(`refuses content type ${JSON.stringify(type)} without decoding the body`, () => {
      // The body is not JSON: a decode attempt would give GW_ERR_PROTOCOL instead.
      assertCode(() => parseTaskMessage(good({ contentType: type, body: '\x80\x04\x95 pickle bytes' })), 'GW_ERR_CONTENT_DISALLOWED');
    });
  }

  const protocolCases: [string, Partial<RawMessage>, RegExp][] = [
    ['a 2-element body', { body: '[[1], {}]' }, /3 elements/],
    ['a 4-element body', { body: '[[1], {}, {}, {}]' }, /3 elements/],
    ['a body that is not JSON', { body: '[[1], {}' }, /not valid JSON/],
    ['args that are not a list', { body: '[{"a": 1}, {}, {}]' }, /args/],
    ['kwargs that are a list', { body: '[[1], [2], {}]' }, /kwargs/],
    ['an embed that is a string', { body: '[[1], {}, "x"]' }, /embed/],
    ['callbacks that are not a list', { body: '[[1], {}, {"callbacks": {"task": "t"}}]' }, /callbacks/],
    ['a chord without a task', { body: '[[1], {}, {"chord": {"args": []}}]' }, /chord/],
    ['a missing task header', { headers: { id: 'abc' } }, /missing "task" header/],
    ['an empty id', { headers: { task: 't', id: '' } }, /"id"/],
    ['a missing id', { headers: { task: 't' } }, /"id"/],
    ['retries that is a string', { headers: { task: 't', id: 'i', retries: '1' } }, /retries/],
    ['retries that is a float', { headers: { task: 't', id: 'i', retries: 1.5 } }, /retries/],
    ['a 1-element timelimit', { headers: { task: 't', id: 'i', timelimit: [1] } }, /timelimit/],
    ['a timelimit of strings', { headers: { task: 't', id: 'i', timelimit: ['1', null] } }, /timelimit/],
    ['an impossible eta', { headers: { task: 't', id: 'i', eta: '2020-13-45T00:00:00+00:00' } }, /eta/],
    ['a numeric expires', { headers: { task: 't', id: 'i', expires: 120 } }, /expires/],
    ['ignore_result as a string', { headers: { task: 't', id: 'i', ignore_result: 'yes' } }, /ignore_result/],
    ['a protocol v1 body', { headers: {}, body: '{"task": "tasks.add", "id": "x", "args": [1, 2], "kwargs": {}}' }, /protocol v1/],
  ];
  for (const [name, over, pattern] of protocolCases) {
    it(`refuses ${name} with GW_ERR_PROTOCOL`, () => assertCode(() => parseTaskMessage(good(over)), 'GW_ERR_PROTOCOL', pattern));
  }
});

describe('buildTaskMessage reproduces Celery 5.2.6', () => {
  const SECOND = 1000;
  /** The call Celery's client made, rebuilt from the fixture's ids; `now` chosen so relative options line up. */
  const cases: { file: string; call: (h: Obj, p: Obj, body: Json[]) => { call: Partial<TaskCall>; now: Date } }[] = [
    { file: 'redis-plain.json', call: () => ({ call: {}, now: new Date() }) },
    // send_task keeps the args list, so Celery's argsrepr is a list repr: give it explicitly
    { file: 'redis-send-task-kwargs.json', call: (_h, _p, body) => ({ call: { argsrepr: saferepr(body[0] as Json[], 1024) }, now: new Date() }) },
    {
      file: 'redis-countdown.json',
      call: (h) => {
        const now = new Date(parseIsoDate(h.eta)!.getTime() - 60 * SECOND);
        return { call: { eta: new Date(now.getTime() + 60 * SECOND) }, now };
      },
    },
    { file: 'redis-eta.json', call: () => ({ call: { eta: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) }, now: new Date() }) },
    {
      file: 'redis-expires.json',
      call: (h) => {
        const now = new Date(parseIsoDate(h.expires)!.getTime() - 120 * SECOND);
        return { call: { expires: new Date(now.getTime() + 120 * SECOND) }, now };
      },
    },
    { file: 'redis-priority.json', call: () => ({ call: { priority: 5 }, now: new Date() }) },
    { file: 'redis-timelimit.json', call: () => ({ call: { timeLimit: [30, 20] }, now: new Date() }) },
    { file: 'redis-ignore-result.json', call: () => ({ call: { ignoreResult: true }, now: new Date() }) },
    { file: 'amqp-plain.json', call: () => ({ call: {}, now: new Date() }) },
    {
      file: 'amqp-countdown-expires.json',
      call: (h) => {
        const now = new Date(parseIsoDate(h.eta)!.getTime() - 60 * SECOND);
        return { call: { eta: new Date(now.getTime() + 60 * SECOND), expires: new Date(now.getTime() + 120 * SECOND) }, now };
      },
    },
  ];

  for (const { file, call: make } of cases) {
    it(`matches ${file}`, () => {
      const fixture = load(file).messages[0];
      const amqp = 'body_raw' in fixture;
      const raw = amqp ? fromAmqp(fixture) : fromEnvelope(fixture.envelope);
      const celeryBody = JSON.parse(raw.body) as Json[];
      const h = raw.headers as Obj;
      const p = raw.properties as Obj;
      const { call: extra, now } = make(h, p, celeryBody);
      const ours = buildTaskMessage(
        {
          task: h.task,
          id: h.id,
          args: celeryBody[0] as Json[],
          kwargs: celeryBody[1] as JsonObject,
          origin: celeryOrigin(12345, 'example'),
          replyTo: p.reply_to,
          ...extra,
        },
        now,
      );

      assert.deepEqual(Object.keys(ours.headers), Object.keys(h), 'header names and order');
      for (const key of Object.keys(h)) {
        if ((key === 'eta' || key === 'expires') && h[key] !== null) {
          // JS dates have milliseconds, Celery's microseconds: same instant to the millisecond
          const theirs = parseIsoDate(h[key])!.getTime();
          assert.equal(parseIsoDate(ours.headers[key] as string)!.getTime(), theirs, key);
          assert.match(ours.headers[key] as string, /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{6})?\+00:00$/);
        } else {
          assert.deepEqual(ours.headers[key], h[key], `header ${key}`);
        }
      }
      for (const key of ['correlation_id', 'reply_to', 'delivery_mode', 'priority', 'expiration']) {
        assert.deepEqual((ours.properties as Obj)[key], p[key], `property ${key}`);
      }
      assert.equal(ours.contentType, raw.contentType);
      assert.equal(ours.contentEncoding, raw.contentEncoding);
      assert.deepEqual(JSON.parse(ours.body), celeryBody, 'body');
    });
  }

  it('writes the eta header exactly like Python isoformat for whole seconds (redis-eta)', () => {
    const m = buildTaskMessage({ task: 't', id: 'i', args: [], kwargs: {}, origin: 'o', replyTo: 'r', eta: new Date(Date.UTC(2030, 0, 2, 3, 4, 5)) }, new Date());
    assert.equal(m.headers['eta'], load('redis-eta.json').messages[0].envelope.headers.eta);
  });

  it('defaults argsrepr to the tuple form apply_async writes', () => {
    const m = buildTaskMessage({ task: 't', id: 'i', args: [1, 'two'], kwargs: { k: [1, 2] }, origin: 'o', replyTo: 'r' }, new Date());
    assert.equal(m.headers['argsrepr'], "(1, 'two')");
    assert.equal(m.headers['kwargsrepr'], "{'k': [1, 2]}");
  });

  it('uses the given root/parent/group ids and falls back to the own id for an empty root_id', () => {
    const base = { task: 't', id: 'me', args: [], kwargs: {}, origin: 'o', replyTo: 'r' };
    const child = buildTaskMessage({ ...base, rootId: 'root', parentId: 'parent', group: 'g', groupIndex: 1, retries: 2, shadow: 's' }, new Date());
    assert.equal(child.headers['root_id'], 'root');
    assert.equal(child.headers['parent_id'], 'parent');
    assert.equal(child.headers['group'], 'g');
    assert.equal(child.headers['group_index'], 1);
    assert.equal(child.headers['retries'], 2);
    assert.equal(child.headers['shadow'], 's');
    assert.equal(buildTaskMessage({ ...base, rootId: '' }, new Date()).headers['root_id'], 'me');
  });

  it('clamps the expiration of an already expired task to "0", like Celery', () => {
    const now = new Date(Date.UTC(2030, 0, 1));
    const m = buildTaskMessage({ task: 't', id: 'i', args: [], kwargs: {}, origin: 'o', replyTo: 'r', expires: new Date(now.getTime() - 5000) }, now);
    assert.equal(m.properties.expiration, '0');
    const plain = buildTaskMessage({ task: 't', id: 'i', args: [], kwargs: {}, origin: 'o', replyTo: 'r' }, now);
    assert.equal('expiration' in plain.properties, false);
  });

  it('appends extra headers after the standard ones and refuses to override a standard one', () => {
    const base = { task: 't', id: 'i', args: [], kwargs: {}, origin: 'o', replyTo: 'r' };
    const m = buildTaskMessage({ ...base, headers: { tenant: 'acme' } }, new Date());
    assert.deepEqual(Object.keys(m.headers), [...STANDARD_HEADER_KEYS, 'tenant']);
    assertCode(() => buildTaskMessage({ ...base, headers: { id: 'other' } }, new Date()), 'GW_ERR_BAD_OPTION');
  });

  it('round-trips through parseTaskMessage, missing embed keys as null', () => {
    const sig = { task: 'tasks.mul', args: [10], kwargs: {}, options: {}, subtask_type: null, immutable: false };
    const m = buildTaskMessage(
      { task: 'tasks.add', id: 'i', args: [2, 3], kwargs: {}, origin: 'o', replyTo: 'r', embed: { callbacks: [sig] }, timeLimit: [30, null] },
      new Date(),
    );
    const back = parseTaskMessage(m);
    assert.deepEqual(back.embed, { callbacks: [sig], errbacks: null, chain: null, chord: null });
    assert.deepEqual(back.headers.timelimit, [30, null]);
    assert.deepEqual(back.args, [2, 3]);
  });

  it('celeryOrigin is gen<pid>@<host>', () => assert.equal(celeryOrigin(12345, 'example'), 'gen12345@example'));
});
