/** Prometheus text exposition of the engine's counters, with Triton-like names (rendered by core/metrics.ts). */
import { type Labels, type MetricFamily, type MetricType, renderFamilies } from '../core/metrics.ts'
import type { Engine } from './engine.ts'

export function renderMetrics(engine: Engine): string {
  const families: MetricFamily[] = []
  const metric = (name: string, type: MetricType, help: string, samples: [Labels, number][]) => {
    families.push({ name, type, help, samples: samples.map(([labels, value]) => ({ name, labels, value })) })
  }
  /** one unlabelled series */
  const one = (name: string, type: MetricType, help: string, value: number) =>
    metric(name, type, help, [[{}, value]])
  /** one series per entry of a count map, labelled `label` */
  const labelled = (
    name: string,
    type: MetricType,
    help: string,
    label: string,
    counts: Iterable<[string, number]>,
  ) =>
    metric(
      name,
      type,
      help,
      [...counts].map(([key, n]) => [{ [label]: key }, n]),
    )
  const models = [...engine.models.entries()]
  const perModel = (
    name: string,
    type: MetricType,
    help: string,
    value: (m: (typeof models)[number][1]) => number,
  ) =>
    labelled(
      name,
      type,
      help,
      'model',
      models.map(([model, m]) => [model, value(m)]),
    )

  one('breakid_inference_request_total', 'counter', 'Inference requests answered', engine.completions)
  one('breakid_inference_in_flight', 'gauge', 'Requests accepted and not yet answered', engine.inFlight)
  labelled(
    'breakid_inference_errors_total',
    'counter',
    'Failed requests by error class',
    'code',
    engine.errors,
  )
  perModel('breakid_inference_queue_depth', 'gauge', 'Rows waiting for the executor', (m) => m.batcher.depth)
  perModel(
    'breakid_inference_compute_duration_us_total',
    'counter',
    'Cumulative time inside model execution, microseconds',
    (m) => m.executor.busyUs,
  )
  perModel('breakid_inference_exec_count', 'counter', 'Model executions (batches)', (m) => m.executor.batches)
  // result cache (engine/cache.ts): hits, misses, and what the hits saved
  const cache = engine.cache
  one('breakid_cache_hits_total', 'counter', 'Result cache hits', cache.hits)
  one('breakid_cache_misses_total', 'counter', 'Result cache misses', cache.misses)
  one('breakid_cache_hit_ratio', 'gauge', 'Result cache hits / lookups since start', cache.hitRatio)
  one('breakid_cache_entries', 'gauge', 'Results held by the cache', cache.size)
  one('breakid_cache_evictions_total', 'counter', 'Least recently used results evicted', cache.evictions)
  one(
    'breakid_cache_latency_saved_us_total',
    'counter',
    "Latency the cache's hits saved: per hit, its model's mean miss time (preprocessing to answer) minus the hit's, µs",
    Math.round(cache.latencySavedUs),
  )
  one(
    'breakid_preprocess_backlog',
    'gauge',
    'Requests waiting for a preprocessing worker',
    engine.preprocess.backlog,
  )
  // telemetry (engine/telemetry/emitter.ts): what reached the transport, what waits, what was lost
  const telemetry = engine.telemetry
  one(
    'breakid_telemetry_records_sent_total',
    'counter',
    'Spans and hardware samples the transport took',
    telemetry.sent,
  )
  one(
    'breakid_telemetry_records_pending',
    'gauge',
    'Telemetry records waiting for a flush',
    telemetry.pending,
  )
  labelled(
    'breakid_telemetry_records_dropped_total',
    'counter',
    'Telemetry records lost, by reason (buffer_full, schema_mismatch, or the reason the broker refused one)',
    'reason',
    telemetry.drops,
  )
  labelled(
    'breakid_telemetry_send_failures_total',
    'counter',
    'Failed telemetry send attempts, by reason',
    'reason',
    telemetry.sendFailuresByReason,
  )
  labelled(
    'breakid_telemetry_processor_errors_total',
    'counter',
    'Span processor calls that threw, by processor (avro, metrics, otlp, ...); the requests were answered',
    'processor',
    engine.processors.failures,
  )
  metric(
    'nv_inference_pending_request_count',
    'gauge',
    'Instantaneous number of pending requests awaiting execution per-model',
    engine.registry
      .live()
      .map((m) => [{ model: m.meta.name, version: m.meta.version }, m.batcher.pendingRequests]),
  )
  // Triton-named per-model counters, histograms and the executor busy ratio (engine/telemetry/metrics-recorder.ts)
  return renderFamilies([...families, ...engine.metrics.families()])
}
