import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { ERRORS } from '../../src/errors.ts';

const doc = JSON.parse(await readFile(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));

describe('openapi/openapi.json', () => {
  it('is a valid OpenAPI 3.1 document (real validator)', async () => {
    const validator = new Validator();
    const result = await validator.validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    assert.equal(validator.version, '3.1');
  });

  it('documents every operation with a summary and at least one success and error answer where input is taken', () => {
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        assert.ok(op.summary, `${method} ${path} has a summary`);
        const statuses = Object.keys(op.responses);
        assert.ok(statuses.some((s) => s.startsWith('2')), `${method} ${path} documents a 2xx`);
        if (op.parameters?.length || op.requestBody) assert.ok(statuses.includes('400'), `${method} ${path} documents 400`);
      }
    }
  });

  it('the error schema lists exactly the catalogue codes', () => {
    const schemas = doc.components?.schemas ?? {};
    const error = Object.values<any>(schemas).find((s) => s.properties?.code?.enum);
    assert.ok(error, 'an Error schema with a code enum');
    assert.deepEqual([...error.properties.code.enum].sort(), Object.keys(ERRORS).sort());
  });
});
