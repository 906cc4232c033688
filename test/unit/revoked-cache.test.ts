/** The revoked index and a worker's RevokedCache over the in-memory state (the Redis path: revoke-redis.test.ts). */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MemoryState } from '../../src/state/shared-state.ts';
import { REVOKED_INDEX, RevokedCache, RevokedSet } from '../../src/state/revoked.ts';

describe('RevokedCache', () => {
  it('loads the index, picks up later revokes (even from a gateway whose clock lags a little), forgets what is past the TTL', async () => {
    let now = 1_000_000;
    const state = new MemoryState(() => now);
    const gateway = new RevokedSet(state, 60, () => now);
    await gateway.add('early', { terminate: false, signal: 'SIGTERM' });
    const cache = new RevokedCache(state, 60);
    await cache.refresh();
    assert.equal(cache.isRevoked('early'), true);
    assert.equal(cache.isRevoked('other'), false);

    now += 10_000;
    await gateway.add('later', { terminate: true, signal: 'SIGKILL' });
    await cache.refresh();
    assert.equal(cache.isRevoked('later'), true);
    // written after that refresh by a gateway whose clock is 3 s behind: scored below the newest seen,
    // within the margin the refresh looks back
    await state.indexAdd(REVOKED_INDEX, 'lagging', now - 3000, 60);
    await cache.refresh();
    assert.equal(cache.isRevoked('lagging'), true);

    now += 61_000;
    await gateway.add('latest', { terminate: false, signal: 'SIGTERM' });
    await cache.refresh();
    assert.equal(cache.isRevoked('latest'), true);
    assert.equal(cache.isRevoked('early'), false, 'past the TTL: forgotten');
    assert.deepEqual((await state.indexSince(REVOKED_INDEX, 0)).map(([id]) => id), ['latest'], 'the index drops them too');
    assert.deepEqual(await gateway.get('latest'), { terminate: false, signal: 'SIGTERM' }, 'the per-id record keeps the options');
  });
});
