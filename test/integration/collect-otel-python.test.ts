/**
 * The collector against the official OpenTelemetry Python SDK and its OTLP/HTTP protobuf exporter
 * (a venv under .venv/, created on first run): a few hundred server spans through the SDK's batch
 * processor, and Triton-shaped traces whose three spans per request go out in separate, out-of-order
 * exports. What comes out of the embedded bus is checked against what the sender says it sent: every
 * request once, stage durations to the microsecond.
 */
import assert from 'node:assert/strict'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { Collector } from '../../collect/collector.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { BusRecords } from '../helpers/bus-records.ts'
import { pythonVenv, runPython } from '../helpers/python-venv.ts'

const GENERIC = 300
const TRITON = 120

interface Sent {
  generic: { trace_id: string; preprocess_us: number; compute_us: number; total_us: number }[]
  triton: Record<string, string | number>[]
  triton_exports: number
}

describe('collect: OpenTelemetry Python SDK → OTLP/HTTP → bus', { timeout: 900_000 }, () => {
  let python = ''
  const bus = new EmbeddedBus()
  const records = new BusRecords(bus)
  const collector = new Collector({
    producer: bus.producer(),
    logger: pino({ level: 'silent' }),
    otlpPort: 0,
  })

  before(async () => {
    python = await pythonVenv(
      'otel',
      ['opentelemetry-sdk==1.45.2', 'opentelemetry-exporter-otlp-proto-http==1.45.2'],
      'opentelemetry.exporter.otlp.proto.http.trace_exporter',
    )
    await records.start()
    await collector.start()
  })

  after(async () => {
    await collector.stop()
    await records.stop()
  })

  it('stores every request once, with Triton stages to the microsecond', async () => {
    const out = await runPython(python, join(import.meta.dirname, 'otel-python/send_spans.py'), [
      collector.otlpUrl!,
      String(GENERIC),
      String(TRITON),
    ])
    const sent = JSON.parse(out) as Sent
    assert.equal(sent.generic.length, GENERIC)
    assert.equal(sent.triton.length, TRITON)
    assert.equal(sent.triton_exports, 6)
    await records.drained()

    const c = collector.counters
    assert.equal(c.get('spans_received'), GENERIC * 3 + TRITON * 3)
    assert.equal(c.total('spans_rejected'), 0)
    assert.equal(c.get('assembled', { kind: 'generic' }), GENERIC)
    assert.equal(c.get('assembled', { kind: 'triton' }), TRITON)
    assert.equal(c.total('incomplete'), 0)
    assert.equal(c.get('late_parts'), 0)
    assert.equal(collector.assembler.pendingSpans, 0)
    assert.equal(records.spans.length, GENERIC + TRITON)

    const byTrace = new Map(records.spans.map((s) => [s.trace_id, s]))
    assert.equal(byTrace.size, GENERIC + TRITON, 'one span per request, none twice')
    for (const g of sent.generic) {
      const s = byTrace.get(g.trace_id)
      assert.ok(s, `generic ${g.trace_id} stored`)
      assert.deepEqual(
        [s.model, s.instance, s.host, s.status, s.preprocess_us, s.compute_us, s.total_us],
        ['ranker-v3', 'ranker-py-1', 'py-host', 'ok', g.preprocess_us, g.compute_us, g.total_us],
      )
    }
    for (const t of sent.triton) {
      const s = byTrace.get(String(t.trace_id))
      assert.ok(s, `triton ${t.trace_id} stored`)
      assert.deepEqual(
        {
          span_id: s.span_id,
          request_id: s.request_id,
          model: s.model,
          timestamp_us: s.timestamp_us,
          deserialize_us: s.deserialize_us,
          queue_wait_us: s.queue_wait_us,
          preprocess_us: s.preprocess_us,
          compute_us: s.compute_us,
          postprocess_us: s.postprocess_us,
          serialize_us: s.serialize_us,
          total_us: s.total_us,
        },
        {
          span_id: t.span_id,
          request_id: t.request_id,
          model: t.model,
          timestamp_us: t.timestamp_us,
          deserialize_us: t.deserialize_us,
          queue_wait_us: t.queue_wait_us,
          preprocess_us: t.preprocess_us,
          compute_us: t.compute_us,
          postprocess_us: t.postprocess_us,
          serialize_us: t.serialize_us,
          total_us: t.total_us,
        },
      )
    }
  })
})
