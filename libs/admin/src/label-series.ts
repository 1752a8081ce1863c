import type { Metric, MetricObjectWithValues, MetricValueWithName, Registry } from 'prom-client';

/**
 * Metrics with one label, recorded through a series handle that holds its
 * own numbers: no label object, validation or label hash per call. The xDS
 * server records three of them for every response it writes (istiod's
 * `pilot_xds_pushes`, `pilot_xds_push_time`, `pilot_xds_config_size_bytes`);
 * through prom-client's labelled children each call rebuilt, validated and
 * hashed the labels: 6–9 µs per response in the daemon's CPU profiles, and an
 * endpoint change at N = 1,000 writes 1,000 responses. They are exposed
 * through the same registry, in prom-client's format (names, `le` buckets,
 * `_sum`, `_count`), and reset with it.
 */
abstract class LabelSeries<S> {
  readonly aggregator = 'sum' as const;
  private readonly series = new Map<string, S>();

  constructor(
    readonly name: string,
    readonly help: string,
    readonly labelName: string,
    registry: Registry,
  ) {
    // prom-client's registry reads name, help, type, aggregator, get() and reset(); its types list only its own classes.
    registry.registerMetric(this as unknown as Metric);
  }

  protected abstract fresh(): S;
  protected abstract values(label: Record<string, string>, s: S): MetricValueWithName<string>[];

  /** The series of one label value (kept: hold the handle and record through it). */
  protected seriesOf(value: string): S {
    let s = this.series.get(value);
    if (!s) this.series.set(value, (s = this.fresh()));
    return s;
  }

  get(): Promise<MetricObjectWithValues<MetricValueWithName<string>>> {
    const values: MetricValueWithName<string>[] = [];
    for (const [v, s] of this.series) values.push(...this.values({ [this.labelName]: v }, s));
    // prom-client's types say `type` is an enum; at run time (and in its own metrics) it is the Prometheus type's name.
    return Promise.resolve({ name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, collect: () => {}, values } as unknown as MetricObjectWithValues<MetricValueWithName<string>>);
  }

  abstract get type(): 'counter' | 'histogram';

  /** Zeroes every series (held handles stay valid). */
  abstract reset(): void;

  protected allSeries(): IterableIterator<S> {
    return this.series.values();
  }
}

/** A counter by one label. */
export class LabelCounter extends LabelSeries<{ value: number }> {
  get type(): 'counter' {
    return 'counter';
  }
  protected fresh() {
    return { value: 0 };
  }
  protected values(labels: Record<string, string>, s: { value: number }) {
    return [{ labels, value: s.value }];
  }
  /** A handle that adds to the series of `value`. */
  labels(value: string): { inc(n?: number): void } {
    const s = this.seriesOf(value);
    return {
      inc: (n = 1) => {
        if (!(n >= 0) || !Number.isFinite(n)) throw new TypeError(`${this.name}: a counter only goes up (${n})`);
        s.value += n;
      },
    };
  }
  reset(): void {
    for (const s of this.allSeries()) s.value = 0;
  }
}

interface HistogramSeries {
  /** Per bucket (not cumulative): counts[i] for upper bound i, the last for +Inf. */
  counts: number[];
  sum: number;
  count: number;
}

/** A histogram by one label, with fixed buckets. */
export class LabelHistogram extends LabelSeries<HistogramSeries> {
  constructor(
    name: string,
    help: string,
    labelName: string,
    private readonly buckets: readonly number[],
    registry: Registry,
  ) {
    super(name, help, labelName, registry);
  }
  get type(): 'histogram' {
    return 'histogram';
  }
  protected fresh(): HistogramSeries {
    return { counts: new Array<number>(this.buckets.length + 1).fill(0), sum: 0, count: 0 };
  }
  protected values(labels: Record<string, string>, s: HistogramSeries) {
    const out: MetricValueWithName<string>[] = [];
    let acc = 0;
    for (let i = 0; i < this.buckets.length; i++) {
      acc += s.counts[i]!;
      out.push({ labels: { le: this.buckets[i]!, ...labels }, value: acc, metricName: `${this.name}_bucket` });
    }
    out.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${this.name}_bucket` });
    out.push({ labels, value: s.sum, metricName: `${this.name}_sum` });
    out.push({ labels, value: s.count, metricName: `${this.name}_count` });
    return out;
  }
  /** A handle that observes into the series of `value`. */
  labels(value: string): { observe(v: number): void } {
    const s = this.seriesOf(value);
    const bounds = this.buckets;
    return {
      observe: (v: number) => {
        if (!Number.isFinite(v)) throw new TypeError(`${this.name}: not a finite number (${v})`);
        let i = 0;
        while (i < bounds.length && v > bounds[i]!) i++;
        s.counts[i]!++;
        s.sum += v;
        s.count++;
      },
    };
  }
  reset(): void {
    for (const s of this.allSeries()) {
      s.counts.fill(0);
      s.sum = 0;
      s.count = 0;
    }
  }
}
