/**
 * The `application/json` body parser: Fastify's own, but saying what is wrong. Fastify answers every
 * bad body with one fixed sentence; a client fixing its request wants the parser's position and the
 * reason, and in particular to know when the JSON is valid but refused: a `__proto__` key, or a
 * `constructor` key holding `prototype`, is prototype poisoning (Fastify's secure default, kept).
 * A body nested deeper than JSON_MAX_DEPTH is refused here too (400 GW_ERR_VALIDATION), before
 * anything recursive (ajv, JSON.stringify, repr) meets it and overflows the stack into a 500.
 */
import type { FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { GatewayError } from '../../errors.ts';

const OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;

/** Deepest JSON nesting a request body may have (JSON.stringify and repr recurse; Python's json too). */
export const JSON_MAX_DEPTH = 256;

/** Nesting depth of a parsed JSON value, without recursion; stops counting past `limit`. */
function jsonDepth(value: unknown, limit: number): number {
  let max = 0;
  const stack: [unknown, number][] = [[value, 0]];
  while (stack.length > 0) {
    const [v, depth] = stack.pop()!;
    if (v === null || typeof v !== 'object') continue;
    if (depth + 1 > max) max = depth + 1;
    if (max > limit) return max;
    for (const child of Array.isArray(v) ? v : Object.values(v)) {
      if (child !== null && typeof child === 'object') stack.push([child, depth + 1]);
    }
  }
  return max;
}

/** Registered with `parseAs: 'string'`, so the body arrives as text. */
export function parseJsonBody(_request: FastifyRequest, text: string, done: (err: Error | null, body?: unknown) => void): void {
  if (text.length === 0) {
    done(new GatewayError('GW_ERR_BAD_JSON', 'the body is empty but content-type is application/json: send {} or no content-type'));
    return;
  }
  let value: unknown;
  try {
    value = sjson.parse(text, undefined, OPTIONS);
  } catch {
    done(new GatewayError('GW_ERR_BAD_JSON', refusal(text)));
    return;
  }
  // each level takes an opening and a closing character: a short body cannot nest too deep
  if (text.length > 2 * JSON_MAX_DEPTH && jsonDepth(value, JSON_MAX_DEPTH) > JSON_MAX_DEPTH) {
    done(new GatewayError('GW_ERR_VALIDATION', `body nests deeper than ${JSON_MAX_DEPTH} levels`, { details: { pointer: '/body', maxDepth: JSON_MAX_DEPTH } }));
    return;
  }
  done(null, value);
}

/** Why a body was refused, worked out on the refusal path only: JSON.parse's reason, else the poisoning. */
function refusal(text: string): string {
  try {
    JSON.parse(text);
  } catch (err) {
    return `the body is not valid JSON: ${(err as Error).message}`;
  }
  return 'the body holds a "__proto__" key or a "constructor" key with "prototype", refused as prototype poisoning';
}
