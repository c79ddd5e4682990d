/** Prometheus text exposition of the engine's counters, with Triton-like names (rendered by core/metrics.ts). */
import { type Labels, type MetricFamily, type MetricType, renderFamilies } from '../core/metrics.ts'
import type { Engine } from './engine.ts'

export function renderMetrics(engine: Engine): string {
  const families: MetricFamily[] = []
  const metric = (name: string, type: MetricType, help: string, samples: [Labels, number][]) => {
    families.push({ name, type, help, samples: samples.map(([labels, value]) => ({ name, labels, value })) })
  }
  const none: Labels = {}
  metric('breakid_inference_request_total', 'counter', 'Inference requests answered', [
    [none, engine.completions],
  ])
  metric('breakid_inference_in_flight', 'gauge', 'Requests accepted and not yet answered', [
    [none, engine.inFlight],
  ])
  metric(
    'breakid_inference_errors_total',
    'counter',
    'Failed requests by error class',
    [...engine.errors].map(([code, n]) => [{ code }, n]),
  )
  const models = [...engine.models.entries()]
  metric(
    'breakid_inference_queue_depth',
    'gauge',
    'Rows waiting for the executor',
    models.map(([name, m]) => [{ model: name }, m.batcher.depth]),
  )
  metric(
    'breakid_inference_compute_duration_us_total',
    'counter',
    'Cumulative time inside model execution, microseconds',
    models.map(([name, m]) => [{ model: name }, m.executor.busyUs]),
  )
  metric(
    'breakid_inference_exec_count',
    'counter',
    'Model executions (batches)',
    models.map(([name, m]) => [{ model: name }, m.executor.batches]),
  )
  // result cache (engine/cache.ts): hits, misses, and what the hits saved
  const cache = engine.cache
  metric('breakid_cache_hits_total', 'counter', 'Result cache hits', [[none, cache.hits]])
  metric('breakid_cache_misses_total', 'counter', 'Result cache misses', [[none, cache.misses]])
  metric('breakid_cache_hit_ratio', 'gauge', 'Result cache hits / lookups since start', [
    [none, cache.hitRatio],
  ])
  metric('breakid_cache_entries', 'gauge', 'Results held by the cache', [[none, cache.size]])
  metric('breakid_cache_evictions_total', 'counter', 'Least recently used results evicted', [
    [none, cache.evictions],
  ])
  metric(
    'breakid_cache_latency_saved_us_total',
    'counter',
    "Latency the cache's hits saved: per hit, its model's mean miss time (preprocessing to answer) minus the hit's, µs",
    [[none, Math.round(cache.latencySavedUs)]],
  )
  metric('breakid_preprocess_backlog', 'gauge', 'Requests waiting for a preprocessing worker', [
    [none, engine.preprocess.backlog],
  ])
  // telemetry (engine/telemetry/emitter.ts): what reached the transport, what waits, what was lost
  const telemetry = engine.telemetry
  metric('breakid_telemetry_records_sent_total', 'counter', 'Spans and hardware samples the transport took', [
    [none, telemetry.sent],
  ])
  metric('breakid_telemetry_records_pending', 'gauge', 'Telemetry records waiting for a flush', [
    [none, telemetry.pending],
  ])
  metric(
    'breakid_telemetry_records_dropped_total',
    'counter',
    'Telemetry records lost, by reason (buffer_full, schema_mismatch, or the reason the broker refused one)',
    [...telemetry.drops].map(([reason, n]) => [{ reason }, n]),
  )
  metric(
    'breakid_telemetry_send_failures_total',
    'counter',
    'Failed telemetry send attempts, by reason',
    [...telemetry.sendFailuresByReason].map(([reason, n]) => [{ reason }, n]),
  )
  metric(
    'breakid_telemetry_processor_errors_total',
    'counter',
    'Span processor calls that threw, by processor (avro, metrics, otlp, ...); the requests were answered',
    [...engine.processors.failures].map(([processor, n]) => [{ processor }, n]),
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
