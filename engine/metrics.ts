/** Prometheus text exposition of the engine's counters, with Triton-like names. */
import type { Engine } from './engine.ts'

export function renderMetrics(engine: Engine): string {
  const lines: string[] = []
  const metric = (name: string, type: string, help: string, samples: [string, number][]) => {
    lines.push(`# HELP ${name} ${help}`, `# TYPE ${name} ${type}`)
    for (const [labels, v] of samples) lines.push(`${name}${labels} ${v}`)
  }
  metric('breakid_inference_request_total', 'counter', 'Inference requests answered', [
    ['', engine.completions],
  ])
  metric('breakid_inference_in_flight', 'gauge', 'Requests accepted and not yet answered', [
    ['', engine.inFlight],
  ])
  metric(
    'breakid_inference_errors_total',
    'counter',
    'Failed requests by error class',
    [...engine.errors].map(([code, n]) => [`{code="${code}"}`, n]),
  )
  const models = [...engine.models.entries()]
  metric(
    'breakid_inference_queue_depth',
    'gauge',
    'Rows waiting for the executor',
    models.map(([name, m]) => [`{model="${name}"}`, m.batcher.depth]),
  )
  metric(
    'breakid_inference_compute_duration_us_total',
    'counter',
    'Cumulative time inside model execution, microseconds',
    models.map(([name, m]) => [`{model="${name}"}`, m.executor.busyUs]),
  )
  metric(
    'breakid_inference_exec_count',
    'counter',
    'Model executions (batches)',
    models.map(([name, m]) => [`{model="${name}"}`, m.executor.batches]),
  )
  // result cache (engine/cache.ts): hits, misses, and what the hits saved
  const cache = engine.cache
  metric('breakid_cache_hits_total', 'counter', 'Result cache hits', [['', cache.hits]])
  metric('breakid_cache_misses_total', 'counter', 'Result cache misses', [['', cache.misses]])
  metric('breakid_cache_hit_ratio', 'gauge', 'Result cache hits / lookups since start', [
    ['', cache.hitRatio],
  ])
  metric('breakid_cache_entries', 'gauge', 'Results held by the cache', [['', cache.size]])
  metric('breakid_cache_evictions_total', 'counter', 'Least recently used results evicted', [
    ['', cache.evictions],
  ])
  metric(
    'breakid_cache_latency_saved_us_total',
    'counter',
    "Latency the cache's hits saved: per hit, its model's mean miss time (preprocessing to answer) minus the hit's, µs",
    [['', Math.round(cache.latencySavedUs)]],
  )
  metric('breakid_preprocess_backlog', 'gauge', 'Requests waiting for a preprocessing worker', [
    ['', engine.preprocess.backlog],
  ])
  // telemetry (engine/telemetry/emitter.ts): what reached the transport, what waits, what was lost
  const telemetry = engine.telemetry
  metric('breakid_telemetry_records_sent_total', 'counter', 'Spans and hardware samples the transport took', [
    ['', telemetry.sent],
  ])
  metric('breakid_telemetry_records_pending', 'gauge', 'Telemetry records waiting for a flush', [
    ['', telemetry.pending],
  ])
  metric(
    'breakid_telemetry_records_dropped_total',
    'counter',
    'Telemetry records lost, by reason (buffer_full, schema_mismatch, or the reason the broker refused one)',
    [...telemetry.drops].map(([reason, n]) => [`{reason="${reason}"}`, n]),
  )
  metric(
    'breakid_telemetry_send_failures_total',
    'counter',
    'Failed telemetry send attempts, by reason',
    [...telemetry.sendFailuresByReason].map(([reason, n]) => [`{reason="${reason}"}`, n]),
  )
  metric(
    'nv_inference_pending_request_count',
    'gauge',
    'Instantaneous number of pending requests awaiting execution per-model',
    engine.registry
      .live()
      .map((m) => [`{model="${m.meta.name}",version="${m.meta.version}"}`, m.batcher.pendingRequests]),
  )
  // Triton-named per-model counters, histograms and the executor busy ratio (engine/telemetry/metrics-recorder.ts)
  return lines.join('\n') + '\n' + engine.metrics.render()
}
