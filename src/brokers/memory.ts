/**
 * An in-process broker with the Redis transport's semantics (priority steps 0 → 9, FIFO within a step,
 * prefetch bound, reject-with-requeue to the back of the queue). For `npm start` (gateway and worker in
 * one process) and fast tests. Exchanges are not emulated: a message goes to `route.queue`.
 */
import type { RawMessage } from '../protocol/types.ts';
import { PRIORITY_STEPS, priorityStep } from '../protocol/kombu-envelope.ts';
import type { Broker, ConsumeOptions, Delivery, Route, Subscription } from './broker.ts';

interface Entry {
  message: RawMessage;
  redelivered: boolean;
}

interface Consumer {
  /** in consume order, rotated round-robin after each delivery as kombu does */
  queues: string[];
  prefetch: number;
  unsettled: number;
  active: boolean;
  onDelivery: (delivery: Delivery) => void;
}

export class MemoryBroker implements Broker {
  readonly kind = 'memory';
  readonly displayUrl = 'memory://';
  /** queue → one FIFO per priority step */
  readonly #queues = new Map<string, Entry[][]>();
  readonly #consumers: Consumer[] = [];
  #closed = false;
  #scheduled = false;

  #lists(queue: string): Entry[][] {
    let lists = this.#queues.get(queue);
    if (!lists) {
      lists = PRIORITY_STEPS.map(() => []);
      this.#queues.set(queue, lists);
    }
    return lists;
  }

  #push(queue: string, entry: Entry): void {
    const step = priorityStep(entry.message.properties.priority);
    this.#lists(queue)[PRIORITY_STEPS.indexOf(step as 0 | 3 | 6 | 9)]?.push(entry);
    this.#schedule();
  }

  async publish(message: RawMessage, route: Route): Promise<void> {
    if (this.#closed) throw new Error('broker closed');
    // a snapshot, as a network broker holds its own bytes: later changes by the publisher do not leak in
    this.#push(route.queue, { message: structuredClone(message), redelivered: false });
  }

  async consume(options: ConsumeOptions, onDelivery: (delivery: Delivery) => void): Promise<Subscription> {
    const consumer: Consumer = { queues: [...options.queues], prefetch: options.prefetch, unsettled: 0, active: true, onDelivery };
    this.#consumers.push(consumer);
    this.#schedule();
    return {
      setPrefetch: (prefetch) => { consumer.prefetch = prefetch; this.#schedule(); },
      cancel: async () => {
        consumer.active = false;
        const at = this.#consumers.indexOf(consumer);
        if (at >= 0) this.#consumers.splice(at, 1);
      },
    };
  }

  /** Deliver on a later tick, as a network broker would (no re-entrant callbacks). */
  #schedule(): void {
    if (this.#scheduled) return;
    this.#scheduled = true;
    setImmediate(() => {
      this.#scheduled = false;
      this.#dispatch();
    });
  }

  #take(queues: string[]): [string, Entry] | undefined {
    for (let step = 0; step < PRIORITY_STEPS.length; step += 1) {
      for (const [at, queue] of queues.entries()) {
        const entry = this.#queues.get(queue)?.[step]?.shift();
        if (!entry) continue;
        if (queues.length > 1) queues.push(...queues.splice(at, 1));
        return [queue, entry];
      }
    }
    return undefined;
  }

  #dispatch(): void {
    let delivered = true;
    while (delivered) {
      delivered = false;
      for (const consumer of [...this.#consumers]) {
        if (!consumer.active || consumer.unsettled >= consumer.prefetch) continue;
        const taken = this.#take(consumer.queues);
        if (!taken) continue;
        delivered = true;
        consumer.unsettled += 1;
        consumer.onDelivery(this.#delivery(consumer, taken[0], taken[1]));
      }
    }
  }

  #delivery(consumer: Consumer, queue: string, entry: Entry): Delivery {
    let settled = false;
    const settle = (): boolean => {
      if (settled) return false;
      settled = true;
      consumer.unsettled -= 1;
      this.#schedule();
      return true;
    };
    return {
      // each delivery gets its own copy, so a consumer's changes never reach a redelivery
      message: structuredClone(entry.message),
      queue,
      redelivered: entry.redelivered,
      ack: async () => { settle(); },
      reject: async (requeue) => {
        if (settle() && requeue && !this.#closed) this.#push(queue, { message: entry.message, redelivered: true });
      },
    };
  }

  /** Reaches the listeners in this process (nothing outside it can listen). */
  async broadcast(message: RawMessage, exchange: string): Promise<void> {
    if (this.#closed) throw new Error('broker closed');
    for (const listener of this.#listeners.get(exchange) ?? []) setImmediate(() => listener(structuredClone(message)));
  }

  /** Events reach the exchange's listenBroadcast listeners in this process (the routing key is not kept). */
  async publishEvent(message: RawMessage, exchange: string, _routingKey: string): Promise<void> {
    await this.broadcast(message, exchange);
  }

  /** Broadcasts reach listeners in this process. */
  readonly #listeners = new Map<string, Set<(message: RawMessage) => void>>();

  async listenBroadcast(exchange: string, _queue: string, onMessage: (message: RawMessage) => void): Promise<() => Promise<void>> {
    let set = this.#listeners.get(exchange);
    if (!set) this.#listeners.set(exchange, (set = new Set()));
    set.add(onMessage);
    return async () => { set.delete(onMessage); };
  }

  async publishToExchange(message: RawMessage, _exchange: string, routingKey: string): Promise<void> {
    this.#push(routingKey, { message: structuredClone(message), redelivered: false });
  }

  async gatherReplies(_exchange: string, routingKey: string, _queue: string, timeoutMs: number, send: () => Promise<void>): Promise<RawMessage[]> {
    const got: RawMessage[] = [];
    const sub = await this.consume({ queues: [routingKey], prefetch: 1000 }, (d) => { got.push(d.message); void d.ack(); });
    await send();
    await new Promise((resolve) => setTimeout(resolve, timeoutMs));
    await sub.cancel();
    return got;
  }

  async queueLength(queue: string): Promise<number> {
    return (this.#queues.get(queue) ?? []).reduce((n, list) => n + list.length, 0);
  }

  async ping(): Promise<void> {
    if (this.#closed) throw new Error('broker closed');
  }

  async close(): Promise<void> {
    this.#closed = true;
    for (const consumer of this.#consumers) consumer.active = false;
    this.#consumers.length = 0;
  }
}
