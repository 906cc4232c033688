import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { envExample } from '../../scripts/env-example.ts';
import { loadConfig } from '../../src/config.ts';

describe('.env.example', () => {
  it('lists every setting with its default (regenerate with npm run env:example)', async () => {
    assert.equal(await readFile(new URL('../../.env.example', import.meta.url), 'utf8'), envExample());
  });

  it('its defaults load as a valid configuration', async () => {
    const text = await readFile(new URL('../../.env.example', import.meta.url), 'utf8');
    const env = Object.fromEntries(text.split('\n').filter((l) => /^[A-Z_]+=/.test(l)).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
    const config = loadConfig(env);
    assert.equal(config.port, 8080);
    assert.equal(config.resultBackend, 'memory://');
  });
});
