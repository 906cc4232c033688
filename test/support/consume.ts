/** Collects messages from a queue through the Broker interface (works on every adapter). */
import type { Broker, Delivery } from '../../src/brokers/broker.ts';

export async function takeDeliveries(broker: Broker, queue: string, count: number, timeoutMs = 3000): Promise<Delivery[]> {
  const got: Delivery[] = [];
  let done: () => void = () => {};
  const finished = new Promise<void>((resolve) => { done = resolve; });
  const sub = await broker.consume({ queues: [queue], prefetch: count }, (d) => {
    got.push(d);
    if (got.length >= count) done();
  });
  const timer = setTimeout(done, timeoutMs);
  await finished;
  clearTimeout(timer);
  await sub.cancel();
  return got;
}

export function bodyOf(d: Delivery): [unknown[], Record<string, unknown>, Record<string, unknown>] {
  return JSON.parse(d.message.body) as [unknown[], Record<string, unknown>, Record<string, unknown>];
}
