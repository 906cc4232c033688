/**
 * Celery events built by src/protocol/events.ts against the real Celery 5.2.6 captures (event-*.json,
 * redis-events.json): same field names in the same order, same values where they are deterministic.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import {
  buildEvent, EVENT_EXCHANGE, eventMessage, eventRoutingKey, exceptionRepr, taskErrorFields, taskReceivedFields,
  taskRevokedFields, taskStartedFields, taskSucceededFields, utcoffset, workerFields,
} from '../../../src/protocol/events.ts';
import { decodeEnvelope, encodeEnvelope } from '../../../src/protocol/kombu-envelope.ts';
import type { JsonObject, TaskMessage } from '../../../src/protocol/types.ts';

const dir = new URL('../../fixtures/celery/', import.meta.url);
const load = (name: string) => JSON.parse(readFileSync(new URL(name, dir), 'utf8'));
const sender = { hostname: 'worker1@example', pid: 12345 };

/** The fixture's body rebuilt with our builder from its own values. */
function rebuild(fixture: { body: JsonObject }, fields: JsonObject): JsonObject {
  const body = fixture.body;
  const now = new Date((body['timestamp'] as number) * 1000);
  return buildEvent(body['type'] as string, fields, sender, body['clock'] as number, now);
}

/** Ours equals Celery's: same keys in the same order; timestamp to the millisecond (a Date's precision). */
function same(ours: JsonObject, theirs: JsonObject, what = ''): void {
  assert.deepEqual(Object.keys(ours), Object.keys(theirs), what);
  assert.ok(Math.abs((ours['timestamp'] as number) - (theirs['timestamp'] as number)) < 0.001, what);
  assert.deepEqual({ ...ours, utcoffset: 0, timestamp: 0 }, { ...theirs, timestamp: 0 }, what);
}

describe('Celery events (fixtures)', () => {
  it('worker-online / heartbeat / offline: same keys, order and values', () => {
    for (const name of ['event-worker-online.json', 'event-worker-heartbeat.json', 'event-worker-offline.json']) {
      const f = load(name);
      const b = f.body;
      const ours = rebuild(f, workerFields({ active: b.active, processed: b.processed, loadavg: b.loadavg, swIdent: b.sw_ident, swVer: b.sw_ver, swSys: b.sw_sys }));
      same(ours, b, name);
      assert.equal(eventRoutingKey(b.type), f.delivery_info.routing_key, name);
    }
  });

  it('loadavg is rounded to 2 decimals, freq is 2.0 s', () => {
    const fields = workerFields({ active: 1, processed: 2, loadavg: [1.23456, 0.5, 0.129], swIdent: 'celery-gateway', swVer: '0.1.0', swSys: 'Linux' });
    assert.deepEqual(fields['loadavg'], [1.23, 0.5, 0.13]);
    assert.equal(fields['freq'], 2);
  });

  it('task-received: the request with argsrepr/kwargsrepr', () => {
    const f = load('event-task-received.json');
    const b = f.body;
    const message = {
      headers: { id: b.uuid, task: b.name, argsrepr: b.args, kwargsrepr: b.kwargs, root_id: b.root_id, parent_id: b.parent_id, retries: 0, eta: null, expires: null },
      args: [2, 3], kwargs: {},
    } as unknown as TaskMessage;
    const ours = rebuild(f, taskReceivedFields(message));
    same(ours, b);
    // without argsrepr (a message from an older client): Python's repr of the values
    const bare = { ...message, headers: { ...message.headers, argsrepr: undefined, kwargsrepr: undefined } } as unknown as TaskMessage;
    assert.equal(taskReceivedFields(bare)['args'], '(2, 3)');
    assert.equal(taskReceivedFields(bare)['kwargs'], '{}');
  });

  it('task-started, task-succeeded (result as repr), task-failed and task-retried (exception repr)', () => {
    const started = load('event-task-started.json');
    same(rebuild(started, taskStartedFields(started.body.uuid)), started.body);

    const ok = load('event-task-succeeded.json');
    const succeeded = rebuild(ok, taskSucceededFields(ok.body.uuid, 5, ok.body.runtime));
    same(succeeded, ok.body);
    assert.equal(taskSucceededFields('x', { a: [1, 'b'] }, 0.1)['result'], "{'a': [1, 'b']}");

    const failed = load('event-task-failed.json');
    const exc = { exc_type: 'ValueError', exc_message: ['boom'], exc_module: 'builtins' };
    assert.equal(exceptionRepr(exc), failed.body.exception);
    const ours = rebuild(failed, taskErrorFields(failed.body.uuid, exc, failed.body.traceback));
    same(ours, failed.body);

    const retried = load('event-task-retried.json');
    const rexc = { exc_type: 'RuntimeError', exc_message: ['transient'], exc_module: 'builtins' };
    same(rebuild(retried, taskErrorFields(retried.body.uuid, rexc, retried.body.traceback)), retried.body);
  });

  it('task-revoked carries terminated, signum, expired', () => {
    assert.deepEqual(taskRevokedFields('id1', { terminated: true, expired: false, signum: 15 }), { uuid: 'id1', terminated: true, signum: 15, expired: false });
    assert.deepEqual(taskRevokedFields('id1', { terminated: false, expired: true }), { uuid: 'id1', terminated: false, signum: null, expired: true });
  });

  it('routing keys: type with - replaced by .', () => {
    assert.equal(eventRoutingKey('task-succeeded'), 'task.succeeded');
    assert.equal(eventRoutingKey('worker-heartbeat'), 'worker.heartbeat');
    assert.equal(EVENT_EXCHANGE, 'celeryev');
  });

  it("utcoffset is Python's time.timezone // 3600 (hours west of UTC)", () => {
    const d = new Date();
    assert.equal(utcoffset(d), Math.floor(d.getTimezoneOffset() / 60));
    if (d.getTimezoneOffset() === 0) assert.equal(utcoffset(d), 0);
  });

  it('the message: JSON, delivery_mode 1, header hostname; the Redis envelope matches redis-events.json', () => {
    const captured = load('redis-events.json').events['worker-online'];
    const body = captured.body_decoded;
    const message = eventMessage(body);
    assert.deepEqual(message.headers, { hostname: 'worker1@example' });
    assert.equal(message.contentType, 'application/json');
    assert.equal(message.properties.delivery_mode, 1);
    assert.deepEqual(JSON.parse(message.body), body);
    const ours = JSON.parse(encodeEnvelope(message, { exchange: 'celeryev', routingKey: 'worker.online' }, captured.envelope.properties.delivery_tag));
    assert.deepEqual({ ...ours, body: null }, { ...captured.envelope, body: null });
    assert.deepEqual(JSON.parse(decodeEnvelope(JSON.stringify(captured.envelope)).message.body), body);
  });
});
