/** AMQP URL lists (kombu's `amqp://a;amqp://b` failover form) and the queue-type setting. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { amqpUrlList } from '../../src/brokers/amqp-url.ts';
import { loadConfig } from '../../src/config.ts';
import { GatewayError } from '../../src/errors.ts';

const configError = (re: RegExp) => (err: unknown): boolean => err instanceof GatewayError && err.code === 'GW_ERR_CONFIG' && re.test(err.message);

describe('amqpUrlList', () => {
  it('splits on ";" in order, each part parsed as its own URL', () => {
    const nodes = amqpUrlList('amqp://u:p@127.0.0.1:5692//;amqp://v:q@127.0.0.1:5693/vh?heartbeat=5');
    assert.deepEqual(nodes.map((n) => [n.hostname, n.port, n.username, n.password, n.vhost, n.heartbeat]), [
      ['127.0.0.1', 5692, 'u', 'p', '/', undefined],
      ['127.0.0.1', 5693, 'v', 'q', 'vh', 5],
    ]);
  });

  it('a single URL is a list of one; blanks and a trailing ";" are ignored', () => {
    assert.equal(amqpUrlList('amqp://h//').length, 1);
    assert.deepEqual(amqpUrlList(' amqp://a// ; pyamqp://b:5673// ;').map((n) => `${n.hostname}:${n.port}`), ['a:5672', 'b:5673']);
  });

  it('a bad part fails with the config error of that part', () => {
    assert.throws(() => amqpUrlList('amqp://a//;redis://b'), configError(/scheme must be amqp/));
    assert.throws(() => amqpUrlList(';'), configError(/empty/));
  });
});

describe('CELERY_QUEUE_TYPE', () => {
  it('classic by default, quorum accepted, anything else refused', () => {
    assert.equal(loadConfig({}).queueType, 'classic');
    assert.equal(loadConfig({ CELERY_QUEUE_TYPE: 'quorum' }).queueType, 'quorum');
    assert.throws(() => loadConfig({ CELERY_QUEUE_TYPE: 'stream' }), configError(/CELERY_QUEUE_TYPE="stream" is invalid/));
  });

  it('quorum with priorities is a start-up error that says why', () => {
    assert.throws(() => loadConfig({ CELERY_QUEUE_TYPE: 'quorum', CELERY_QUEUE_MAX_PRIORITY: '10' }),
      configError(/quorum queues have no message priorities/));
    assert.equal(loadConfig({ CELERY_QUEUE_TYPE: 'quorum', CELERY_QUEUE_MAX_PRIORITY: '0' }).queueMaxPriority, 0);
  });
});
