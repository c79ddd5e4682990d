/** core/metrics.ts: counters and gauges rendered in the Prometheus text format. */
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { Counters, renderPrometheus } from '../../core/metrics.ts'

test('renders HELP/TYPE per metric, its series together, and escapes label values', () => {
  const a = new Counters('breakid_notify')
    .describe('delivered_total', 'counter', 'alerts a route delivered')
    .describe('queue_depth', 'gauge', 'alerts waiting\nfor a route')
  a.inc('delivered_total', 2, { route: 'ops' })
  a.set('queue_depth', 3, { route: 'ops' })
  a.inc('delivered_total', 1, { route: 'say "hi"\\now\n' })
  a.set('queue_depth', 7, { route: 'ops' }) // a gauge is replaced, not added
  a.inc('undescribed')
  const b = new Counters('breakid_ingest')
  b.inc('rows_stored_total', 5, { table: 'spans' })
  assert.equal(
    renderPrometheus(a, b),
    [
      '# HELP breakid_notify_delivered_total alerts a route delivered',
      '# TYPE breakid_notify_delivered_total counter',
      'breakid_notify_delivered_total{route="ops"} 2',
      'breakid_notify_delivered_total{route="say \\"hi\\"\\\\now\\n"} 1',
      '# HELP breakid_notify_queue_depth alerts waiting\\nfor a route',
      '# TYPE breakid_notify_queue_depth gauge',
      'breakid_notify_queue_depth{route="ops"} 7',
      'breakid_notify_undescribed 1',
      'breakid_ingest_rows_stored_total{table="spans"} 5',
      '',
    ].join('\n'),
  )
  assert.equal(a.get('delivered_total', { route: 'say "hi"\\now\n' }), 1, 'get() finds escaped series')
  assert.equal(a.total('delivered_total'), 3)
  assert.equal(a.prometheus(), renderPrometheus(a))
  assert.equal(renderPrometheus(new Counters('x')), '')
})
