/** Helpers shared by the beat tests on real brokers. */
import assert from 'node:assert/strict';
import type { PublishedRun } from '../../src/beat/beat.ts';

export const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

export async function waitFor(what: string, fn: () => boolean, timeoutMs: number): Promise<void> {
  const until = Date.now() + timeoutMs;
  while (!fn()) {
    if (Date.now() > until) throw new Error(`timed out waiting for ${what}`);
    await sleep(20);
  }
}

/** the ticks of published runs, epoch seconds */
export const tickSeconds = (runs: readonly PublishedRun[]): number[] => runs.map((r) => r.tick / 1000);

/** each second once, none missing: the ticks of an every-1-s entry */
export function assertConsecutive(ticks: readonly number[]): void {
  assert.equal(new Set(ticks).size, ticks.length, `a tick ran twice: ${ticks.join(' ')}`);
  for (let i = 1; i < ticks.length; i++) assert.equal(ticks[i]! - ticks[i - 1]!, 1, `not one run per second: ${ticks.join(' ')}`);
}
