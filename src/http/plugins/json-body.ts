/**
 * The `application/json` body parser: Fastify's own, but saying what is wrong. Fastify answers every
 * bad body with one fixed sentence; a client fixing its request wants the parser's position and the
 * reason, and in particular to know when the JSON is valid but refused: a `__proto__` key, or a
 * `constructor` key holding `prototype`, is prototype poisoning (Fastify's secure default, kept).
 */
import type { FastifyRequest } from 'fastify';
import sjson from 'secure-json-parse';
import { GatewayError } from '../../errors.ts';

const OPTIONS = { protoAction: 'error', constructorAction: 'error' } as const;

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
