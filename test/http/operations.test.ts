import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { startGateway, type TestGateway } from '../support/app.ts';

describe('operations endpoints', () => {
  let gw: TestGateway;
  before(async () => { gw = await startGateway(); });
  after(async () => { await gw.close(); });

  it('GET /metrics counts submissions by task and outcome, publish latency and long-polls', async () => {
    await gw.post('/tasks/tasks.metric', { args: [1] });
    await gw.post('/tasks/tasks.metric', { args: [2] });
    await gw.post('/tasks/tasks.metric', { args: 'bad' });
    const sent = await gw.post('/tasks/tasks.other', {});
    await gw.get(`/results/${sent.json.id}?wait=0.05`);
    const res = await fetch(`${gw.base}/metrics`);
    assert.equal(res.status, 200);
    assert.match(res.headers.get('content-type') ?? '', /text\/plain/);
    const text = await res.text();
    assert.match(text, /celery_gateway_task_submissions_total\{task="tasks\.metric",outcome="accepted"\} 2/);
    assert.match(text, /celery_gateway_task_submissions_total\{task="refused",outcome="refused"\} 1/);
    assert.match(text, /celery_gateway_publish_duration_seconds_count\{outcome="ok"\} 3/);
    assert.match(text, /celery_gateway_result_waits_total\{outcome="timeout"\} 1/);
    assert.match(text, /celery_gateway_open_long_polls 0/);
    assert.match(text, /celery_gateway_process_resident_memory_bytes \d+/);
    assert.match(text, /celery_gateway_http_requests_total\{route="\/tasks\/:name",method="POST",status="202"\} 3/);
  });

  it('serves Swagger UI at /docs and the OpenAPI document at /openapi.json', async () => {
    const page = await fetch(`${gw.base}/docs/`);
    assert.equal(page.status, 200);
    assert.match(await page.text(), /swagger/i);
    const spec = await (await fetch(`${gw.base}/openapi.json`)).json() as any;
    assert.equal(spec.openapi, '3.1.0');
    assert.ok(spec.paths['/tasks/{name}'].post);
  });
});
