import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { argsRepr, kwargsRepr, pyNumber, renderByTokens, saferepr } from '../../../src/protocol/repr.ts';
import type { Json, JsonObject } from '../../../src/protocol/types.ts';

// Expected values were produced by Celery 5.2.6's own celery.utils.saferepr (saferepr(tuple(args), 1024)),
// which is what a Python client writes into argsrepr / kwargsrepr.
describe('argsRepr (Celery saferepr of the args tuple)', () => {
  const cases: [Json[], string][] = [
    [[], '()'],
    [[1], '(1,)'],
    [[2, 3], '(2, 3)'],
    [[1, 'two'], "(1, 'two')"],
    [["it's"], "('it\\'s',)"],
    [['say "hi"'], `('say "hi"',)`],
    [['both \' and "'], `('both \\' and "',)`],
    // saferepr does not escape newlines, tabs or backslashes (unlike Python's repr)
    [['x\ny\t\\z'], "('x\ny\t\\z',)"],
    [['é€😀 ünï'], "('é€😀 ünï',)"],
    [[true, false, null], '(True, False, None)'],
    [[1.5, -0.25, 1e100, 1e-5, 0.0001, 123456789.125, -2.5e-7, 1e21], '(1.5, -0.25, 1e+100, 1e-05, 0.0001, 123456789.125, -2.5e-07, 1e+21)'],
    // three levels at most, the tuple counting as one
    [[[1, [2, [3, [4]]]]], '([1, [2, [...]]],)'],
    [[{ a: { b: { c: { d: 1 } } } }], "({'a': {'b': {...}}},)"],
    [[[], {}], '([], {})'],
    [[{ "it's": 'v' }], "({'it\\'s': 'v'},)"],
    [[[1, 2], [3, [4, 5, 6]]], '([1, 2], [3, [4, 5, 6]])'],
  ];
  for (const [args, expected] of cases) {
    it(`${JSON.stringify(args)} → ${expected}`, () => assert.equal(argsRepr(args), expected));
  }
});

describe('kwargsRepr', () => {
  const cases: [JsonObject, string][] = [
    [{}, '{}'],
    [{ k: [1, 2] }, "{'k': [1, 2]}"],
    [{ a: 1, b: 'two', c: null }, "{'a': 1, 'b': 'two', 'c': None}"],
    [{ nested: { deep: { deeper: { deepest: 1 } } } }, "{'nested': {'deep': {'deeper': {...}}}}"],
    [{ q: "'" }, "{'q': '\\''}"],
  ];
  for (const [kwargs, expected] of cases) {
    it(`${JSON.stringify(kwargs)} → ${expected}`, () => assert.equal(kwargsRepr(kwargs), expected));
  }
});

describe('truncation at 1024 like Celery', () => {
  it('cuts a long string, then ", ..." and drops the tuple end that came next', () => {
    const out = argsRepr(['a'.repeat(2000)]);
    assert.equal(out, `('${'a'.repeat(1023)}...', ...`);
    assert.equal(out.length, 1034);
  });

  it('cuts a string back to its last space', () => {
    const text = 'word '.repeat(300);
    const out = argsRepr([text]);
    // 1023 chars of budget after "(", cut back to the last space, plus "..."
    const kept = text.slice(0, 1023);
    assert.equal(out, `('${kept.slice(0, kept.lastIndexOf(' '))}...', ...`);
    assert.equal(out.length, 1030);
  });

  it('cuts a long list of numbers and keeps the closing parenthesis', () => {
    const out = argsRepr(Array.from({ length: 600 }, (_, i) => i));
    assert.ok(out.endsWith(', 224, 225, 226..., ...)'), out.slice(-40));
    assert.equal(out.length, 1033);
  });

  it('emits only the closers still pending', () => {
    assert.equal(argsRepr([['x'.repeat(1030)]]), `(['${'x'.repeat(1022)}...', ...,)`);
    assert.equal(argsRepr([{ k: 'v'.repeat(1100) }]), `({'k': '${'v'.repeat(1017)}...', ...,)`);
    assert.equal(kwargsRepr({ ['k'.repeat(1100)]: 1 }), `{'${'k'.repeat(1023)}...', ...}`);
    assert.equal(kwargsRepr({ long: 'z'.repeat(2000) }), `{'long': '${'z'.repeat(1015)}...', ...`);
  });

  it('counts code points, not UTF-16 units', () => {
    assert.equal(argsRepr(['😀'.repeat(1100)]), `('${'😀'.repeat(1023)}...', ...`);
  });

  it('truncates None tokens too', () => {
    const out = argsRepr(new Array<Json>(400).fill(null));
    assert.ok(out.endsWith('None, None, Non..., ...)'), out.slice(-30));
    assert.equal(out.length, 1033);
  });

  it('has no limit when saferepr is called without one', () => {
    assert.equal(saferepr(['a'.repeat(2000)]).length, 2004);
  });
});

describe('pyNumber (Python str of the number decoded from our JSON)', () => {
  const cases: [number, string][] = [
    [0, '0'], [-0, '0'], [42, '42'], [-7, '-7'], [1e20, '100000000000000000000'], [1e21, '1e+21'],
    [0.1, '0.1'], [1.5, '1.5'], [0.0001, '0.0001'], [0.00001, '1e-05'], [1.25e-10, '1.25e-10'],
    [123456789012345.6, '123456789012345.6'], [1.5e300, '1.5e+300'], [-2.5e-7, '-2.5e-07'],
  ];
  for (const [n, expected] of cases) it(`${n} → ${expected}`, () => assert.equal(pyNumber(n), expected));
});

describe('repr: the direct path and the budgeted token walk agree', () => {
  it('for generated JSON values, at every limit from 1 to past the text (fast-check)', async () => {
    const fc = await import('fast-check');
    const value = fc.jsonValue({ maxDepth: 5 }) as unknown as import('fast-check').Arbitrary<Json>;
    fc.assert(fc.property(fc.array(value, { maxLength: 6 }), fc.dictionary(fc.string(), value, { maxKeys: 5 }), fc.integer({ min: 1, max: 120 }), (args, kwargs, maxlen) => {
      assert.equal(argsRepr(args, maxlen), renderByTokens(args, maxlen, true));
      assert.equal(kwargsRepr(kwargs, maxlen), renderByTokens(kwargs, maxlen, false));
      assert.equal(saferepr(args), renderByTokens(args, undefined, false));
    }), { numRuns: Number(process.env['FUZZ_RUNS'] ?? 500) });
  });

  it('around the limit: a text as long as the limit, one shorter, one longer', () => {
    for (const args of [['abcd'], ['a b c d e f g h'], [1234567], [[1, 2], 'x y']] as Json[][]) {
      const full = argsRepr(args);
      for (const maxlen of [full.length - 1, full.length, full.length + 1]) assert.equal(argsRepr(args, maxlen), renderByTokens(args, maxlen, true), `${full} at ${maxlen}`);
    }
    assert.equal(argsRepr(['a b c d e f g h'], 12), "('a b c d e...', ...", 'cut by the token walk, as saferepr cuts it');
  });
});
