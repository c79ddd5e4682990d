/** Deterministic records for tests and benchmarks. */
import type { Alert, HwSample, Span } from './records.ts'

export function makeSpan(i: number, over: Partial<Span> = {}): Span {
  return {
    timestamp_us: 1_767_225_600_000_000 + i * 1000,
    trace_id: (i + 1).toString(16).padStart(32, '0'),
    span_id: (i + 1).toString(16).padStart(16, '0'),
    request_id: `req-${i}`,
    fleet: 'test',
    host: 'host-a',
    instance: 'engine-0',
    model: 'mlp',
    model_version: '1',
    device: 'cpu',
    batch_id: `b-${Math.floor(i / 4)}`,
    batch_size: 4,
    status: 'ok',
    error_class: null,
    cache_hit: i % 7 === 0,
    request_bytes: 200 + (i % 13),
    response_bytes: 90,
    deserialize_us: 20 + (i % 5),
    preprocess_us: 40 + (i % 11),
    queue_wait_us: 500 + (i % 97),
    compute_us: 900 + (i % 31),
    postprocess_us: 15,
    serialize_us: 12,
    total_us: 1500 + (i % 140),
    input_mean: 0.01 * (i % 50),
    input_std: 1,
    output_mean: 0.25,
    output_confidence: 0.8,
    ...over,
  }
}

export function makeHwSample(i: number, over: Partial<HwSample> = {}): HwSample {
  return {
    timestamp_us: 1_767_225_600_000_000 + i * 1_000_000,
    fleet: 'test',
    host: 'host-a',
    instance: 'engine-0',
    interval_ms: 1000,
    process_cpu: 0.8,
    rss_bytes: 300_000_000,
    heap_used_bytes: 50_000_000,
    event_loop_delay_p99_ms: 2,
    gc_ms: 1,
    queue_depth: 2,
    in_flight: 4,
    arrivals: 200,
    completions: 200,
    executor_busy: 0.6,
    devices: [
      {
        device: 'cpu',
        utilization: null,
        memory_used_bytes: null,
        memory_total_bytes: null,
        power_w: null,
        temperature_c: null,
      },
    ],
    ...over,
  }
}

export function makeAlert(over: Partial<Alert> = {}): Alert {
  return {
    id: 'a-1',
    type: 'accelerator_starved',
    severity: 'critical',
    status: 'firing',
    dedup_key: 'accelerator_starved/engine-0/mlp',
    fleet: 'test',
    instance: 'engine-0',
    model: 'mlp',
    stage: 'preprocess',
    starts_at_us: 1_767_225_600_000_000,
    ends_at_us: null,
    updated_at_us: 1_767_225_600_000_000,
    statistic: 'executor_busy',
    observed: 0.1,
    baseline: 0.6,
    threshold: 0.3,
    summary: 'executor idle while requests wait',
    suspected_cause: 'preprocessing cannot keep up',
    suggested_action: 'add preprocessing workers',
    exemplar_request_ids: ['req-1', 'it\'s "quoted"'],
    ...over,
  }
}
