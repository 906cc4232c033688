import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { amqpUrlToOptions } from '../../src/brokers/amqp-url.ts';
import { isGatewayError } from '../../src/errors.ts';

describe('amqpUrlToOptions', () => {
  it("reads Celery's default URL: '//' is vhost '/'", () => {
    assert.deepEqual(amqpUrlToOptions('amqp://guest:guest@127.0.0.1:5672//'), {
      protocol: 'amqp', hostname: '127.0.0.1', port: 5672, username: 'guest', password: 'guest', vhost: '/',
    });
  });

  it('takes the vhost from the path without its leading slash', () => {
    const o = amqpUrlToOptions('amqp://u:p@h/vh');
    assert.equal(o.vhost, 'vh');
    assert.equal(o.hostname, 'h');
    assert.equal(o.port, 5672);
    assert.equal(o.username, 'u');
    assert.equal(o.password, 'p');
  });

  it('percent-decodes the vhost and credentials', () => {
    assert.equal(amqpUrlToOptions('amqp://h/%2F').vhost, '/');
    assert.equal(amqpUrlToOptions('amqp://h/a%2Fb').vhost, 'a/b');
    const o = amqpUrlToOptions('amqp://us%40er:p%3Ass%2Fw@h/');
    assert.equal(o.username, 'us@er');
    assert.equal(o.password, 'p:ss/w');
  });

  it("defaults: vhost '/', guest/guest, port 5672 (5671 for amqps)", () => {
    for (const url of ['amqp://h', 'amqp://h/']) {
      const o = amqpUrlToOptions(url);
      assert.equal(o.vhost, '/', url);
      assert.equal(o.username, 'guest');
      assert.equal(o.password, 'guest');
      assert.equal(o.port, 5672);
    }
    const tls = amqpUrlToOptions('amqps://user:secret@rabbit.example.com/prod');
    assert.equal(tls.protocol, 'amqps');
    assert.equal(tls.port, 5671);
    assert.equal(tls.vhost, 'prod');
    assert.equal(amqpUrlToOptions('amqps://h:1234//').port, 1234);
  });

  it("reads Celery's pyamqp:// alias as amqp://", () => {
    assert.equal(amqpUrlToOptions('pyamqp://guest@localhost//').protocol, 'amqp');
  });

  it('reads heartbeat and other options from the query string', () => {
    const o = amqpUrlToOptions('amqp://h//?heartbeat=30&frame_max=65536&channelMax=100&locale=en_US&connect_timeout=2.5');
    assert.equal(o.heartbeat, 30);
    assert.equal(o.frameMax, 65536);
    assert.equal(o.channelMax, 100);
    assert.equal(o.locale, 'en_US');
    assert.equal(o.connectTimeoutMs, 2500);
    assert.equal(amqpUrlToOptions('amqp://h?heartbeat=0').heartbeat, 0);
    assert.equal(amqpUrlToOptions('amqp://h/?connectTimeout=750').connectTimeoutMs, 750);
    assert.equal(amqpUrlToOptions('amqp://h//').heartbeat, undefined);
  });

  it('keeps IPv6 hosts usable', () => {
    assert.equal(amqpUrlToOptions('amqp://[::1]:5673//').hostname, '::1');
    assert.equal(amqpUrlToOptions('amqp://[::1]:5673//').port, 5673);
  });

  it('rejects other schemes and bad numbers with GW_ERR_CONFIG, without leaking the password', () => {
    for (const url of ['redis://h', 'http://h', 'amqp:/h', 'amqp://u:hunter2@h//?heartbeat=abc', 'amqp://h//?heartbeat=-1']) {
      assert.throws(() => amqpUrlToOptions(url), (err: unknown) => {
        assert.ok(isGatewayError(err), url);
        assert.equal(err.code, 'GW_ERR_CONFIG');
        assert.ok(!err.message.includes('hunter2'), err.message);
        return true;
      });
    }
  });
});
