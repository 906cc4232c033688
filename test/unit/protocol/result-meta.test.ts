import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { isGatewayError } from '../../../src/errors.ts';
import {
  buildMeta,
  celeryException,
  describeError,
  encodeError,
  parseMeta,
  serializeMeta,
  UNKNOWN_EXC_MODULE,
} from '../../../src/protocol/result-meta.ts';
import { naiveUtcIso, parseIsoDate } from '../../../src/protocol/time.ts';
import type { Json, ResultMeta } from '../../../src/protocol/types.ts';

const FIXTURES = new URL('../../fixtures/celery/', import.meta.url);
type Obj = Record<string, any>;
const load = (name: string): Obj => JSON.parse(readFileSync(new URL(name, FIXTURES), 'utf8'));

/** Every meta-shaped object ({status, task_id, …}) in a fixture, also inside logged SETEX values. */
function metasIn(node: unknown, where: string, out: [string, Obj][] = []): [string, Obj][] {
  if (typeof node === 'string' && node.startsWith('{"status": ')) out.push([`${where} (raw)`, JSON.parse(node)]);
  else if (Array.isArray(node)) node.forEach((n, i) => metasIn(n, `${where}[${i}]`, out));
  else if (typeof node === 'object' && node !== null) {
    const o = node as Obj;
    if (typeof o.status === 'string' && 'task_id' in o) out.push([where, o]);
    for (const [k, v] of Object.entries(o)) metasIn(v, `${where}.${k}`, out);
  }
  return out;
}

function assertProtocolError(fn: () => unknown): void {
  assert.throws(fn, (err: unknown) => isGatewayError(err) && err.code === 'GW_ERR_PROTOCOL');
}

describe('parseMeta on the captured metas', () => {
  const files = readdirSync(FIXTURES).filter((f) => f.startsWith('result-') && f.endsWith('.json')).sort();
  const metas = files.flatMap((f) => metasIn(load(f), f));

  it('finds the metas of every result-* fixture', () => {
    assert.ok(metas.length >= 30, `only ${metas.length}`);
    for (const f of ['result-success.json', 'result-failure.json', 'result-started.json', 'result-retry.json', 'result-group.json', 'result-chord.json']) {
      assert.ok(metas.some(([w]) => w.startsWith(f)), f);
    }
  });

  for (const [where, meta] of metas) {
    it(`parses ${where} unchanged, key order included`, () => {
      const parsed = parseMeta(JSON.stringify(meta));
      assert.deepEqual(parsed, meta);
      assert.deepEqual(Object.keys(parsed), Object.keys(meta));
    });
  }

  it('parses the raw bytes Celery wrote (result-success value_raw)', () => {
    const f = load('result-success.json');
    assert.deepEqual(parseMeta(f.value_raw), f.value);
  });

  it('fills defaults for minimal and rpc-style metas', () => {
    const minimal = load('verify-result-compat.json').redis_backend.a_minimal_success_with_publish.written;
    assert.deepEqual(parseMeta(JSON.stringify(minimal)), { ...minimal, traceback: null, children: [], date_done: null });
    const rpc = load('rpc-result.json').messages_success[1].body_raw as string;
    const parsed = parseMeta(rpc);
    assert.equal(parsed.status, 'SUCCESS');
    assert.equal(parsed.result, 5);
    assert.equal(parsed.date_done, null);
    assert.equal(parseMeta('{"status": "PENDING"}').task_id, '');
  });

  it('keeps unknown keys (result_extended) after the known ones', () => {
    const parsed = parseMeta('{"name": "tasks.add", "status": "SUCCESS", "result": 1, "task_id": "x"}');
    assert.deepEqual(Object.keys(parsed), ['status', 'result', 'traceback', 'children', 'date_done', 'task_id', 'name']);
  });

  for (const garbage of ['not json', '[]', 'null', '"SUCCESS"', '{"result": 1}', '{"status": 5}', '{"status": "SUCCESS", "children": {}}', '{"status": "SUCCESS", "traceback": 1}', '{"status": "SUCCESS", "task_id": 7}', '{"status": "SUCCESS", "group_id": 7}']) {
    it(`refuses ${garbage}`, () => assertProtocolError(() => parseMeta(garbage)));
  }
});

describe('buildMeta reproduces Celery', () => {
  class ValueError extends Error {
    override name = 'ValueError';
  }
  const cases: [string, (v: Obj) => Json][] = [
    ['result-success.json', () => 5],
    ['result-failure.json', () => encodeError(new ValueError('boom')).exc as unknown as Json],
    ['result-revoked-expired.json', () => celeryException('TaskRevokedError', 'expired') as unknown as Json],
    ['result-revoked.json', () => celeryException('TaskRevokedError', 'revoked') as unknown as Json],
    ['result-unknown-task.json', (v) => celeryException('NotRegistered', v.result.exc_message[0]) as unknown as Json],
    ['result-started.json', () => ({ pid: 12345, hostname: 'worker1@example' })],
  ];
  for (const [file, result] of cases) {
    it(`matches ${file}`, () => {
      const v = load(file).value as Obj;
      const now = v.date_done ? parseIsoDate(v.date_done)! : new Date();
      const meta = buildMeta({ taskId: v.task_id, status: v.status, result: result(v), traceback: v.traceback, now });
      assert.deepEqual(Object.keys(meta), Object.keys(v));
      const { date_done: ours, ...restOurs } = meta;
      const { date_done: theirs, ...restTheirs } = v;
      assert.deepEqual(restOurs, restTheirs);
      if (theirs === null) assert.equal(ours, null);
      else {
        assert.equal(ours, naiveUtcIso(now));
        assert.equal(parseIsoDate(ours!)!.getTime(), parseIsoDate(theirs)!.getTime());
      }
    });
  }

  it('puts group_id and parent_id before task_id (result-group, result-retry)', () => {
    const member = Object.values(load('result-group.json').member_metas)[0] as Obj;
    const m1 = buildMeta({ taskId: member.task_id, status: 'SUCCESS', result: member.result, groupId: member.group_id, now: new Date() });
    assert.deepEqual(Object.keys(m1), Object.keys(member));
    const final = load('result-retry.json').value_final as Obj;
    const m2 = buildMeta({ taskId: final.task_id, status: 'SUCCESS', result: final.result, parentId: final.parent_id, now: new Date() });
    assert.deepEqual(Object.keys(m2), Object.keys(final));
    const both = buildMeta({ taskId: 't', status: 'SUCCESS', result: 1, groupId: 'g', parentId: 'p', now: new Date() });
    assert.deepEqual(Object.keys(both), ['status', 'result', 'traceback', 'children', 'date_done', 'group_id', 'parent_id', 'task_id']);
  });

  it('sets date_done only for ready states', () => {
    const now = new Date('2026-11-23T20:44:56.063Z');
    assert.equal(buildMeta({ taskId: 't', status: 'RETRY', result: null, now }).date_done, null);
    assert.equal(buildMeta({ taskId: 't', status: 'FAILURE', result: null, now }).date_done, '2026-11-23T20:44:56.063000');
  });

  it('serializes to JSON that parses back to the same meta', () => {
    const meta: ResultMeta = buildMeta({ taskId: 't', status: 'SUCCESS', result: [1, 'x'], children: [[['c', null], null]], now: new Date() });
    assert.deepEqual(parseMeta(serializeMeta(meta)), meta);
    assert.deepEqual(Object.keys(JSON.parse(serializeMeta(meta))), Object.keys(meta));
  });
});

describe('encodeError', () => {
  it('labels JS errors whose names are Python builtins with module builtins', () => {
    const { exc, traceback } = encodeError(new TypeError('bad'));
    assert.deepEqual(exc, { exc_type: 'TypeError', exc_message: ['bad'], exc_module: 'builtins' });
    assert.match(traceback ?? '', /TypeError: bad/);
  });

  it('uses the synthesized-class module for non-Python names', () => {
    assert.deepEqual(encodeError(new RangeError('r')).exc, { exc_type: 'RangeError', exc_message: ['r'], exc_module: UNKNOWN_EXC_MODULE });
    assert.deepEqual(encodeError(new Error('e')).exc, { exc_type: 'Error', exc_message: ['e'], exc_module: UNKNOWN_EXC_MODULE });
    class PaymentDeclined extends Error {}
    assert.equal(encodeError(new PaymentDeclined('x')).exc.exc_type, 'Error', 'name wins over the constructor');
    const anon = new PaymentDeclined('x');
    anon.name = '';
    assert.equal(encodeError(anon).exc.exc_type, 'PaymentDeclined', 'constructor name when there is no name');
  });

  it('never writes builtins for a name that is not a safe Python exception', () => {
    const evil = Object.assign(new Error('x'), { excType: 'eval', excModule: 'builtins' });
    assert.deepEqual(encodeError(evil).exc.exc_module, UNKNOWN_EXC_MODULE);
    const exit = Object.assign(new Error('x'), { name: 'SystemExit' });
    assert.equal(encodeError(exit).exc.exc_module, UNKNOWN_EXC_MODULE);
  });

  it('lets an error choose type, module and args (CeleryErrorLike)', () => {
    const err = Object.assign(new Error('ignored'), { excType: 'InsufficientFunds', excModule: 'bank.errors', excMessage: ['acct-1', 42] });
    assert.deepEqual(encodeError(err).exc, { exc_type: 'InsufficientFunds', exc_message: ['acct-1', 42], exc_module: 'bank.errors' });
    const withArgs = Object.assign(new Error('m'), { name: 'KeyError', args: ['missing'] });
    assert.deepEqual(encodeError(withArgs).exc, { exc_type: 'KeyError', exc_message: ['missing'], exc_module: 'builtins' });
  });

  it('turns non-Error throwables into exc_type Error without traceback', () => {
    assert.deepEqual(encodeError('plain string'), { exc: { exc_type: 'Error', exc_message: ['plain string'], exc_module: UNKNOWN_EXC_MODULE }, traceback: null });
    assert.deepEqual(encodeError({ code: 7 }).exc.exc_message, ['{"code":7}']);
    assert.deepEqual(encodeError(undefined).exc.exc_message, ['undefined']);
    assert.deepEqual(encodeError(42).exc.exc_message, ['42']);
  });
});

describe('celeryException', () => {
  it('uses the modules Celery 5.2.6 reports', () => {
    assert.deepEqual(celeryException('NotRegistered', 'tasks.x'), { exc_type: 'NotRegistered', exc_message: ['tasks.x'], exc_module: 'celery.exceptions' });
    assert.equal(celeryException('TaskRevokedError', 'expired').exc_module, 'celery.exceptions');
    assert.equal(celeryException('ChordError', 'd').exc_module, 'celery.exceptions');
    assert.equal(celeryException('Retry', 'r').exc_module, 'celery.exceptions');
    assert.equal(celeryException('TimeLimitExceeded', '30').exc_module, 'billiard.exceptions');
    assert.equal(celeryException('SoftTimeLimitExceeded', '20').exc_module, 'billiard.exceptions');
  });
});

describe('describeError', () => {
  it('describes the failure fixture', () => {
    const v = load('result-failure.json').value;
    const d = describeError(v.result, v.traceback);
    assert.deepEqual(d, { type: 'ValueError', message: 'boom', module: 'builtins', args: ['boom'], traceback: v.traceback });
  });
  it('accepts a plain-string exc_message and joins lists', () => {
    assert.equal(describeError({ exc_type: 'ValueError', exc_message: 'boom', exc_module: 'builtins' }, null)?.message, 'boom');
    assert.deepEqual(describeError({ exc_type: 'ValueError', exc_message: 'boom', exc_module: 'builtins' }, null)?.args, ['boom']);
    const d = describeError({ exc_type: 'X', exc_message: ['a', 2, { k: 1 }], exc_module: null }, 'tb');
    assert.deepEqual(d, { type: 'X', message: 'a, 2, {"k":1}', module: null, args: ['a', 2, { k: 1 }], traceback: 'tb' });
  });
  it('returns null for results that are not encoded exceptions', () => {
    assert.equal(describeError(5, null), null);
    assert.equal(describeError({ pid: 1 }, null), null);
    assert.equal(describeError([1], null), null);
  });
});
