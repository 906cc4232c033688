/**
 * request.log is made on its first line: nothing per request while nothing is logged, the same lines
 * (with the reqId binding) when something is.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { requestLogger } from '../../src/http/request-logger.ts';

function collecting(level: string) {
  const lines: Record<string, unknown>[] = [];
  const stream = new Writable({ write(chunk: Buffer, _enc, cb) { lines.push(JSON.parse(chunk.toString())); cb(); } });
  const root = pino({ level, base: null }, stream);
  let children = 0;
  const child = root.child.bind(root);
  root.child = ((...args: Parameters<typeof child>) => { children += 1; return child(...args); }) as typeof root.child;
  return { root, lines, children: () => children };
}

describe('requestLogger (Fastify childLoggerFactory)', () => {
  it('makes no child while calls are below the level, then one child that logs with the bindings', async () => {
    const { root, lines, children } = collecting('warn');
    const log = requestLogger(root, { reqId: 'req-7' }, {});
    log.info({ a: 1 }, 'not written');
    log.debug('nor this');
    assert.equal(children(), 0);
    assert.equal(log.level, 'warn');
    log.warn({ code: 'X' }, 'written');
    log.error('and this, %s', 'formatted');
    assert.equal(children(), 1);
    await new Promise((resolve) => setImmediate(resolve));
    assert.deepEqual(lines.map(({ time: _t, ...rest }) => rest), [
      { level: 40, reqId: 'req-7', code: 'X', msg: 'written' },
      { level: 50, reqId: 'req-7', msg: 'and this, formatted' },
    ]);
  });

  it('a level set on it, or its own children, get the real child', () => {
    const { root, children } = collecting('warn');
    const log = requestLogger(root, { reqId: 'req-8' }, {});
    log.level = 'debug';
    assert.equal(children(), 1);
    assert.equal(log.level, 'debug');
    assert.equal(root.level, 'warn', 'the root keeps its level');
    const grandchild = log.child({ part: 'x' });
    assert.equal(typeof grandchild.info, 'function');
  });

  it('route options (a route log level) make the child at once', () => {
    const { root, children } = collecting('warn');
    const log = requestLogger(root, { reqId: 'req-9' }, { level: 'info' });
    assert.equal(children(), 1);
    assert.equal(log.level, 'info');
  });
});
