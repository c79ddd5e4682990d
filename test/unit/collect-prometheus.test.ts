/**
 * The exposition parser (text format and OpenMetrics) on its edge cases and on pages from real
 * exporters (test/fixtures/prometheus), the Triton/DCGM → hardware sample mapping with rates and
 * counter resets, and the scraper against a local HTTP server (Accept negotiation, failures).
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { join } from 'node:path'
import { after, before, describe, it } from 'node:test'
import pino from 'pino'
import { devicesOf, HardwareMapper, pointsOf } from '../../collect/prometheus/hardware.ts'
import { type MetricFamily, parseExposition, seriesOf } from '../../collect/prometheus/parse.ts'
import { parseScrapeTarget, SCRAPE_ACCEPT, Scraper } from '../../collect/prometheus/scraper.ts'
import type { HwSample } from '../../contract/records.ts'
import { Counters } from '../../core/metrics.ts'

const FIXTURES = join(import.meta.dirname, '../fixtures/prometheus')
const fixture = (name: string) => readFileSync(join(FIXTURES, name), 'utf8')
const fam = (families: MetricFamily[], name: string) => {
  const f = families.find((x) => x.name === name)
  assert.ok(f, `family ${name}`)
  return f
}

describe('exposition parser: edge cases', () => {
  it('label escapes, HELP escapes, blanks around labels, a trailing comma', () => {
    const text = [
      '# HELP m A \\\\ backslash,\\na newline and a \\"quote\\"',
      '# TYPE m gauge',
      'm{path="C:\\\\dir",msg="say \\"hi\\"\\nbye" , gpu="0", } 1',
      'm{a="{}=,#"} 2',
      '',
    ].join('\n')
    const families = parseClean(text, 'prometheus')
    const m = fam(families, 'm')
    assert.equal(m.help, 'A \\ backslash,\na newline and a \\"quote\\"') // \" is no escape in 0.0.4 HELP
    assert.deepEqual(m.samples[0]!.labels, { path: 'C:\\dir', msg: 'say "hi"\nbye', gpu: '0' })
    assert.deepEqual(m.samples[1]!.labels, { a: '{}=,#' })
    const om = parseExposition('# HELP m say \\"hi\\"\n# TYPE m gauge\nm 1\n# EOF\n', 'openmetrics')
    assert.equal(fam(om.families, 'm').help, 'say "hi"')
  })

  it('NaN, ±Inf in every spelling, exponents; timestamps in ms (text) and s (OpenMetrics)', () => {
    const text = 'a NaN\nb +Inf\nc -Inf\nd Inf\ne 1.5e+06 1700000000123\nf -0.25 -5\n'
    const families = parseClean(text, 'prometheus')
    const v = (n: string) => fam(families, n).samples[0]!
    assert.ok(Number.isNaN(v('a').value))
    assert.equal(v('b').value, Number.POSITIVE_INFINITY)
    assert.equal(v('c').value, Number.NEGATIVE_INFINITY)
    assert.equal(v('d').value, Number.POSITIVE_INFINITY)
    assert.equal(v('e').value, 1_500_000)
    assert.equal(v('e').timestampMs, 1700000000123)
    assert.equal(v('f').timestampMs, -5)
    const om = parseExposition('# TYPE x gauge\nx 1 1700000000.5\n# EOF\n', 'openmetrics')
    assert.equal(fam(om.families, 'x').samples[0]!.timestampMs, 1700000000500)
    assert.equal(fam(om.families, 'x').samples[0]!.timestampMs, 1700000000500)
  })

  it('groups _bucket/_sum/_count/_created/_total by label set, labels kept', () => {
    const text = [
      '# TYPE lat histogram',
      'lat_bucket{model="a",le="0.1"} 1',
      'lat_bucket{model="a",le="+Inf"} 3',
      'lat_sum{model="a"} 0.9',
      'lat_count{model="a"} 3',
      'lat_created{model="a"} 1700000000',
      'lat_bucket{model="b",le="0.1"} 0',
      'lat_bucket{model="b",le="+Inf"} 1',
      'lat_sum{model="b"} 0.3',
      'lat_count{model="b"} 1',
      '# TYPE q summary',
      'q{model="a",quantile="0.5"} 7',
      'q{model="a",quantile="0.99"} NaN',
      'q_sum{model="a"} 70',
      'q_count{model="a"} 10',
      '# TYPE req counter',
      'req_total{code="200"} 5',
      'req_created{code="200"} 1700000000',
      '# EOF',
    ].join('\n')
    const families = parseClean(text, 'openmetrics')
    assert.deepEqual(
      families.map((f) => [f.name, f.type, f.samples.length]),
      [
        ['lat', 'histogram', 9],
        ['q', 'summary', 4],
        ['req', 'counter', 2],
      ],
    )
    const lat = seriesOf(fam(families, 'lat'))
    assert.deepEqual(lat[0], {
      labels: { model: 'a' },
      buckets: [
        { le: 0.1, count: 1, exemplar: undefined },
        { le: Number.POSITIVE_INFINITY, count: 3, exemplar: undefined },
      ],
      sum: 0.9,
      count: 3,
      created: 1700000000,
    })
    assert.deepEqual(lat[1]!.labels, { model: 'b' })
    const q = seriesOf(fam(families, 'q'))[0]!
    assert.equal(q.quantiles!.length, 2)
    assert.ok(Number.isNaN(q.quantiles![1]!.value))
    assert.deepEqual(seriesOf(fam(families, 'req')), [
      { labels: { code: '200' }, value: 5, created: 1700000000 },
    ])
  })

  it('exemplars (OpenMetrics only), # EOF required and last, UTF-8 quoted names', () => {
    const om = [
      '# TYPE h histogram',
      'h_bucket{le="1"} 2 # {trace_id="4bf92f3577b34da6a3ce929d0e0e4736"} 0.67 1700000000.1',
      'h_bucket{le="+Inf"} 2',
      'h_count 2',
      'h_sum 1.1',
      '{"my.metric", "a.b"="x"} 3',
      '# EOF',
    ].join('\n')
    const parsed = parseExposition(om, 'openmetrics')
    assert.deepEqual(parsed.errors, [])
    const ex = fam(parsed.families, 'h').samples[0]!.exemplar
    assert.deepEqual(ex, {
      labels: { trace_id: '4bf92f3577b34da6a3ce929d0e0e4736' },
      value: 0.67,
      timestampMs: 1700000000100,
    })
    assert.deepEqual(fam(parsed.families, 'my.metric').samples[0]!.labels, { 'a.b': 'x' })
    assert.deepEqual(parseExposition('x 1\n', 'openmetrics').errors, [{ line: 2, message: 'no "# EOF"' }])
    assert.equal(parseExposition('x 1\n# EOF\ny 2\n', 'openmetrics').errors[0]!.message, 'text after "# EOF"')
    assert.match(
      parseExposition('h 1 # {a="b"} 1\n', 'prometheus').errors[0]!.message,
      /exemplars exist only in OpenMetrics/,
    )
  })

  it('reports a bad line with its number and keeps every other line', () => {
    const text =
      'good 1\nbad{a="unterminated} 2\nalso_bad 1x\n{} 3\nx{a="1",a="2"} 1\nx{a="\\q"} 1\ngood2 2\n'
    const { families, errors } = parseExposition(text, 'prometheus')
    assert.deepEqual(
      errors.map((e) => e.line),
      [2, 3, 4, 5, 6],
    )
    assert.match(errors[4]!.message, /invalid escape/)
    assert.deepEqual(
      families.map((f) => f.name),
      ['good', 'good2'],
    )
  })
})

describe('exposition parser: real exporters', () => {
  it('Triton 2.x, 4 GPUs, ensemble: every series with its labels', () => {
    const { families, errors } = parseExposition(fixture('triton-2x-4gpu-ensemble.txt'), 'prometheus')
    assert.deepEqual(errors, [])
    assert.equal(families.length, 15)
    const success = fam(families, 'nv_inference_request_success')
    assert.equal(success.type, 'counter')
    assert.equal(success.samples.length, 9)
    assert.deepEqual(success.samples[1]!.labels, {
      gpu_uuid: 'GPU-8674351b-fff7-56c3-f545-26313154b8ed',
      model: 'distilgpt2_cola',
      version: '0',
    })
    assert.equal(fam(families, 'nv_gpu_utilization').help, 'GPU utilization rate [0.0 - 1.0)')
    assert.equal(fam(families, 'nv_energy_consumption').samples[0]!.value, 205620.582)
  })

  it('Triton with TensorRT-LLM (NVIDIA docs): pending request count gauge', () => {
    const { families, errors } = parseExposition(fixture('triton-trtllm-docs.txt'), 'prometheus')
    assert.deepEqual(errors, [])
    assert.equal(fam(families, 'nv_inference_pending_request_count').type, 'gauge')
    assert.equal(fam(families, 'nv_trt_llm_kv_cache_block_metrics').samples[0]!.value, 0.4875)
  })

  it('DCGM exporter (L40S): all 23 families, every label kept', () => {
    const { families, errors } = parseExposition(fixture('dcgm-exporter-l40s.txt'), 'prometheus')
    assert.deepEqual(errors, [])
    assert.equal(families.length, 23)
    const util = fam(families, 'DCGM_FI_DEV_GPU_UTIL').samples[0]!
    assert.equal(util.labels.modelName, 'NVIDIA L40S')
    assert.equal(util.labels.DCGM_FI_DRIVER_VERSION, '595.58.03')
    assert.equal(fam(families, 'DCGM_FI_DEV_TOTAL_ENERGY_CONSUMPTION').type, 'counter')
  })

  it('node_exporter: summaries with NaN quantiles and labels', () => {
    const { families, errors } = parseExposition(fixture('node-exporter-e2e-excerpt.txt'), 'prometheus')
    assert.deepEqual(errors, [])
    const s = seriesOf(fam(families, 'http_request_duration_microseconds'))
    assert.equal(s.length, 1)
    assert.deepEqual(s[0]!.labels, { handler: 'prometheus' })
    assert.equal(s[0]!.quantiles!.length, 3)
    assert.ok(s[0]!.quantiles!.every((q) => Number.isNaN(q.value)))
    assert.equal(s[0]!.count, 0)
    assert.equal(fam(families, 'node_cpu').samples.length, 9)
    assert.equal(fam(families, 'go_memstats_alloc_bytes').samples[0]!.value, 1_236_968)
  })

  it('client_golang in OpenMetrics: exemplars, negative buckets, _created, labelled summaries', () => {
    const { families, errors } = parseExposition(
      fixture('openmetrics-client-golang-random.txt'),
      'openmetrics',
    )
    assert.deepEqual(errors, [])
    const h = seriesOf(fam(families, 'rpc_durations_histogram_seconds'))[0]!
    assert.equal(h.buckets!.length, 21)
    assert.equal(h.buckets![0]!.le, -0.00099)
    assert.equal(h.buckets!.filter((b) => b.exemplar).length, 6)
    assert.equal(h.count, 15)
    assert.equal(h.created, 1.726839813016302e9)
    const summary = seriesOf(fam(families, 'rpc_durations_seconds'))
    assert.deepEqual(
      summary.map((p) => [p.labels.service, p.count]),
      [
        ['exponential', 22],
        ['normal', 15],
        ['uniform', 11],
      ],
    )
    assert.deepEqual(
      seriesOf(fam(families, 'rpc_requests')).map((p) => p.value),
      [22, 15, 11],
    )
  })
})

/** A Triton page of one model and one GPU, from counter values. */
function tritonPage(v: {
  success: number
  failure?: number
  exec: number
  requestUs: number
  computeUs: number
  pending: number
  util?: number
}): string {
  const m = '{model="resnet50",version="1"}'
  return [
    '# TYPE nv_inference_request_success counter',
    `nv_inference_request_success${m} ${v.success}`,
    '# TYPE nv_inference_request_failure counter',
    `nv_inference_request_failure${m} ${v.failure ?? 0}`,
    '# TYPE nv_inference_exec_count counter',
    `nv_inference_exec_count${m} ${v.exec}`,
    '# TYPE nv_inference_request_duration_us counter',
    `nv_inference_request_duration_us${m} ${v.requestUs}`,
    '# TYPE nv_inference_compute_input_duration_us counter',
    `nv_inference_compute_input_duration_us${m} 0`,
    '# TYPE nv_inference_compute_infer_duration_us counter',
    `nv_inference_compute_infer_duration_us${m} ${v.computeUs}`,
    '# TYPE nv_inference_compute_output_duration_us counter',
    `nv_inference_compute_output_duration_us${m} 0`,
    '# TYPE nv_inference_pending_request_count gauge',
    `nv_inference_pending_request_count${m} ${v.pending}`,
    '# TYPE nv_gpu_utilization gauge',
    `nv_gpu_utilization{gpu_uuid="GPU-1"} ${v.util ?? 0.5}`,
    '',
  ].join('\n')
}

/** the families of an exposition that must parse without a single error */
function parseClean(text: string, format: 'prometheus' | 'openmetrics') {
  const { families, errors } = parseExposition(text, format)
  assert.deepEqual(errors, [])
  return families
}

const points = (text: string) => pointsOf(parseExposition(text, 'prometheus').families)
const ID = { fleet: 'f', host: 'h', instance: 'triton-a' }

describe('hardware samples from Triton and DCGM', () => {
  it('turns counters into rates between rounds and undoes per-request compute accounting', () => {
    const mapper = new HardwareMapper()
    assert.equal(
      mapper.observe(
        ID,
        points(tritonPage({ success: 100, exec: 50, requestUs: 0, computeUs: 0, pending: 2 })),
        10_000,
      ),
      undefined,
    )
    // the counters at 20 s, and still at 30 s (nothing completes in between)
    const counted = { success: 300, failure: 4, exec: 150, computeUs: 8_000_000 }
    // 10 s: 200 requests in 100 executions (batches of 2), each request credited with its batch's 40 ms
    const s = mapper.observe(
      ID,
      points(tritonPage({ ...counted, requestUs: 30_000_000, pending: 6 })),
      20_000,
    )
    assert.ok(s)
    assert.equal(s.interval_ms, 10_000)
    assert.equal(s.completions, 204)
    assert.equal(s.queue_depth, 6)
    assert.equal(s.arrivals, 204 + 6 - 2)
    assert.equal(s.executor_busy, (8_000_000 * (100 / 200)) / 10_000_000) // 0.4
    // 30 s of request time in 10 s is 3 inside on average (Little's law), but 6 wait: at least the queue
    assert.equal(s.in_flight, 6)
    assert.deepEqual(s.devices, [
      {
        device: 'GPU-1',
        utilization: 0.5,
        memory_used_bytes: null,
        memory_total_bytes: null,
        power_w: null,
        temperature_c: null,
      },
    ])
    assert.equal(s.timestamp_us, 20_000_000)
    const next = mapper.observe(
      ID,
      points(tritonPage({ ...counted, requestUs: 60_000_000, pending: 0 })),
      30_000,
    )
    assert.equal(next?.in_flight, 3) // 30 s of request time in 10 s: 3 inside on average
    assert.equal(next?.arrivals, 0) // none completed and the queue emptied: max(0, 0 + 0 − 6)
  })

  it('a counter that went down was reset: its new value is the increase', () => {
    const mapper = new HardwareMapper()
    mapper.observe(
      ID,
      points(tritonPage({ success: 1000, exec: 1000, requestUs: 9e9, computeUs: 5e9, pending: 0 })),
      0,
    )
    const s = mapper.observe(
      ID,
      points(tritonPage({ success: 40, exec: 40, requestUs: 1_000_000, computeUs: 2_000_000, pending: 0 })),
      10_000,
    )
    assert.ok(s)
    assert.equal(s.completions, 40)
    assert.equal(s.executor_busy, 0.2)
  })

  it('without Triton counters, the executor is as busy as its GPUs (DCGM fixture: idle L40S)', () => {
    const mapper = new HardwareMapper()
    const dcgm = points(fixture('dcgm-exporter-l40s.txt'))
    mapper.observe(ID, dcgm, 0)
    const s = mapper.observe(ID, dcgm, 5000)
    assert.ok(s)
    assert.deepEqual(s.devices, [
      {
        device: 'GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43',
        utilization: 0,
        memory_used_bytes: 0,
        memory_total_bytes: (45459 + 608) * 1024 * 1024,
        power_w: 35.686,
        temperature_c: 32,
      },
    ])
    assert.equal(s.executor_busy, 0)
  })

  it('DCGM rows win over Triton gauges for the same GPU; old Triton per-GPU counters sum up', () => {
    const triton = points(fixture('triton-2x-4gpu-ensemble.txt'))
    const devices = devicesOf(triton)
    assert.equal(devices.length, 4)
    assert.deepEqual(
      devices.find((d) => d.device === 'GPU-71ce41fd-3ac0-afe7-c995-21119f1e984a'),
      {
        device: 'GPU-71ce41fd-3ac0-afe7-c995-21119f1e984a',
        utilization: 0,
        memory_used_bytes: 7451181056,
        memory_total_bytes: 16944988160,
        power_w: 58.954,
        temperature_c: null,
      },
    )
    const merged = devicesOf([
      ...points('# TYPE nv_gpu_utilization gauge\nnv_gpu_utilization{gpu_uuid="GPU-x"} 0.9\n'),
      ...points(
        '# TYPE DCGM_FI_PROF_GR_ENGINE_ACTIVE gauge\nDCGM_FI_PROF_GR_ENGINE_ACTIVE{gpu="0",UUID="GPU-x"} 0.25\n',
      ),
    ])
    assert.equal(merged[0]!.utilization, 0.25)
  })
})

describe('scraper', () => {
  let server: Server
  let base = ''
  const seen: { accept?: string }[] = []
  let tritonBody = tritonPage({ success: 0, exec: 0, requestUs: 0, computeUs: 0, pending: 0 })
  before(async () => {
    server = createServer((req, res) => {
      seen.push({ accept: req.headers.accept })
      if (req.url === '/triton') {
        res.setHeader('content-type', 'text/plain; version=0.0.4')
        res.end(tritonBody)
      } else if (req.url === '/dcgm') {
        res.setHeader('content-type', 'text/plain; version=0.0.4')
        res.end(fixture('dcgm-exporter-l40s.txt'))
      } else if (req.url === '/om') {
        res.setHeader('content-type', 'application/openmetrics-text; version=1.0.0; charset=utf-8')
        res.end(fixture('openmetrics-client-golang-random.txt'))
      } else if (req.url === '/huge') {
        res.end('x 1\n'.repeat(100_000))
      } else {
        res.statusCode = 500
        res.end('no')
      }
    })
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
    base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
  })
  after(() => new Promise<void>((r) => server.close(() => r())))

  it('parses --scrape flags; the default instance is the URL host', () => {
    assert.deepEqual(parseScrapeTarget('http://10.0.0.5:8002/metrics'), {
      url: 'http://10.0.0.5:8002/metrics',
      instance: '10.0.0.5',
    })
    assert.deepEqual(parseScrapeTarget('triton-a=http://localhost:8002/metrics'), {
      url: 'http://localhost:8002/metrics',
      instance: 'triton-a',
    })
    assert.throws(() => parseScrapeTarget('file:///etc/passwd'), /not \[instance=\]http/)
  })

  it('merges the Triton and DCGM pages of one instance into one sample per round, negotiating OpenMetrics', async () => {
    let now = 1_000_000
    const counters = new Counters('t')
    const sent: HwSample[] = []
    const scraper = new Scraper({
      targets: [
        { url: `${base}/triton`, instance: 'gpu-host' },
        { url: `${base}/dcgm`, instance: 'gpu-host' },
        { url: `${base}/om`, instance: 'other' },
      ],
      fleet: 'f',
      counters,
      logger: pino({ level: 'silent' }),
      now: () => now,
      onSamples: async (s) => {
        sent.push(...s)
      },
    })
    assert.deepEqual(await scraper.scrapeOnce(), []) // first round: no interval yet
    assert.ok(seen.every((s) => s.accept === SCRAPE_ACCEPT))
    tritonBody = tritonPage({ success: 50, exec: 50, requestUs: 1e6, computeUs: 2e6, pending: 1 })
    now += 10_000
    const samples = await scraper.scrapeOnce()
    assert.equal(samples.length, 2)
    const gpu = samples.find((s) => s.instance === 'gpu-host')!
    assert.equal(gpu.completions, 50)
    assert.equal(gpu.executor_busy, 0.2)
    assert.deepEqual(
      gpu.devices.map((d) => d.device),
      ['GPU-1', 'GPU-5b4e07f6-3a86-4340-039d-25f2a83cdc43'],
    )
    assert.equal(sent.length, 2)
    assert.equal(counters.get('scrapes', { result: 'ok', format: 'openmetrics' }), 2)
    assert.equal(counters.get('scrapes', { result: 'ok', format: 'prometheus' }), 4)
  })

  it('counts failed targets by reason and skips their instance that round', async () => {
    const counters = new Counters('t')
    const scraper = new Scraper({
      targets: [
        { url: `${base}/missing`, instance: 'a' },
        { url: `${base}/huge`, instance: 'b' },
        { url: 'http://127.0.0.1:9/metrics', instance: 'c' },
      ],
      fleet: 'f',
      counters,
      logger: pino({ level: 'silent' }),
      maxBodyBytes: 1000,
      onSamples: async () => {},
    })
    assert.deepEqual(await scraper.scrapeOnce(), [])
    assert.equal(counters.get('scrapes', { result: 'status' }), 1)
    assert.equal(counters.get('scrapes', { result: 'too_large' }), 1)
    assert.equal(counters.get('scrapes', { result: 'connect' }), 1)
  })
})
