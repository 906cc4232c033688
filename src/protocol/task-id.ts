/**
 * Task ids the gateway makes: random UUIDs (version 4 layout) whose last 8 hex digits are a checksum of
 * the first 28 characters. GET /results/:id tells an id of ours from a typo by the checksum alone, with
 * no record in Redis per submission (that record was ~15% of the gateway's submit throughput). Ids a
 * client chooses (`options.task_id`) are still recorded by the result backend. Pure.
 *
 * The checksum is FNV-1a (32-bit) over the first 28 characters, seeded with "celery-gateway". It is not a
 * secret: an id made to pass it only reads as PENDING, which is what Celery answers for any id. Every
 * step after a changed character is a bijection, so any one-character typo fails the check.
 */
import { randomUUID } from 'node:crypto';
import { hex32 } from './hex.ts';

const HEAD = 28;
const FNV_PRIME = 0x01000193;
const SEED = fnv(0x811c9dc5, 'celery-gateway');
const SHAPE = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

function fnv(start: number, text: string): number {
  let h = start;
  for (let i = 0; i < text.length; i += 1) h = Math.imul(h ^ text.charCodeAt(i), FNV_PRIME);
  return h >>> 0;
}

function checksum(head: string): string {
  return hex32(fnv(SEED, head));
}

/** A new task id: a random UUID v4 with the checksum in its last 8 hex digits (90 random bits remain). */
export function newTaskId(): string {
  const head = randomUUID().slice(0, HEAD);
  return head + checksum(head);
}

/** Whether `id` was made by newTaskId (by any gateway instance, at any time). */
export function isGatewayTaskId(id: string): boolean {
  return id.length === 36 && SHAPE.test(id) && id.slice(HEAD) === checksum(id.slice(0, HEAD));
}
