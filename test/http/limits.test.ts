/**
 * Size limits: MAX_ARGS_BYTES on the encoded args + kwargs of each task call (413 GW_ERR_ARGS_TOO_LARGE)
 * on every submit route, BODY_LIMIT on the whole body (413 GW_ERR_BODY_TOO_LARGE), both in our JSON
 * error shape and documented in openapi/openapi.json. Memory adapters, real socket.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { after, before, describe, it } from 'node:test';
import { loadConfig } from '../../src/config.ts';
import { startGateway, type TestGateway } from '../support/app.ts';

const LIMIT = 1024;
/** args ["x…x"] with `n` x's and kwargs {} encode to n + 4 + 2 bytes */
const argsOf = (bytes: number): string[] => ['x'.repeat(bytes - 6)];

describe('MAX_ARGS_BYTES', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway({ env: { MAX_ARGS_BYTES: String(LIMIT) } }); });
  after(async () => { await gw.close(); });

  it('accepts args + kwargs of exactly the limit and refuses one byte more with 413 GW_ERR_ARGS_TOO_LARGE', async () => {
    const ok = await gw.post('/tasks/tasks.echo', { args: argsOf(LIMIT) });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const res = await gw.post('/tasks/tasks.echo', { args: argsOf(LIMIT + 1) });
    assert.equal(res.status, 413);
    assert.equal(res.json.code, 'GW_ERR_ARGS_TOO_LARGE');
    assert.equal(res.json.statusCode, 413);
    assert.equal(res.json.error, 'Payload Too Large');
    assert.deepEqual({ bytes: res.json.details.bytes, limit: res.json.details.limit }, { bytes: LIMIT + 1, limit: LIMIT });
    assert.match(res.json.message, /1025 bytes encoded, more than MAX_ARGS_BYTES \(1024\)/);
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    assert.equal(await gw.broker.queueLength('celery'), 1, 'only the first was published');
  });

  it('counts bytes, not characters, and kwargs with args', async () => {
    // "é" is two bytes in UTF-8: 600 of them are 1200 bytes
    assert.equal((await gw.post('/tasks/tasks.echo', { args: ['é'.repeat(600)] })).status, 413);
    assert.equal((await gw.post('/tasks/tasks.echo', { args: ['x'.repeat(600)] })).status, 202);
    const split = await gw.post('/tasks/tasks.echo', { args: ['x'.repeat(600)], kwargs: { y: 'y'.repeat(600) } });
    assert.equal(split.status, 413);
  });

  it('applies to the Flower aliases and to links', async () => {
    const flower = await gw.post('/api/task/async-apply/tasks.echo', { args: argsOf(LIMIT + 1) });
    assert.equal(flower.status, 413);
    assert.equal(flower.json.code, 'GW_ERR_ARGS_TOO_LARGE');
    const link = await gw.post('/tasks/tasks.echo', { args: [], options: { link: { task: 'tasks.echo', args: argsOf(LIMIT + 1) } } });
    assert.equal(link.status, 413);
    assert.equal(link.json.details.pointer, '/options/link');
  });

  it('applies to each workflow node alone, with the node\'s pointer', async () => {
    const half = argsOf(LIMIT / 2);
    // three nodes of half the limit each: the workflow is larger than the limit, each node is not
    const ok = await gw.post('/workflows', { group: [{ task: 'tasks.echo', args: half }, { task: 'tasks.echo', args: half }, { task: 'tasks.echo', args: half }] });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const big = await gw.post('/workflows', { chain: [{ task: 'tasks.echo', args: half }, { task: 'tasks.echo', args: argsOf(LIMIT + 1) }] });
    assert.equal(big.status, 413);
    assert.equal(big.json.code, 'GW_ERR_ARGS_TOO_LARGE');
    assert.equal(big.json.details.pointer, '/chain/1');
    const items = await gw.post('/workflows', { chain: [{ task: 'tasks.echo' }, { map: { task: 'tasks.echo', items: Array.from({ length: 100 }, () => 'x'.repeat(20)) } }] });
    assert.equal(items.status, 413);
    assert.equal(items.json.details.pointer, '/chain/1');
  });

  it('must be a number of at least 16 bytes', () => {
    assert.throws(() => loadConfig({ MAX_ARGS_BYTES: '10' }), /MAX_ARGS_BYTES="10" is invalid/);
    assert.throws(() => loadConfig({ MAX_ARGS_BYTES: 'lots' }), /MAX_ARGS_BYTES/);
    assert.equal(loadConfig({}).maxArgsBytes, 262144);
  });
});

describe('BODY_LIMIT', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway({ env: { BODY_LIMIT: '2048' } }); });
  after(async () => { await gw.close(); });

  it('refuses a larger body with 413 GW_ERR_BODY_TOO_LARGE in the JSON error shape, before MAX_ARGS_BYTES applies', async () => {
    const res = await gw.post('/tasks/tasks.echo', { args: ['x'.repeat(3000)] });
    assert.equal(res.status, 413);
    assert.deepEqual(Object.keys(res.json).sort(), ['code', 'error', 'message', 'statusCode']);
    assert.equal(res.json.code, 'GW_ERR_BODY_TOO_LARGE');
    assert.match(res.headers.get('content-type') ?? '', /application\/json/);
    const chunked = await fetch(`${gw.base}/workflows`, {
      method: 'POST', headers: { 'content-type': 'application/json' }, duplex: 'half',
      body: new ReadableStream({ start(c) { c.enqueue(new TextEncoder().encode(JSON.stringify({ task: 'tasks.echo', args: ['y'.repeat(3000)] }))); c.close(); } }),
    } as RequestInit);
    assert.equal(chunked.status, 413);
    assert.equal(((await chunked.json()) as { code: string }).code, 'GW_ERR_BODY_TOO_LARGE');
    assert.equal(await gw.broker.queueLength('celery'), 0);
  });
});

describe('limits in openapi/openapi.json', () => {
  const doc = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
  it('documents 413 with both codes on every submit route', () => {
    for (const path of ['/tasks/{name}', '/workflows', '/api/task/async-apply/{name}', '/api/task/send-task/{name}', '/api/task/apply/{name}']) {
      const description = doc.paths[path].post.responses['413']?.description ?? '';
      assert.match(description, /GW_ERR_BODY_TOO_LARGE/, path);
      assert.match(description, /GW_ERR_ARGS_TOO_LARGE/, path);
    }
    assert.match(doc.paths['/tasks/{name}'].post.description, /MAX_ARGS_BYTES/);
  });

  it('documents 413 and 415 on every operation that takes a body', () => {
    for (const [path, item] of Object.entries<any>(doc.paths)) {
      for (const [method, op] of Object.entries<any>(item)) {
        if (!op.requestBody) continue;
        assert.ok(op.responses['413'], `${method} ${path} documents 413`);
        assert.ok(op.responses['415'], `${method} ${path} documents 415`);
      }
    }
  });
});
