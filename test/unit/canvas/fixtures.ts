/**
 * Helpers to compare what the canvas engine publishes with the messages Celery 5.2.6 published in
 * test/fixtures/celery (Redis envelopes and AMQP captures), field by field.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import type { CanvasAction, MessageSpec } from '../../../src/canvas/apply.ts';
import { workerCall } from '../../../src/canvas/message.ts';
import { buildTaskMessage } from '../../../src/protocol/message.ts';
import type { Json } from '../../../src/protocol/types.ts';

type Obj = Record<string, any>;
const DIR = new URL('../../fixtures/celery/', import.meta.url);
export const fixture = (name: string): Obj => JSON.parse(readFileSync(new URL(`${name}.json`, DIR), 'utf8'));

/** A captured message in one shape: headers, properties, body, queue. */
export interface Captured {
  headers: Obj;
  properties: Obj;
  body: Json[];
  queue: string;
}

export function captured(msg: Obj): Captured {
  if (msg.envelope) {
    const env = msg.envelope;
    const { delivery_info, body_encoding, delivery_tag, ...properties } = env.properties;
    void body_encoding; void delivery_tag;
    return { headers: env.headers, properties, body: msg.body_decoded, queue: delivery_info.routing_key };
  }
  const { content_type, content_encoding, ...properties } = msg.properties;
  void content_type; void content_encoding;
  return { headers: msg.headers, properties, body: msg.body_decoded, queue: msg.delivery_info.routing_key };
}

export const ORIGIN = 'gen12345@example';
const NOW = new Date('2026-11-23T20:45:08Z');

/** The message our code would publish for a MessageSpec (worker-side resolution; same fields as the producer's). */
export function ours(m: MessageSpec): Captured {
  const { call, route } = workerCall(m, { origin: ORIGIN, defaultQueue: 'celery', now: NOW });
  const raw = buildTaskMessage(call, NOW);
  return { headers: raw.headers, properties: raw.properties as Obj, body: JSON.parse(raw.body) as Json[], queue: route.queue };
}

/** Field by field: every header (and their order), the properties Celery sets, the body, the queue. */
export function assertSameMessage(actual: Captured, expected: Captured, where: string): void {
  assert.deepEqual(Object.keys(actual.headers), Object.keys(expected.headers), `${where}: header keys and order`);
  for (const key of Object.keys(expected.headers)) assert.deepEqual(actual.headers[key], expected.headers[key], `${where}: header ${key}`);
  for (const key of ['correlation_id', 'reply_to', 'delivery_mode']) {
    assert.deepEqual(actual.properties[key], expected.properties[key], `${where}: property ${key}`);
  }
  // Celery omits `priority` when a queue is given explicitly on AMQP (§1.2); ours always says 0.
  if ('priority' in expected.properties) assert.equal(actual.properties['priority'], expected.properties['priority'], `${where}: priority`);
  const [args, kwargs, embed] = expected.body as [Json, Json, Obj];
  const [ourArgs, ourKwargs, ourEmbed] = actual.body as [Json, Json, Obj];
  assert.deepEqual(ourArgs, args, `${where}: args`);
  assert.deepEqual(ourKwargs, kwargs, `${where}: kwargs`);
  for (const key of ['callbacks', 'errbacks', 'chain', 'chord']) assert.deepEqual(ourEmbed[key], embed[key], `${where}: embed.${key}`);
  assert.equal(actual.queue, expected.queue, `${where}: queue`);
}

export function publications(actions: CanvasAction[]): MessageSpec[] {
  return actions.flatMap((a) => (a.type === 'publish' ? [a.message] : []));
}

/** An id source that hands out the given ids in order and fails when asked for more. */
export function ids(...list: string[]): () => string {
  const queue = [...list];
  return () => {
    const next = queue.shift();
    if (next === undefined) throw new Error('the engine asked for an id the fixture does not have');
    return next;
  };
}

export const noIds = ids();
