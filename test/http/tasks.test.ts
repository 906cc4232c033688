import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/app.ts';
import { bodyOf, takeDeliveries } from '../support/consume.ts';

describe('POST /tasks/:name (real socket, memory broker)', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway(); });
  after(async () => { await gw.close(); });

  it('answers 202 with the id and publishes a Celery v2 message', async () => {
    const res = await gw.post('/tasks/tasks.multiply', { args: [4, 5], kwargs: { z: 1 }, options: { queue: 'http-q1' } });
    assert.equal(res.status, 202);
    assert.match(res.json.id, /^[0-9a-f-]{36}$/);
    assert.equal(res.json.state, 'PENDING');
    assert.equal(res.json.task, 'tasks.multiply');
    assert.equal(res.json.queue, 'http-q1');
    assert.equal(res.headers.get('location'), `/results/${res.json.id}`);
    const [d] = await takeDeliveries(gw.broker, 'http-q1', 1);
    assert.ok(d, 'a message was published');
    assert.equal(d.message.headers['task'], 'tasks.multiply');
    assert.equal(d.message.headers['id'], res.json.id);
    assert.equal(d.message.headers['root_id'], res.json.id);
    assert.equal(d.message.properties.correlation_id, res.json.id);
    assert.equal(d.message.contentType, 'application/json');
    assert.deepEqual(bodyOf(d), [[4, 5], { z: 1 }, { callbacks: null, errbacks: null, chain: null, chord: null }]);
    await d.ack();
  });

  it('accepts a POST without a body (no arguments) and uses the default queue', async () => {
    const res = await gw.post('/tasks/tasks.noargs');
    assert.equal(res.status, 202);
    assert.equal(res.json.queue, 'celery');
    const [d] = await takeDeliveries(gw.broker, 'celery', 1);
    assert.deepEqual(bodyOf(d!)[0], []);
    await d!.ack();
  });

  it('turns options into headers and properties as Celery does', async () => {
    const before = Date.now();
    const res = await gw.post('/tasks/tasks.add', {
      args: [1, 2],
      options: { queue: 'http-q2', countdown: 60, expires: 120, time_limit: 30, soft_time_limit: 20, priority: 5, task_id: 'my-id-1', ignore_result: true },
    });
    assert.equal(res.status, 202, JSON.stringify(res.json));
    assert.equal(res.json.id, 'my-id-1');
    const [d] = await takeDeliveries(gw.broker, 'http-q2', 1);
    const h = d!.message.headers;
    const eta = Date.parse(h['eta'] as string);
    assert.ok(eta >= before + 60_000 - 5 && eta <= Date.now() + 60_000 + 5, `eta ${h['eta']}`);
    assert.match(h['eta'] as string, /\+00:00$/);
    const expires = Date.parse(h['expires'] as string);
    assert.ok(expires >= before + 120_000 - 5 && expires <= Date.now() + 120_000 + 5);
    assert.deepEqual(h['timelimit'], [30, 20]);
    assert.equal(h['ignore_result'], true);
    assert.equal(d!.message.properties.priority, 5);
    assert.equal(d!.message.properties.expiration, '120000');
    assert.equal(res.json.eta, h['eta']);
    await d!.ack();
  });

  const bad: [string, string, unknown, number, string][] = [
    ['args not an array', '/tasks/tasks.add', { args: 5 }, 400, 'GW_ERR_VALIDATION'],
    ['args a string', '/tasks/tasks.add', { args: '[1,2]' }, 400, 'GW_ERR_VALIDATION'],
    ['kwargs not an object', '/tasks/tasks.add', { kwargs: [1] }, 400, 'GW_ERR_VALIDATION'],
    ['unknown top-level field', '/tasks/tasks.add', { args: [], queue: 'x' }, 400, 'GW_ERR_VALIDATION'],
    ['unknown option', '/tasks/tasks.add', { options: { retry_policy: {} } }, 400, 'GW_ERR_VALIDATION'],
    ['bad eta', '/tasks/tasks.add', { options: { eta: 'tomorrow' } }, 400, 'GW_ERR_BAD_OPTION'],
    ['eta and countdown', '/tasks/tasks.add', { options: { eta: '2030-01-01T00:00:00Z', countdown: 1 } }, 400, 'GW_ERR_BAD_OPTION'],
    ['expires in the past', '/tasks/tasks.add', { options: { expires: '2001-01-01T00:00:00Z' } }, 400, 'GW_ERR_BAD_OPTION'],
    ['negative countdown', '/tasks/tasks.add', { options: { countdown: -1 } }, 400, 'GW_ERR_VALIDATION'],
    ['priority out of range', '/tasks/tasks.add', { options: { priority: 256 } }, 400, 'GW_ERR_VALIDATION'],
    ['invalid queue name', '/tasks/tasks.add', { options: { queue: 'a b' } }, 400, 'GW_ERR_VALIDATION'],
    ['invalid task name', '/tasks/1bad%20name', { args: [] }, 400, 'GW_ERR_BAD_TASK_NAME'],
    ['malformed JSON', '/tasks/tasks.add', '{"args": [1,', 400, 'GW_ERR_BAD_JSON'],
    ['a JSON array body', '/tasks/tasks.add', '[1,2]', 400, 'GW_ERR_VALIDATION'],
  ];
  for (const [what, path, body, status, code] of bad) {
    it(`refuses ${what} with ${status} ${code} and publishes nothing`, async () => {
      const res = await gw.post(path, body);
      assert.equal(res.status, status, JSON.stringify(res.json));
      assert.equal(res.json.code, code);
      assert.equal(res.json.statusCode, status);
      assert.equal(typeof res.json.error, 'string');
      assert.equal(typeof res.json.message, 'string');
      assert.equal(await gw.broker.queueLength('celery'), 0);
    });
  }

  it('says what is wrong with a refused JSON body: the reason the parser gives, an empty body, prototype poisoning', async () => {
    const cases: [string, RegExp][] = [
      ['{"args": [1,}', /^the body is not valid JSON: Unexpected token '}'/],
      ['', /^the body is empty but content-type is application\/json/],
      ['{"kwargs": {"a": {"__proto__": {"polluted": 1}}}}', /"__proto__" key .* prototype poisoning/],
      ['{"kwargs": {"constructor": {"prototype": {"polluted": 1}}}}', /"constructor" key with "prototype"/],
    ];
    for (const [body, message] of cases) {
      const res = await gw.post('/tasks/tasks.add', body, { 'content-type': 'application/json; charset=utf-8' });
      assert.equal(res.status, 400, body);
      assert.equal(res.json.code, 'GW_ERR_BAD_JSON', body);
      assert.match(res.json.message, message, body);
    }
    assert.equal(({} as Record<string, unknown>)['polluted'], undefined);
    assert.equal(await gw.broker.queueLength('celery'), 0);
    // a "constructor" key that holds no "prototype" is data like any other
    const ok = await gw.post('/tasks/tasks.add', '{"kwargs": {"constructor": "Foo"}}', { 'content-type': 'application/json; charset=utf-8' });
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    assert.equal(await gw.broker.queueLength('celery'), 1);
  });

  it('takes a body nested exactly JSON_MAX_DEPTH (256) deep and refuses one level more', async () => {
    // the innermost of `depth` levels is the body object itself
    const nested = (depth: number): string => `{"args":${'['.repeat(depth - 1)}1${']'.repeat(depth - 1)}}`;
    const before = await gw.broker.queueLength('celery');
    const ok = await gw.post('/tasks/tasks.echo', nested(256));
    assert.equal(ok.status, 202, JSON.stringify(ok.json));
    const deep = await gw.post('/tasks/tasks.echo', nested(257));
    assert.equal(deep.status, 400);
    assert.equal(deep.json.code, 'GW_ERR_VALIDATION');
    assert.equal(deep.json.message, 'body nests deeper than 256 levels');
    assert.deepEqual(deep.json.details, { pointer: '/body', maxDepth: 256 });
    assert.equal(await gw.broker.queueLength('celery'), before + 1, 'only the body within the limit');
  });

  it('refuses a non-JSON content type with 415', async () => {
    const res = await gw.post('/tasks/tasks.add', 'args=1', { 'content-type': 'text/plain' });
    assert.equal(res.status, 415);
    assert.equal(res.json.code, 'GW_ERR_UNSUPPORTED_MEDIA_TYPE');
  });

  it('refuses a body over the limit with 413', async () => {
    const small = await startGateway({ env: { BODY_LIMIT: '2048' } });
    try {
      const res = await small.post('/tasks/tasks.add', { args: ['x'.repeat(4096)] });
      assert.equal(res.status, 413);
      assert.equal(res.json.code, 'GW_ERR_BODY_TOO_LARGE');
      assert.equal(await small.broker.queueLength('celery'), 0);
    } finally {
      await small.close();
    }
  });

  it('answers unknown routes with a 404 JSON error', async () => {
    const res = await gw.get('/nope');
    assert.equal(res.status, 404);
    assert.equal(res.json.code, 'GW_ERR_NOT_FOUND');
  });
});
