/**
 * Metrics counted on every request. prom-client's labelled inc() / observe() validate and hash the
 * label set on each call; with the request hook's own lookups that was ~7 µs of the ~71 µs a
 * submission cost (CPU profile). Here a series is looked up once, an event is a field add, and
 * prom-client's registry reads the totals when /metrics is scraped.
 */
import { Counter, type Histogram, type LabelValues, type Registry } from 'prom-client';

export interface CounterSeries { inc(): void }
export interface HistogramSeries { observe(value: number): void }

interface Config<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registers: Registry[];
}

const seriesKey = (values: readonly string[]): string => values.join('\u0000');

/** `{ name: value }` for the label values given in labelNames order ('' for a missing one). */
const labelsOf = (labelNames: readonly string[], values: readonly string[]): Record<string, string> =>
  Object.fromEntries(labelNames.map((name, i) => [name, values[i] ?? '']));

/**
 * A prom-client Counter whose series count locally: each scrape (its collect hook) adds to the
 * Counter what they counted since the last one. inc() / labels() of the Counter itself still work.
 */
export class BatchedCounter<L extends string> extends Counter<L> {
  readonly #series = new Map<string, { labels: LabelValues<L>; n: number }>();
  readonly #labelNames: readonly L[];

  constructor(config: Config<L>) {
    super({ ...config, collect(this: Counter<L>) { (this as BatchedCounter<L>).#flush(); } });
    this.#labelNames = config.labelNames;
  }

  /** The series for these label values (in labelNames order); keep it, then inc() is a field add. */
  series(...values: string[]): CounterSeries {
    const key = seriesKey(values);
    let entry = this.#series.get(key);
    if (!entry) {
      entry = { labels: labelsOf(this.#labelNames, values) as LabelValues<L>, n: 0 };
      this.#series.set(key, entry);
    }
    const counted = entry;
    return { inc: () => { counted.n += 1; } };
  }

  #flush(): void {
    for (const entry of this.#series.values()) {
      if (entry.n === 0) continue;
      this.inc(entry.labels, entry.n);
      entry.n = 0;
    }
  }
}

interface HistogramState {
  labels: Record<string, string>;
  /** per bucket, not cumulative; the last one is +Inf */
  counts: number[];
  sum: number;
  count: number;
}

/**
 * A histogram in Prometheus' exposition (`_bucket` with `le`, `_sum`, `_count`) registered in a
 * prom-client registry through the registry's metric interface (name, help, type, get, reset).
 */
export class BucketHistogram<L extends string> {
  readonly name: string;
  readonly help: string;
  readonly type = 'histogram' as const;
  readonly aggregator = 'sum' as const;
  readonly #bounds: readonly number[];
  readonly #labelNames: readonly L[];
  readonly #series = new Map<string, HistogramState>();

  constructor(config: Config<L> & { buckets: readonly number[] }) {
    this.name = config.name;
    this.help = config.help;
    this.#bounds = [...config.buckets].sort((a, b) => a - b);
    this.#labelNames = config.labelNames;
    for (const registry of config.registers) registry.registerMetric(this as unknown as Histogram<L>);
  }

  /** The series for these label values (in labelNames order); keep it, then observe() is a few adds. */
  series(...values: string[]): HistogramSeries {
    const key = seriesKey(values);
    let state = this.#series.get(key);
    if (!state) {
      state = { labels: labelsOf(this.#labelNames, values), counts: new Array<number>(this.#bounds.length + 1).fill(0), sum: 0, count: 0 };
      this.#series.set(key, state);
    }
    const s = state;
    const bounds = this.#bounds;
    return {
      observe: (value: number) => {
        if (!Number.isFinite(value)) return;
        let i = 0;
        while (i < bounds.length && value > bounds[i]!) i += 1;
        s.counts[i]! += 1;
        s.sum += value;
        s.count += 1;
      },
    };
  }

  /** observe() with the label values (looks the series up each time: for the cold paths) */
  observe(labels: Partial<Record<L, string>>, value: number): void {
    this.series(...this.#labelNames.map((name) => labels[name] ?? '')).observe(value);
  }

  async get(): Promise<{ name: string; help: string; type: 'histogram'; aggregator: 'sum'; values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> }> {
    const values: Array<{ value: number; labels: Record<string, string | number>; metricName: string }> = [];
    for (const s of this.#series.values()) {
      let cumulative = 0;
      this.#bounds.forEach((bound, i) => {
        cumulative += s.counts[i]!;
        values.push({ value: cumulative, labels: { le: bound, ...s.labels }, metricName: `${this.name}_bucket` });
      });
      values.push({ value: s.count, labels: { le: '+Inf', ...s.labels }, metricName: `${this.name}_bucket` });
      values.push({ value: s.sum, labels: { ...s.labels }, metricName: `${this.name}_sum` });
      values.push({ value: s.count, labels: { ...s.labels }, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values };
  }

  /** zeroes every series (the series handed out keep counting into them) */
  reset(): void {
    for (const s of this.#series.values()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
