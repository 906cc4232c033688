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
import { randomFillSync } from 'node:crypto';
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

/**
 * Random bytes for 4096 ids at a time (12 each), from the CSPRNG. Node's randomUUID refills a 2 KB cache
 * every 128 ids, and under load that refill made it 0.81 us per id in the gateway's profile (0.12 us in
 * a tight loop); one 48 KB fill per 4096 ids costs about what one 2 KB fill does.
 */
const IDS_PER_FILL = 4096;
const pool = Buffer.allocUnsafeSlow(12 * IDS_PER_FILL);
let used = IDS_PER_FILL;
const VARIANT = '89ab';

/** The first 28 characters of a random UUID v4 (`xxxxxxxx-xxxx-4xxx-yxxx-xxxx`): 90 random bits. */
function randomHead(): string {
  if (used === IDS_PER_FILL) {
    randomFillSync(pool);
    used = 0;
  }
  const o = 12 * used++;
  const h = pool.toString('hex', o, o + 12);
  // version nibble 4; variant 10xx (8, 9, a or b) from the low bits of the byte it replaces
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-${VARIANT[pool[o + 8]! & 3]}${h.slice(17, 20)}-${h.slice(20, 24)}`;
}

/** A new task id: a random UUID v4 with the checksum in its last 8 hex digits (90 random bits remain). */
export function newTaskId(): string {
  const head = randomHead();
  return head + checksum(head);
}

/** Whether `id` was made by newTaskId (by any gateway instance, at any time). */
export function isGatewayTaskId(id: string): boolean {
  return id.length === 36 && SHAPE.test(id) && id.slice(HEAD) === checksum(id.slice(0, HEAD));
}
