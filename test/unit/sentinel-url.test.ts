/** Sentinel URLs (Celery/kombu form), transport options, and the settings around them. */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import pino from 'pino';
import { isSentinelUrl, parseSentinelUrl, parseTransportOptions, sentinelTarget, withTransportOptions } from '../../src/redis/sentinel-url.ts';
import { loadConfig, redactUrl } from '../../src/config.ts';
import { backendRedisUrl, brokerRedisUrl, createBroker, sharedRedisUrl } from '../../src/compose.ts';
import { connectRedis } from '../../src/redis/connection.ts';
import { GatewayError } from '../../src/errors.ts';

const configError = (re: RegExp) => (err: unknown): boolean => err instanceof GatewayError && err.code === 'GW_ERR_CONFIG' && re.test(err.message);

describe('parseSentinelUrl', () => {
  it("reads Celery's two-sentinel form with the db on the last URL", () => {
    // kombu takes db and credentials from the first URL; Celery docs put /0 on the last: accept both
    assert.deepEqual(parseSentinelUrl('sentinel://host:26379;sentinel://host2:26380/0'), {
      sentinels: [{ host: 'host', port: 26379 }, { host: 'host2', port: 26380 }], db: 0, tls: false,
    });
    assert.equal(parseSentinelUrl('sentinel://a:1/3;sentinel://b:2/3').db, 3);
    assert.equal(parseSentinelUrl('sentinel://a:1/5;sentinel://b:2').db, 5);
  });

  it('defaults the port to 26379 (kombu SentinelTransport.default_port)', () => {
    assert.deepEqual(parseSentinelUrl('sentinel://10.0.0.1;sentinel://[::1]').sentinels, [
      { host: '10.0.0.1', port: 26379 }, { host: '::1', port: 26379 },
    ]);
  });

  it('takes the master password (and ACL user) from the first URL, percent-decoded', () => {
    const t = parseSentinelUrl('sentinel://:s%40cret@h1:26379/2;sentinel://:other@h2:26379/2');
    assert.equal(t.password, 's@cret');
    assert.equal(t.username, undefined);
    assert.equal(t.db, 2);
    const u = parseSentinelUrl('sentinel://app:pw@h1:26379');
    assert.equal(u.username, 'app');
    assert.equal(u.password, 'pw');
  });

  it('sentinels:// means TLS; whitespace and a trailing ; are tolerated', () => {
    const t = parseSentinelUrl(' sentinels://h1:1 ; sentinels://h2:2; ');
    assert.equal(t.tls, true);
    assert.equal(t.sentinels.length, 2);
  });

  it('refuses mixed schemes, hostless parts, bad dbs', () => {
    assert.throws(() => parseSentinelUrl('sentinel://h1:1;redis://h2:6379'), configError(/not a sentinel:\/\/ URL/));
    assert.throws(() => parseSentinelUrl("sentinel://:pw@/0"), configError(/no host|not a URL/));
    assert.throws(() => parseSentinelUrl('sentinel://h1:1/x'), configError(/database "x"/));
    assert.throws(() => parseSentinelUrl(';'), configError(/empty/));
  });

  it('isSentinelUrl only for sentinel:// and sentinels://', () => {
    assert.equal(isSentinelUrl('sentinel://h'), true);
    assert.equal(isSentinelUrl('SENTINELS://h'), true);
    assert.equal(isSentinelUrl('redis://h'), false);
  });
});

describe('transport options', () => {
  it('parses master_name and sentinel_kwargs', () => {
    assert.deepEqual(parseTransportOptions('{"master_name":"mymaster","visibility_timeout":3600,"sentinel_kwargs":{"password":"spw"}}', 'X'),
      { master_name: 'mymaster', sentinel_kwargs: { password: 'spw' } });
    assert.deepEqual(parseTransportOptions('', 'X'), {});
    assert.throws(() => parseTransportOptions('{"master_name":3}', 'CELERY_BROKER_TRANSPORT_OPTIONS'), configError(/CELERY_BROKER_TRANSPORT_OPTIONS: master_name/));
    assert.throws(() => parseTransportOptions('[1]', 'X'), configError(/JSON object/));
    assert.throws(() => parseTransportOptions('{', 'X'), configError(/not valid JSON/));
  });

  it('folds them into the URL so one string carries the target', () => {
    const url = withTransportOptions('sentinel://h1:1;sentinel://h2:2/0', { master_name: 'my master', sentinel_kwargs: { password: 'p&w' } });
    assert.equal(url, 'sentinel://h1:1;sentinel://h2:2/0?master_name=my%20master&sentinel_password=p%26w');
    const t = sentinelTarget(url);
    assert.equal(t.masterName, 'my master');
    assert.equal(t.sentinelPassword, 'p&w');
    assert.equal(t.db, 0);
    assert.deepEqual(t.sentinels, [{ host: 'h1', port: 1 }, { host: 'h2', port: 2 }]);
    // a master_name already in the URL wins; redis:// is untouched
    assert.equal(withTransportOptions('sentinel://h?master_name=a', { master_name: 'b' }), 'sentinel://h?master_name=a');
    assert.equal(withTransportOptions('redis://h:6379/0', { master_name: 'b' }), 'redis://h:6379/0');
  });

  it('redactUrl hides every password of a list and the sentinel password', () => {
    assert.equal(redactUrl('sentinel://:pw1@h1:1;sentinel://u:pw2@h2:2/0?master_name=m&sentinel_password=spw'),
      'sentinel://:**@h1:1;sentinel://u:**@h2:2/0?master_name=m&sentinel_password=**');
    assert.equal(redactUrl('amqp://u:p@a//;amqp://u:q@b//'), 'amqp://u:**@a//;amqp://u:**@b//');
  });
});

describe('settings', () => {
  const base = { CELERY_BROKER_URL: 'sentinel://127.0.0.1:26400;sentinel://127.0.0.1:26401/0' };

  it('the backend defaults to the sentinel broker URL and inherits its transport options', () => {
    const config = loadConfig({ ...base, CELERY_BROKER_TRANSPORT_OPTIONS: '{"master_name":"h4m"}' });
    assert.equal(config.resultBackend, base.CELERY_BROKER_URL);
    assert.equal(brokerRedisUrl(config), `${base.CELERY_BROKER_URL}?master_name=h4m`);
    assert.equal(backendRedisUrl(config), `${base.CELERY_BROKER_URL}?master_name=h4m`);
    assert.equal(sharedRedisUrl(config), `${base.CELERY_BROKER_URL}?master_name=h4m`);
  });

  it('CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS applies to the backend only', () => {
    const config = loadConfig({
      ...base, CELERY_BROKER_TRANSPORT_OPTIONS: '{"master_name":"b"}',
      CELERY_RESULT_BACKEND: 'sentinel://127.0.0.1:26402/1', CELERY_RESULT_BACKEND_TRANSPORT_OPTIONS: '{"master_name":"r"}',
    });
    assert.equal(brokerRedisUrl(config), `${base.CELERY_BROKER_URL}?master_name=b`);
    assert.equal(backendRedisUrl(config), 'sentinel://127.0.0.1:26402/1?master_name=r');
  });

  it('a sentinel URL without master_name is a start-up error naming the setting', () => {
    const config = loadConfig(base);
    assert.throws(() => connectRedis(brokerRedisUrl(config), undefined), configError(/master_name.*CELERY_BROKER_TRANSPORT_OPTIONS/));
    assert.throws(() => createBroker(config, pino({ level: 'silent' })), configError(/master_name/));
  });

  it('builds an ioredis client in Sentinel mode (sentinels, name, db, passwords)', () => {
    const client = connectRedis('sentinel://:mpw@127.0.0.1:1/4;sentinel://127.0.0.1:2?master_name=m&sentinel_password=spw', undefined, { lazyConnect: true });
    try {
      const o = client.options;
      assert.deepEqual(o.sentinels, [{ host: '127.0.0.1', port: 1 }, { host: '127.0.0.1', port: 2 }]);
      assert.equal(o.name, 'm');
      assert.equal(o.db, 4);
      assert.equal(o.password, 'mpw');
      assert.equal(o.sentinelPassword, 'spw');
      assert.equal(o.enableOfflineQueue, false); // the fail-fast defaults still apply
    } finally {
      client.disconnect();
    }
  });

  it('REDIS_WAIT_REPLICAS / REDIS_WAIT_TIMEOUT_MS and transport options are validated', () => {
    const c = loadConfig({ REDIS_WAIT_REPLICAS: '1', REDIS_WAIT_TIMEOUT_MS: '250' });
    assert.equal(c.redisWaitReplicas, 1);
    assert.equal(c.redisWaitTimeoutMs, 250);
    assert.equal(loadConfig({}).redisWaitReplicas, 0);
    assert.throws(() => loadConfig({ REDIS_WAIT_REPLICAS: '-1' }), configError(/REDIS_WAIT_REPLICAS/));
    assert.throws(() => loadConfig({ CELERY_BROKER_TRANSPORT_OPTIONS: 'master_name=x' }), configError(/CELERY_BROKER_TRANSPORT_OPTIONS is not valid JSON/));
  });
});
