/**
 * The few Python text formats canvas bookkeeping needs: `json.dumps` with its default separators and
 * ensure_ascii (chord `.j` members are compared as strings), `repr()` of values and of a decoded
 * exception (ChordError's "Dependency <id> raised ValueError('boom')"). Pure.
 */
import { pyNumber } from '../protocol/repr.ts';
import type { Json } from '../protocol/types.ts';

const asciiOnly = (text: string): string => text.replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);

/** Python's `json.dumps(value)`: `", "` and `": "` separators, non-ASCII escaped. */
export function pyJsonDumps(value: Json): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return asciiOnly(JSON.stringify(value));
  if (typeof value === 'number' || typeof value === 'boolean') return JSON.stringify(value);
  if (Array.isArray(value)) return `[${value.map(pyJsonDumps).join(', ')}]`;
  return `{${Object.entries(value).map(([k, v]) => `${asciiOnly(JSON.stringify(k))}: ${pyJsonDumps(v)}`).join(', ')}}`;
}

/** Python's `repr(str)`: single quotes unless the text has a `'` and no `"`. */
export function pyStrRepr(text: string): string {
  const quote = text.includes("'") && !text.includes('"') ? '"' : "'";
  let out = '';
  for (const ch of text) {
    const code = ch.codePointAt(0) as number;
    if (ch === '\\') out += '\\\\';
    else if (ch === quote) out += `\\${quote}`;
    else if (ch === '\n') out += '\\n';
    else if (ch === '\r') out += '\\r';
    else if (ch === '\t') out += '\\t';
    else if (code < 0x20 || code === 0x7f) out += `\\x${code.toString(16).padStart(2, '0')}`;
    else out += ch;
  }
  return quote + out + quote;
}

/** Python's `repr()` of a JSON-decoded value (no truncation). */
export function pyRepr(value: Json): string {
  if (value === null) return 'None';
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'string') return pyStrRepr(value);
  if (Array.isArray(value)) return `[${value.map(pyRepr).join(', ')}]`;
  return `{${Object.entries(value).map(([k, v]) => `${pyStrRepr(k)}: ${pyRepr(v)}`).join(', ')}}`;
}

/** `repr(exc)` of an exception in the JSON serializer's form, e.g. `ValueError('boom')`. */
export function pyExceptionRepr(encoded: Json): string {
  if (typeof encoded !== 'object' || encoded === null || Array.isArray(encoded) || typeof encoded['exc_type'] !== 'string') {
    return pyRepr(encoded);
  }
  const raw = encoded['exc_message'];
  const args: Json[] = Array.isArray(raw) ? raw : raw === undefined || raw === null ? [] : [raw];
  return `${encoded['exc_type']}(${args.map(pyRepr).join(', ')})`;
}
