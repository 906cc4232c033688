/**
 * The `argsrepr` / `kwargsrepr` headers (§1.1): a port of Celery 5.2.6's `celery.utils.saferepr`,
 * which is what a Python client writes there (`saferepr(args, 1024)`), applied to JSON values.
 *
 * saferepr is NOT Python's repr():
 * - strings are always single-quoted and only `'` is escaped (`'it\'s'`); backslashes, newlines
 *   and non-ASCII characters are written as they are;
 * - containers nested 3 levels deep (counting the args tuple) become `[...]` / `{...}`;
 * - the length limit is a budget consumed token by token: the token that crosses it is cut
 *   (`truncate`: at the last space, plus `...`), the next one is replaced by `, ...` and only the
 *   closing brackets still pending follow. The result can therefore be a few characters longer
 *   than the limit, and the bracket of the container that just closed can be missing.
 * Lengths count code points, as Python's len() does.
 */
import type { Json, JsonObject } from './types.ts';

/** Celery's `argsrepr_maxsize` / `kwargsrepr_maxsize`. */
export const REPR_MAXSIZE = 1024;
/** saferepr's default `maxlevels`. */
const MAX_LEVELS = 3;

type Token =
  | { kind: 'open'; text: string; close: string }
  | { kind: 'close'; text: string }
  | { kind: 'sep'; text: string }
  | { kind: 'key'; text: string }
  | { kind: 'quoted'; text: string }
  | { kind: 'text'; text: string };

const SURROGATE = /[\uD800-\uDFFF]/;

function pyLen(s: string): number {
  return SURROGATE.test(s) ? Array.from(s).length : s.length;
}

function pySlice(s: string, end: number): string {
  return SURROGATE.test(s) ? Array.from(s).slice(0, end).join('') : s.slice(0, end);
}

/** celery.utils.text.truncate: cut at maxlen, back to the last space, append `...`. */
function truncate(s: string, maxlen: number | undefined): string {
  if (!maxlen || pyLen(s) < maxlen) return s;
  const cut = pySlice(s, maxlen);
  const space = cut.lastIndexOf(' ');
  return (space === -1 ? cut : cut.slice(0, space)) + '...';
}

/** saferepr's `_format_chars` for str. */
function quote(s: string, maxlen: number | undefined): string {
  return `'${truncate(s, maxlen).replace(/'/g, "\\'")}'`;
}

/**
 * Python's str() of the number Python decodes from our JSON body: JSON.stringify writes integers
 * below 1e21 as digits (a Python int), anything else is a Python float, printed in repr style.
 */
export function pyNumber(n: number): string {
  if (Number.isNaN(n)) return 'nan';
  if (!Number.isFinite(n)) return n > 0 ? 'inf' : '-inf';
  if (Number.isInteger(n) && Math.abs(n) < 1e21) return String(n);
  // toExponential() without an argument gives the shortest round-trip digits, as Python's repr does.
  const [mantissa = '', exponent = '0'] = n.toExponential().split('e');
  const sign = n < 0 ? '-' : '';
  const digits = mantissa.replace('-', '').replace('.', '');
  const exp = Number(exponent);
  const decpt = exp + 1; // position of the decimal point relative to the digits
  if (decpt <= -4 || decpt > 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    return `${sign}${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
  }
  if (decpt <= 0) return `${sign}0.${'0'.repeat(-decpt)}${digits}`;
  if (decpt >= digits.length) return `${sign}${digits}${'0'.repeat(decpt - digits.length)}.0`;
  return `${sign}${digits.slice(0, decpt)}.${digits.slice(decpt)}`;
}

/** A list's brackets, or the args tuple's: `(1,)` for one element, as Python writes it. */
function brackets(list: readonly Json[], asTuple: boolean): [open: string, close: string] {
  return asTuple ? ['(', list.length === 1 ? ',)' : ')'] : ['[', ']'];
}

function* tokens(value: Json | undefined, level: number, asTuple = false): Generator<Token> {
  if (typeof value === 'string') {
    yield { kind: 'quoted', text: value };
  } else if (typeof value === 'number') {
    yield { kind: 'text', text: pyNumber(value) };
  } else if (typeof value === 'boolean') {
    yield { kind: 'text', text: value ? 'True' : 'False' };
  } else if (value === null || value === undefined) {
    yield { kind: 'text', text: 'None' };
  } else if (Array.isArray(value)) {
    const [open, close] = brackets(value, asTuple);
    if (level >= MAX_LEVELS) {
      yield { kind: 'text', text: `${open}...${close}` };
      return;
    }
    yield { kind: 'open', text: open, close };
    for (let i = 0; i < value.length; i += 1) {
      if (i > 0) yield { kind: 'sep', text: ', ' };
      yield* tokens(value[i], level + 1);
    }
    yield { kind: 'close', text: close };
  } else {
    if (level >= MAX_LEVELS) {
      yield { kind: 'text', text: '{...}' };
      return;
    }
    yield { kind: 'open', text: '{', close: '}' };
    let first = true;
    for (const [key, item] of Object.entries(value)) {
      if (!first) yield { kind: 'sep', text: ', ' };
      first = false;
      yield { kind: 'key', text: key };
      yield { kind: 'sep', text: ': ' };
      yield* tokens(item, level + 1);
    }
    yield { kind: 'close', text: '}' };
  }
}

/**
 * The repr written straight out, or null once it reaches `limit` UTF-16 units. Below the limit it is
 * what the token walk below writes: no token is cut or dropped while the whole text is shorter than
 * the budget (code points never outnumber UTF-16 units). Submissions nearly always take this path,
 * without a generator and a token object per value.
 */
function direct(value: Json | undefined, level: number, asTuple: boolean, limit: number): string | null {
  if (typeof value === 'string') return quote(value, undefined);
  if (typeof value === 'number') return pyNumber(value);
  if (typeof value === 'boolean') return value ? 'True' : 'False';
  if (value === null || value === undefined) return 'None';
  if (Array.isArray(value)) {
    const [open, close] = brackets(value, asTuple);
    if (level >= MAX_LEVELS) return `${open}...${close}`;
    let out = open;
    for (let i = 0; i < value.length; i += 1) {
      const item = direct(value[i], level + 1, false, limit);
      if (item === null) return null;
      out += i > 0 ? `, ${item}` : item;
      if (out.length >= limit) return null;
    }
    return out + close;
  }
  if (level >= MAX_LEVELS) return '{...}';
  let out = '{';
  let first = true;
  for (const key of Object.keys(value)) {
    const item = direct(value[key], level + 1, false, limit);
    if (item === null) return null;
    out += `${first ? '' : ', '}${quote(key, undefined)}: ${item}`;
    first = false;
    if (out.length >= limit) return null;
  }
  return out + '}';
}

function render(value: Json, maxlen: number | undefined, asTuple: boolean): string {
  const limit = maxlen ?? Infinity;
  const text = direct(value, 0, asTuple, limit);
  if (text !== null && text.length < limit) return text;
  return renderByTokens(value, maxlen, asTuple);
}

/** saferepr's budgeted walk, token by token (exported for the test that compares it with the direct path). */
export function renderByTokens(value: Json, maxlen: number | undefined, asTuple: boolean): string {
  let budget = maxlen;
  const out: string[] = [];
  const pending: string[] = []; // closing brackets of the containers currently open
  for (const token of tokens(value, 0, asTuple)) {
    if (token.kind === 'open') pending.push(token.close);
    else if (token.kind === 'close') pending.pop();
    if (budget !== undefined && budget <= 0) {
      // This token is dropped; Celery emits ", ..." and then the dangling closers.
      out.push(', ...', ...pending.reverse());
      break;
    }
    let text: string;
    if (token.kind === 'key' || token.kind === 'quoted') text = quote(token.text, budget);
    else if (token.kind === 'text') text = truncate(token.text, budget);
    else text = token.text;
    out.push(text);
    if (budget !== undefined) budget -= pyLen(text);
  }
  return out.join('');
}

/** saferepr of one JSON value (arrays print as Python lists); no limit unless maxlen is given. */
export function saferepr(value: Json, maxlen?: number): string {
  return render(value, maxlen, false);
}

/** `argsrepr` as `apply_async`/`delay` write it: a tuple, `(2, 3)`, `(1,)`, `()`. */
export function argsRepr(args: Json[], maxlen: number = REPR_MAXSIZE): string {
  return render(args, maxlen, true);
}

/** `kwargsrepr`: `{}`, `{'k': [1, 2]}`. */
export function kwargsRepr(kwargs: JsonObject, maxlen: number = REPR_MAXSIZE): string {
  return render(kwargs, maxlen, false);
}
