/**
 * SubmitGuard.fitsUnmeasured: a body small enough is not measured, so the bound it rests on (args +
 * kwargs re-encoded take at most 5.25 bytes per body byte, plus 4) must hold for every JSON body.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { SubmitGuard } from '../../src/http/submit-guard.ts';

/** what the guard measures when it measures: the encoded args + kwargs (absent ones as [] and {}) */
function encodedBytes(text: string): number {
  const body = JSON.parse(text) as { args?: unknown; kwargs?: unknown };
  return Buffer.byteLength(JSON.stringify(body.args ?? [])) + Buffer.byteLength(JSON.stringify(body.kwargs ?? {}));
}

/** numbers the way a client may write them: exponents, signs, fractions, padding zeros */
const numberText = fc.tuple(fc.constantFrom('', '-'), fc.integer({ min: 0, max: 999 }), fc.constantFrom('', '.0', '.5', '.000001'), fc.constantFrom('', 'e', 'E', 'e+', 'e-'), fc.integer({ min: 0, max: 400 }))
  .map(([sign, int, frac, e, exp]) => `${sign}${int}${frac}${e ? `${e}${exp}` : ''}`);
/** JSON text with numbers in any notation and strings with escapes */
const valueText: fc.Arbitrary<string> = fc.letrec<{ v: string }>((tie) => ({
  v: fc.oneof({ depthSize: 'small', withCrossShrink: true },
    numberText,
    fc.json(),
    fc.string({ unit: 'binary' }).map((s) => JSON.stringify(s).replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)),
    fc.array(tie('v'), { maxLength: 6 }).map((items) => `[ ${items.join(' , ')} ]`),
    fc.dictionary(fc.string({ maxLength: 4 }), tie('v'), { maxKeys: 4 }).map((o) => `{${Object.entries(o).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`)),
})).v;
const bodyText = fc.tuple(fc.option(fc.array(valueText, { maxLength: 8 })), fc.option(fc.dictionary(fc.string({ maxLength: 6 }), valueText, { maxKeys: 4 })))
  .map(([args, kwargs]) => {
    const parts: string[] = [];
    if (args) parts.push(`"args":[${args.join(',')}]`);
    if (kwargs) parts.push(`"kwargs":{${Object.entries(kwargs).map(([k, v]) => `${JSON.stringify(k)}:${v}`).join(',')}}`);
    return `{${parts.join(',')}}`;
  })
  .filter((text) => { try { JSON.parse(text); return true; } catch { return false; } });

describe('SubmitGuard: the unmeasured fast path', () => {
  it('re-encoding grows a body by at most 5.25x + 4 bytes (property, numbers in any notation)', () => {
    fc.assert(fc.property(bodyText, (text) => {
      const bytes = Buffer.byteLength(text);
      assert.ok(encodedBytes(text) <= bytes * 5.25 + 4, `${text}: ${encodedBytes(text)} > 5.25 x ${bytes} + 4`);
    }), { numRuns: 3000 });
  });

  it('the worst case: 1e20 becomes 21 digits, and the guard still measures once it could matter', () => {
    const text = `{"args":[${Array(100).fill('1e20').join(',')}]}`;
    const bytes = Buffer.byteLength(text);
    const encoded = encodedBytes(text);
    assert.ok(encoded > bytes * 4, `${encoded} vs ${bytes}`);
    assert.ok(encoded <= bytes * 5.25 + 4);
    // a limit the encoded args exceed: too tight to skip measuring this body
    const guard = new SubmitGuard({ maxArgsBytes: encoded - 1 });
    assert.equal(guard.fitsUnmeasured(bytes), false);
    assert.throws(() => guard.call('t', JSON.parse(text).args, undefined, { args: '/args', kwargs: '/kwargs' }, bytes), { code: 'GW_ERR_ARGS_TOO_LARGE' });
  });

  it('skips measuring only below maxArgsBytes / 6', () => {
    const guard = new SubmitGuard({ maxArgsBytes: 6004 });
    assert.equal(guard.fitsUnmeasured(1000), true);
    assert.equal(guard.fitsUnmeasured(1001), false);
    // no length known (a chunked body): measured, so a call over the limit is refused
    const small = new SubmitGuard({ maxArgsBytes: 16 });
    assert.throws(() => small.call('t', ['x'.repeat(20)], {}, { args: '/args', kwargs: '/kwargs' }), { code: 'GW_ERR_ARGS_TOO_LARGE' });
  });
});
