/**
 * The span-processor contract (engine/span-processor.ts): the fan-out isolates a throwing processor
 * (the request is answered, the failure counted and on /metrics), flushes and shuts down in order,
 * and shuts down once however often it is asked; the engine's own processors (Avro, /metrics) and the
 * ones given to it see the same spans.
 */
import assert from 'node:assert/strict'
import { after, before, describe, test } from 'node:test'
import { blankSpan, type Span } from '../../contract/records.ts'
import { MultiSpanProcessor, type SpanProcessor } from '../../engine/span-processor.ts'
import { getModel, toKServeInputs } from '../../engine/models/zoo.ts'
import { type EngineHarness, startEngineHarness } from '../helpers/engine-harness.ts'

const aSpan = (): Span =>
  blankSpan({
    timestamp_us: 1,
    trace_id: '0'.repeat(31) + '1',
    span_id: '0'.repeat(15) + '1',
    request_id: 'r-1',
    fleet: 'test',
    host: 'host-a',
    instance: 'engine-0',
    model: 'mlp',
  })

/** A processor that records its calls in `log` and throws from the calls named in `throwsIn`. */
function recording(name: string, log: string[], throwsIn: string[] = []): SpanProcessor & { ended: Span[] } {
  const ended: Span[] = []
  const call = (what: string) => {
    log.push(`${name}.${what}`)
    if (throwsIn.includes(what)) throw new Error(`${name} ${what} broke`)
  }
  return {
    processorName: name,
    ended,
    onStart: () => call('onStart'),
    onEnd: (span) => {
      call('onEnd')
      ended.push(span)
    },
    forceFlush: async () => {
      // a later turn of the event loop: the next flush must wait for this one, not race it
      await new Promise((r) => setImmediate(r))
      call('forceFlush')
    },
    shutdown: async () => {
      await new Promise((r) => setImmediate(r))
      call('shutdown')
    },
  }
}

describe('MultiSpanProcessor', () => {
  test('a processor that throws is counted and the others still get every call', async () => {
    const log: string[] = []
    const good = recording('good', log)
    const multi = new MultiSpanProcessor([
      recording('bad', log, ['onStart', 'onEnd', 'forceFlush', 'shutdown']),
      good,
    ])
    const span = aSpan()
    multi.onStart(span, {})
    multi.onEnd(span, {})
    multi.onEnd(span, {})
    await multi.forceFlush()
    await multi.shutdown()
    assert.equal(good.ended.length, 2)
    assert.deepEqual(Object.fromEntries(multi.failures), { bad: 5 })
    assert.equal(multi.failureCount, 5)
    assert.deepEqual(
      log.filter((l) => l.startsWith('good')),
      ['good.onStart', 'good.onEnd', 'good.onEnd', 'good.forceFlush', 'good.shutdown'],
    )
  })

  test('forceFlush and shutdown run one processor after the other, in order', async () => {
    const log: string[] = []
    const multi = new MultiSpanProcessor([recording('a', log), recording('b', log), recording('c', log)])
    await multi.forceFlush()
    await multi.shutdown()
    assert.deepEqual(log, [
      'a.forceFlush',
      'b.forceFlush',
      'c.forceFlush',
      'a.shutdown',
      'b.shutdown',
      'c.shutdown',
    ])
  })

  test('shutdown is idempotent: concurrent and later calls share the first, spans after it are ignored', async () => {
    const log: string[] = []
    const p = recording('p', log)
    const multi = new MultiSpanProcessor([p])
    const first = multi.shutdown()
    const second = multi.shutdown()
    assert.equal(first, second)
    await Promise.all([first, second, multi.shutdown()])
    await multi.shutdown()
    assert.deepEqual(log, ['p.shutdown'])
    multi.onEnd(aSpan(), {})
    assert.equal(p.ended.length, 0)
  })

  test('start propagates a failure: an engine whose telemetry cannot start does not serve', async () => {
    const multi = new MultiSpanProcessor([
      {
        processorName: 'broken',
        start: async () => {
          throw new Error('no broker')
        },
        onEnd: () => {},
        forceFlush: async () => {},
        shutdown: async () => {},
      },
    ])
    await assert.rejects(multi.start(), /no broker/)
  })
})

describe('the engine through its span processors', () => {
  let h: EngineHarness
  const log: string[] = []
  const given = recording('given', log)
  before(async () => {
    h = await startEngineHarness({
      spanProcessors: [recording('throwing', [], ['onStart', 'onEnd']), given],
    })
  })
  let closed = false
  after(async () => {
    if (!closed) await h.close()
  })

  test('a throwing processor does not fail the request; /metrics counts it; the others see the span', async () => {
    const res = await h.app.inject({
      method: 'POST',
      url: '/v2/models/mlp/infer',
      payload: { inputs: toKServeInputs(getModel('mlp').inputGenerator(1, 1)) },
    })
    assert.equal(res.statusCode, 200)
    assert.deepEqual(log, ['given.onStart', 'given.onEnd'])
    assert.equal(given.ended[0]!.request_id, JSON.parse(res.body).id)
    const spans = await h.spans()
    assert.equal(spans.length, 1, 'the Avro emitter (before the throwing one) emitted it')
    assert.equal(spans[0]!.request_id, given.ended[0]!.request_id)
    const metrics = await h.app.inject({ method: 'GET', url: '/metrics' })
    assert.match(metrics.body, /^breakid_telemetry_processor_errors_total\{processor="throwing"\} 2$/m)
    assert.match(metrics.body, /^nv_inference_request_success\{model="mlp",version="1"\} 1$/m)
  })

  test('engine.forceFlush flushes the Avro emitter; engine.stop shuts the given processors down', async () => {
    await h.engine.forceFlush()
    assert.equal(h.emitter.pending, 0)
    assert.ok(log.includes('given.forceFlush'))
    closed = true
    await h.close()
    assert.equal(log.filter((l) => l === 'given.shutdown').length, 1)
  })
})
