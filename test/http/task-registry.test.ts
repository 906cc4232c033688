/**
 * The task registry (TASK_REGISTRY_FILE / TASK_REGISTRY_STRICT): args / kwargs JSON Schemas checked at
 * submit on every submit route (400 with a pointer), strict mode, the registry's queue, the per-task
 * operations in the served OpenAPI document, and start-up errors naming the entry. Memory adapters,
 * real socket.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { Validator } from '@seriousme/openapi-schema-validator';
import { MemoryBackend } from '../../src/backends/memory.ts';
import { MemoryBroker } from '../../src/brokers/memory.ts';
import { loadConfig } from '../../src/config.ts';
import { isGatewayError } from '../../src/errors.ts';
import { buildApp } from '../../src/http/app.ts';
import { loadTaskRegistry, TaskRegistry } from '../../src/http/task-registry.ts';
import { runCli } from '../support/cli.ts';
import { silentLogger } from '../support/app.ts';

const REGISTRY = {
  'tasks.add': {
    description: 'Adds two numbers.',
    queue: 'h2-math',
    args: { type: 'array', prefixItems: [{ type: 'number' }, { type: 'number' }], items: false, minItems: 2 },
    kwargs: { type: 'object', additionalProperties: false },
  },
  'reports.render': {
    args: { type: 'array', items: { type: 'string' }, maxItems: 1 },
    kwargs: {
      type: 'object',
      required: ['format'],
      properties: { format: { enum: ['pdf', 'html'] }, email: { type: 'string', format: 'email' } },
    },
  },
  'tasks.echo': { args: { type: 'array', prefixItems: [{ type: 'string' }] } },
  // a schema that refers into itself: its refs must still resolve once embedded in the OpenAPI document
  'geo.distance': {
    args: { type: 'array', maxItems: 0 },
    kwargs: {
      type: 'object',
      required: ['from', 'to'],
      additionalProperties: false,
      properties: { from: { $ref: '#/$defs/point' }, to: { $ref: '#/$defs/point' }, unit: { enum: ['km', 'mi'] } },
      $defs: { point: { type: 'object', required: ['lat', 'lon'], properties: { lat: { type: 'number', minimum: -90, maximum: 90 }, lon: { type: 'number' } } } },
    },
  },
  // the same with its own $id: its refs resolve against that id, wherever the schema is embedded
  'geo.area': {
    kwargs: {
      $id: 'https://example.com/schemas/geo-area.json',
      type: 'object',
      required: ['corner'],
      properties: { corner: { $ref: '#/$defs/point' } },
      $defs: { point: { type: 'object', required: ['lat', 'lon'], properties: { lat: { type: 'number', minimum: -90, maximum: 90 }, lon: { type: 'number' } } } },
    },
  },
};

const dir = mkdtempSync(join(tmpdir(), 'h2-registry-'));
const file = (name: string, content: unknown): string => {
  const path = join(dir, name);
  writeFileSync(path, typeof content === 'string' ? content : JSON.stringify(content));
  return path;
};
const registryFile = file('registry.json', REGISTRY);

interface Gw {
  broker: MemoryBroker;
  base: string;
  post(path: string, body: unknown): Promise<{ status: number; json: any }>;
  close(): Promise<void>;
}

async function start(strict: boolean): Promise<Gw> {
  const config = loadConfig({ TASK_REGISTRY_FILE: registryFile, TASK_REGISTRY_STRICT: String(strict) });
  const taskRegistry = loadTaskRegistry(config)!;
  const broker = new MemoryBroker();
  const backend = new MemoryBackend({ submittedTtlSec: 3600 });
  const app = await buildApp({ broker, backend, config, logger: silentLogger, taskRegistry });
  await app.listen({ host: '127.0.0.1', port: 0 });
  const address = app.server.address();
  const base = `http://127.0.0.1:${typeof address === 'object' && address ? address.port : 0}`;
  return {
    broker, base,
    post: async (path, body) => {
      const res = await fetch(base + path, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
      return { status: res.status, json: await res.json() };
    },
    close: async () => { await app.close(); await broker.close(); await backend.close(); },
  };
}

after(() => rmSync(dir, { recursive: true, force: true }));

describe('task registry: validation at submit', () => {
  let gw: Gw;
  before(async () => { gw = await start(false); });
  after(async () => { await gw.close(); });

  it('accepts valid args and routes to the entry\'s queue (options.queue still wins)', async () => {
    const ok = await gw.post('/tasks/tasks.add', { args: [2, 3] });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    assert.equal(ok.json.queue, 'h2-math');
    assert.equal(await gw.broker.queueLength('h2-math'), 1);
    const own = await gw.post('/tasks/tasks.add', { args: [2, 3], options: { queue: 'h2-other' } });
    assert.equal(own.json.queue, 'h2-other');
  });

  it('refuses args that do not match with 400 GW_ERR_ARGS_INVALID and the pointer of the first error', async () => {
    const before = await gw.broker.queueLength('h2-math');
    const res = await gw.post('/tasks/tasks.add', { args: [2, 'three'] });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'GW_ERR_ARGS_INVALID');
    assert.equal(res.json.details.pointer, '/args/1');
    assert.equal(res.json.details.task, 'tasks.add');
    assert.equal(res.json.details.keyword, 'type');
    assert.match(res.json.message, /tasks\.add: \/args\/1 must be number/);
    const short = await gw.post('/tasks/tasks.add', { args: [2] });
    assert.equal(short.json.details.pointer, '/args');
    assert.equal(short.json.details.keyword, 'minItems');
    const extra = await gw.post('/tasks/tasks.add', { args: [1, 2, 3] });
    assert.equal(extra.status, 400);
    assert.equal(await gw.broker.queueLength('h2-math'), before, 'nothing published');
  });

  it('checks kwargs: a missing required member, a bad format, an unexpected member', async () => {
    const missing = await gw.post('/tasks/reports.render', { args: ['r1'], kwargs: {} });
    assert.equal(missing.status, 400);
    assert.equal(missing.json.details.pointer, '/kwargs');
    assert.equal(missing.json.details.params.missingProperty, 'format');
    const email = await gw.post('/tasks/reports.render', { args: ['r1'], kwargs: { format: 'pdf', email: 'not-an-address' } });
    assert.equal(email.json.details.pointer, '/kwargs/email');
    assert.equal(email.json.details.keyword, 'format');
    const unexpected = await gw.post('/tasks/tasks.add', { args: [1, 2], kwargs: { z: 1 } });
    assert.equal(unexpected.json.details.pointer, '/kwargs');
    assert.match(unexpected.json.message, /must not have the member "z"/);
    assert.equal((await gw.post('/tasks/reports.render', { args: ['r1'], kwargs: { format: 'pdf', email: 'ops@example.com' } })).status, 202);
  });

  it('without strict mode, tasks missing from the registry pass unchecked', async () => {
    assert.equal((await gw.post('/tasks/tasks.unlisted', { args: ['anything', 1] })).status, 202);
  });

  it('checks the Flower aliases', async () => {
    const res = await gw.post('/api/task/async-apply/tasks.add', { args: ['x', 1] });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'GW_ERR_ARGS_INVALID');
    assert.equal(res.json.details.pointer, '/args/0');
    assert.equal((await gw.post('/api/task/send-task/tasks.add', { args: [1, 1] })).status, 200);
  });

  it('checks link / link_error signatures of POST /tasks/:name (kwargs only: their args get the result prepended)', async () => {
    const res = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { link: { task: 'reports.render', kwargs: {} } } });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'GW_ERR_ARGS_INVALID');
    assert.equal(res.json.details.pointer, '/options/link/kwargs');
    // one arg in the link + the prepended result = two: not checked against maxItems 1
    const ok = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { link: [{ task: 'reports.render', args: ['x'], kwargs: { format: 'pdf' } }] } });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
  });

  it('checks every node of POST /workflows, with pointers into the spec', async () => {
    const cases: [unknown, string][] = [
      [{ chain: [{ task: 'tasks.add', args: [1, 'x'] }, { task: 'tasks.add', args: [10] }] }, '/chain/0/args/1'],
      [{ group: [{ task: 'tasks.add', args: [1, 2] }, { task: 'tasks.add', args: [null, 2] }] }, '/group/1/args/0'],
      // an immutable step does not get the parent's result: its args are complete and checked
      [{ chain: [{ task: 'tasks.add', args: [1, 2] }, { task: 'tasks.add', args: [1], immutable: true }] }, '/chain/1/args'],
      // a later step's args are partial, its kwargs are still checked
      [{ chain: [{ task: 'tasks.add', args: [1, 2] }, { task: 'reports.render', kwargs: { format: 'doc' } }] }, '/chain/1/kwargs/format'],
      [{ chord: { header: [{ task: 'tasks.add', args: [1, 2] }, { task: 'tasks.add', args: [true, 2] }], body: { task: 'tasks.echo' } } }, '/chord/header/1/args/0'],
      [{ starmap: { task: 'tasks.add', items: [[1, 2], [3, 'x']] } }, '/starmap/items/1/1'],
      [{ map: { task: 'tasks.echo', items: ['a', 5] } }, '/map/items/1'],
      [{ chunks: { task: 'tasks.add', items: [[1, 2], [3]], size: 1 } }, '/chunks/items/1'],
    ];
    for (const [spec, pointer] of cases) {
      const res = await gw.post('/workflows', spec);
      assert.equal(res.status, 400, `${JSON.stringify(spec)} → ${JSON.stringify(res.json)}`);
      assert.equal(res.json.code, 'GW_ERR_ARGS_INVALID', JSON.stringify(res.json));
      assert.equal(res.json.details.pointer, pointer, JSON.stringify(spec));
    }
    const ok = await gw.post('/workflows', { chain: [{ task: 'tasks.add', args: [2, 3] }, { task: 'tasks.add', args: [10] }, { map: { task: 'tasks.echo', items: ['a'] } }] });
    // the memory backend keeps workflows; a chain whose later step has partial args is fine
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
  });

  it('shows one operation per registered task in the served /openapi.json, which stays a valid OpenAPI 3.1 document', async () => {
    const doc = await (await fetch(`${gw.base}/openapi.json`)).json() as any;
    const op = doc.paths['/tasks/tasks.add']?.post;
    assert.ok(op, 'POST /tasks/tasks.add is documented');
    assert.equal(op.summary, 'Submit tasks.add');
    assert.match(op.description, /Adds two numbers/);
    assert.match(op.description, /h2-math/);
    const schema = op.requestBody.content['application/json'].schema;
    assert.deepEqual(schema.properties.args, REGISTRY['tasks.add'].args);
    assert.deepEqual(schema.properties.kwargs, REGISTRY['tasks.add'].kwargs);
    assert.ok(schema.properties.options.properties.queue, 'the options schema of the generic operation');
    for (const status of ['202', '400', '413', '503']) assert.ok(op.responses[status], `documents ${status}`);
    assert.ok(doc.paths['/tasks/reports.render']?.post && doc.paths['/tasks/tasks.echo']?.post);
    assert.ok(doc.paths['/tasks/{name}'].post, 'the generic operation stays');
    assert.ok(doc.tags.some((t: { name: string }) => t.name === 'registered tasks'));
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
    const committed = JSON.parse(readFileSync(new URL('../../openapi/openapi.json', import.meta.url), 'utf8'));
    assert.equal(committed.paths['/tasks/tasks.add'], undefined, 'the committed contract has no registry');
  });
});

describe('task registry: schemas that refer into themselves', () => {
  let gw: Gw;
  before(async () => { gw = await start(false); });
  after(async () => { await gw.close(); });

  /** what a JSON pointer URI ("#/a/b") designates in `doc` */
  const resolve = (doc: any, ref: string): any => ref.slice(2).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~')).reduce((node, token) => node?.[token], doc);

  it('validates with $defs at submit, and the served document resolves the refs to the same definitions', async () => {
    const ok = await gw.post('/tasks/geo.distance', { kwargs: { from: { lat: 1, lon: 2 }, to: { lat: 3, lon: 4 } } });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const bad = await gw.post('/tasks/geo.distance', { kwargs: { from: { lat: 91, lon: 2 }, to: { lat: 3, lon: 4 } } });
    assert.equal(bad.json.code, 'GW_ERR_ARGS_INVALID');
    assert.equal(bad.json.details.pointer, '/kwargs/from/lat');

    const doc = await (await fetch(`${gw.base}/openapi.json`)).json() as any;
    const kwargs = doc.paths['/tasks/geo.distance'].post.requestBody.content['application/json'].schema.properties.kwargs;
    assert.deepEqual(kwargs, { $ref: '#/components/schemas/submit_geo_distance.kwargs' });
    const component = resolve(doc, kwargs.$ref);
    assert.deepEqual(component.required, ['from', 'to']);
    for (const name of ['from', 'to']) {
      assert.equal(component.properties[name].$ref, '#/components/schemas/submit_geo_distance.kwargs/$defs/point');
      assert.deepEqual(resolve(doc, component.properties[name].$ref), REGISTRY['geo.distance'].kwargs.$defs.point);
    }
    // a schema without refs stays inline
    assert.deepEqual(doc.paths['/tasks/geo.distance'].post.requestBody.content['application/json'].schema.properties.args, { type: 'array', maxItems: 0 });
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });

  it('a schema with its own $id validates at submit and stays inline, $id and all, in the served document', async () => {
    const ok = await gw.post('/tasks/geo.area', { kwargs: { corner: { lat: 1, lon: 2 } } });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const bad = await gw.post('/tasks/geo.area', { kwargs: { corner: { lat: 1 } } });
    assert.equal(bad.status, 400);
    assert.equal(bad.json.code, 'GW_ERR_ARGS_INVALID');
    assert.equal(bad.json.details.pointer, '/kwargs/corner');

    const doc = await (await fetch(`${gw.base}/openapi.json`)).json() as any;
    const kwargs = doc.paths['/tasks/geo.area'].post.requestBody.content['application/json'].schema.properties.kwargs;
    assert.deepEqual(kwargs, REGISTRY['geo.area'].kwargs);
    const result = await new Validator().validate(doc);
    assert.equal(result.valid, true, JSON.stringify(result.errors, null, 2));
  });
});

describe('task registry: strict mode', () => {
  let gw: Gw;
  before(async () => { gw = await start(true); });
  after(async () => { await gw.close(); });

  it('refuses task names missing from the registry with 400 GW_ERR_TASK_NOT_REGISTERED on every submit route', async () => {
    const res = await gw.post('/tasks/tasks.unlisted', { args: [] });
    assert.equal(res.status, 400);
    assert.equal(res.json.code, 'GW_ERR_TASK_NOT_REGISTERED');
    assert.equal(res.json.details.task, 'tasks.unlisted');
    assert.equal((await gw.post('/api/task/apply/tasks.unlisted', {})).json.code, 'GW_ERR_TASK_NOT_REGISTERED');
    const flow = await gw.post('/workflows', { chain: [{ task: 'tasks.add', args: [1, 2] }, { task: 'tasks.unlisted' }] });
    assert.equal(flow.json.code, 'GW_ERR_TASK_NOT_REGISTERED');
    assert.equal(flow.json.details.pointer, '/chain/1/task');
    const link = await gw.post('/tasks/tasks.add', { args: [1, 2], options: { link_error: { task: 'tasks.unlisted' } } });
    assert.equal(link.json.code, 'GW_ERR_TASK_NOT_REGISTERED');
    assert.equal(link.json.details.pointer, '/options/link_error/task');
    assert.equal(await gw.broker.queueLength('celery'), 0);
    assert.equal((await gw.post('/tasks/tasks.add', { args: [1, 2] })).status, 202);
  });

  it('says so in the served OpenAPI document', async () => {
    const doc = await (await fetch(`${gw.base}/openapi.json`)).json() as any;
    assert.match(doc.paths['/tasks/{name}'].post.description, /Strict mode/);
  });
});

describe('task registry: start-up errors', () => {
  const load = (content: unknown, strict = false): unknown => {
    try {
      loadTaskRegistry({ taskRegistryFile: file(`bad-${Math.random()}.json`, content), taskRegistryStrict: strict });
      return null;
    } catch (err) {
      assert.ok(isGatewayError(err) && err.code === 'GW_ERR_CONFIG', String(err));
      return err.message;
    }
  };

  it('names the entry and the problem', () => {
    assert.match(String(load({ 'tasks.bad': { args: { type: 'array', minItems: 'two' } } })), /TASK_REGISTRY_FILE=.*task "tasks\.bad": invalid args schema: .*minItems/);
    assert.match(String(load({ 'tasks.typo': { kwargs: { tpye: 'object' } } })), /task "tasks\.typo": invalid kwargs schema: .*unknown keyword: "tpye"/);
    assert.match(String(load({ 'tasks.fmt': { kwargs: { type: 'object', properties: { a: { type: 'string', format: 'no-such-format' } } } } })), /task "tasks\.fmt": invalid kwargs schema: .*unknown format/);
    assert.match(String(load({ 'tasks.member': { kwarg: {} } })), /task "tasks\.member": unknown member "kwarg"/);
    assert.match(String(load({ 'tasks.type': { args: { type: 'object' } } })), /task "tasks\.type": the args schema must describe an array/);
    assert.match(String(load({ 'bad name!': {} })), /task "bad name!": not a Celery task name/);
    assert.match(String(load({ 'tasks.q': { queue: 'has space' } })), /task "tasks\.q": queue must be/);
    assert.match(String(load('{"tasks.add": ')), /not valid JSON/);
    assert.match(String(load([])), /expected an object/);
  });

  it('TASK_REGISTRY_STRICT needs a file; a missing file is an error; true|false only', () => {
    assert.throws(() => loadTaskRegistry({ taskRegistryFile: '', taskRegistryStrict: true }), /TASK_REGISTRY_STRICT=true needs TASK_REGISTRY_FILE/);
    assert.equal(loadTaskRegistry({ taskRegistryFile: '', taskRegistryStrict: false }), undefined);
    assert.throws(() => loadTaskRegistry({ taskRegistryFile: join(dir, 'absent.json'), taskRegistryStrict: false }), /TASK_REGISTRY_FILE=.*absent\.json/);
    assert.throws(() => loadConfig({ TASK_REGISTRY_STRICT: 'yes' }), /TASK_REGISTRY_STRICT="yes" is invalid/);
    assert.equal(TaskRegistry.parse(JSON.stringify(REGISTRY), 'test', false).size, Object.keys(REGISTRY).length);
  });

  it('`celery-gateway serve` with a registry says so at start-up and serves its operations', async () => {
    const cli = runCli(['serve', '--port', '0'], { AUTH: 'none', CELERY_BROKER_URL: 'memory://', TASK_REGISTRY_FILE: registryFile, TASK_REGISTRY_STRICT: 'true' });
    try {
      await cli.waitFor(new RegExp(`task registry: ${Object.keys(REGISTRY).length} task\\(s\\) from .*registry\\.json, strict`));
      const [, port] = await cli.waitFor(/listening on http:\/\/127\.0\.0\.1:(\d+)/);
      const doc = await (await fetch(`http://127.0.0.1:${port}/openapi.json`)).json() as any;
      assert.ok(doc.paths['/tasks/reports.render']?.post);
    } finally {
      assert.equal(await cli.stop(), 0);
    }
  });

  it('`celery-gateway serve` with an invalid registry file exits with a message naming the entry', async () => {
    const bad = file('serve-bad.json', { 'tasks.ok': {}, 'tasks.broken': { args: { type: 'array', items: { type: 'nope' } } } });
    const cli = runCli(['serve', '--port', '0'], { AUTH: 'none', TASK_REGISTRY_FILE: bad });
    const code = await new Promise<number | null>((resolve) => cli.child.once('exit', resolve));
    assert.equal(code, 2);
    assert.match(cli.output(), /TASK_REGISTRY_FILE=.*serve-bad\.json: task "tasks\.broken": invalid args schema/);
  });
});
