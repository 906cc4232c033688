import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ERRORS } from '../../src/errors.ts';

describe('error catalogue', () => {
  it('docs/errors.md lists exactly the codes of src/errors.ts, with their status and meaning', async () => {
    const doc = await readFile(new URL('../../docs/errors.md', import.meta.url), 'utf8');
    const rows = [...doc.matchAll(/^\| `(GW_ERR_[A-Z_]+)` \| (\d{3}) \| (.+) \|$/gm)];
    const documented = new Map(rows.map((m) => [m[1], { status: Number(m[2]), description: m[3] }]));
    assert.deepEqual([...documented.keys()].sort(), Object.keys(ERRORS).sort());
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.deepEqual(documented.get(code), { status: spec.status, description: spec.description }, code);
    }
  });

  it('codes follow GW_ERR_<WHAT> and map to 4xx/5xx statuses', () => {
    for (const [code, spec] of Object.entries(ERRORS)) {
      assert.match(code, /^GW_ERR_[A-Z]+(_[A-Z]+)*$/);
      assert.ok(spec.status >= 400 && spec.status < 600, code);
    }
  });
});
