/**
 * The evaluation harness: the scorer on hand-made alerts and faults (matching, precision/recall,
 * delays, false-alert rate), broken-detector controls whose scores must miss the targets, the
 * simulator's determinism and fault responses, and one scenario through the live path.
 */
import assert from 'node:assert/strict'
import { createHash } from 'node:crypto'
import { describe, test } from 'node:test'
import type { Detector } from '../../detectors/detector.ts'
import { runEval } from '../../eval/harness.ts'
import { reportMarkdown } from '../../eval/report.ts'
import { FAULT_TYPES, type FaultType } from '../../contract/faults.ts'
import {
  buildSuite,
  type GroundTruthFault,
  SCENARIO_EPOCH_US,
  type Scenario,
  simulate,
} from '../../eval/scenarios.ts'
import { type EvalAlert, pageScore, percentile, score, TARGETS } from '../../eval/score.ts'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { makeAlert } from '../../contract/synthetic.ts'

const S = (s: number) => SCENARIO_EPOCH_US + s * 1e6

function fault(over: Partial<GroundTruthFault> = {}): GroundTruthFault {
  return {
    scenario: 'sc',
    type: 'data_starvation',
    severity: 'medium',
    instance: 'sc/i0',
    startUs: S(100),
    endUs: S(190),
    ...over,
  }
}

let ids = 0
function alert(scenario: string, over: Partial<Alert>, webhookLatencyMs?: number): EvalAlert {
  return {
    scenario,
    alert: makeAlert({ id: `a${++ids}`, instance: 'sc/i0', type: 'accelerator_starved', ...over }),
    webhookLatencyMs,
  }
}

describe('scorer', () => {
  test('matching by type, instance and window; precision, recall, delays and the clean rate', () => {
    const faults = [
      fault(),
      fault({ type: 'error_burst', instance: 'sc/i1' }),
      fault({ type: 'memory_leak', scenario: 'sc2', instance: 'sc2/i0' }),
    ]
    const hit = alert('sc', { starts_at_us: S(102), updated_at_us: S(104) }, 200)
    const alerts: EvalAlert[] = [
      hit,
      // its resolved record: same alert, not a second one
      { ...hit, alert: { ...hit.alert, status: 'resolved', ends_at_us: S(200), updated_at_us: S(200) } },
      // a later, slower alert for the same fault: the earliest decides the delay
      alert('sc', { starts_at_us: S(110), updated_at_us: S(115) }, 10),
      // error burst detected 1.5 s after onset, offline (no webhook latency)
      alert('sc', {
        type: 'error_rate_spike',
        instance: 'sc/i1',
        starts_at_us: S(100),
        updated_at_us: S(101.5),
      }),
      // a symptom type during the starvation: not false, not a detection
      alert('sc', { type: 'slo_p99_breach', starts_at_us: S(101), updated_at_us: S(101) }),
      // false: wrong type for any fault of this instance
      alert('sc', { type: 'memory_leak', starts_at_us: S(120), updated_at_us: S(121) }),
      // false: right type, other instance
      alert('sc', { instance: 'sc/i1', starts_at_us: S(120), updated_at_us: S(121) }),
      // false: starts before the onset
      alert('sc', { type: 'error_rate_spike', instance: 'sc/i1', starts_at_us: S(90), updated_at_us: S(92) }),
      // false: starts after end + grace (30 s)
      alert('sc', { starts_at_us: S(221), updated_at_us: S(222) }),
      // clean scenario: false, and counted in the clean rate
      alert('clean', { instance: 'clean/i0', starts_at_us: S(10), updated_at_us: S(11) }),
    ]
    const sc = score({ faults, alerts, cleanInstanceHours: 20, cleanScenarios: new Set(['clean']) })
    assert.equal(sc.faults, 3)
    assert.equal(sc.detected, 2, 'memory leak of sc2 has no alert')
    assert.equal(sc.recall, 2 / 3)
    assert.equal(sc.alerts, 9)
    assert.equal(sc.truePositiveAlerts, 4)
    assert.equal(sc.precision, 4 / 9)
    assert.deepEqual(sc.falseAlertsByType, { memory_leak: 1, accelerator_starved: 3, error_rate_spike: 1 })
    const starv = sc.outcomes.find((o) => o.fault.type === 'data_starvation')!
    assert.equal(starv.alertId, hit.alert.id)
    assert.equal(starv.eventDelayS, 4)
    assert.equal(starv.delayS, 4.2, 'event-time delay + publish→webhook latency')
    const err = sc.outcomes.find((o) => o.fault.type === 'error_burst')!
    assert.equal(err.delayS, 1.5)
    assert.equal(sc.delayP50S, 1.5)
    assert.equal(sc.delayP95S, 4.2)
    assert.equal(sc.cleanAlerts, 1)
    assert.equal(sc.falseAlertsPerInstanceHour, 0.05)
    assert.deepEqual(sc.meets, {
      recall: false,
      precision: false,
      p95DelayS: true,
      falseAlertsPerInstanceHour: true,
    })
    assert.equal(sc.pass, false)
    const leak = sc.perType.find((p) => p.type === 'memory_leak')!
    assert.deepEqual(leak.missedBySeverity, { medium: 1 })
    assert.deepEqual(sc.perType.find((p) => p.type === 'data_starvation')!.matchedBy, {
      accelerator_starved: 1,
    })
  })

  test('a perfect run meets every target; one slow detection breaks p95', () => {
    const faults = Array.from({ length: 20 }, (_, i) => fault({ scenario: `s${i}`, instance: `s${i}/i0` }))
    const quick = faults.map((f) =>
      alert(
        f.scenario,
        { instance: f.instance, starts_at_us: f.startUs, updated_at_us: f.startUs + 2e6 },
        100,
      ),
    )
    const good = score({ faults, alerts: quick, cleanInstanceHours: 10, cleanScenarios: new Set() })
    assert.equal(good.pass, true)
    assert.equal(good.delayP95S, 2.1)
    const slow = [...quick]
    slow[0] = alert('s0', { instance: 's0/i0', starts_at_us: S(100), updated_at_us: S(160) })
    slow[1] = alert('s1', { instance: 's1/i0', starts_at_us: S(100), updated_at_us: S(160) })
    const bad = score({ faults, alerts: slow, cleanInstanceHours: 10, cleanScenarios: new Set() })
    assert.equal(bad.meets.p95DelayS, false, 'two of twenty at 60 s put p95 at 60 s')
    assert.equal(bad.meets.recall, true)
  })

  test('no alerts at all: precision 0 and recall 0 when there were faults', () => {
    const sc = score({ faults: [fault()], alerts: [], cleanInstanceHours: 1, cleanScenarios: new Set() })
    assert.equal(sc.precision, 0)
    assert.equal(sc.recall, 0)
    assert.equal(sc.delayP95S, null)
    assert.equal(sc.meets.p95DelayS, false)
  })

  test('percentile is nearest-rank', () => {
    assert.equal(percentile([5, 1, 3, 2, 4], 50), 3)
    assert.equal(percentile([1, 2, 3, 4, 5, 6, 7, 8, 9, 10], 95), 10)
    assert.equal(percentile([], 50), null)
  })
})

function digest(s: Scenario): string {
  const h = createHash('sha256')
  for (const step of simulate(s)) h.update(JSON.stringify(step))
  return h.digest('hex')
}

const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / Math.max(xs.length, 1)

/**
 * Field means of spans and samples before (t < 150 s) and during (200 ≤ t < 260 s) the fault. Spans
 * are placed by arrival time, or with `byCompletion` by when they completed (timestamp + total): what
 * the executor did during the fault, for faults whose backlog outlasts them.
 */
function beforeDuring(
  type: FaultType,
  severity: 'low' | 'medium' | 'high' = 'high',
  { byCompletion = false } = {},
) {
  const s = buildSuite({ filter: `${type}-${severity}-calm` })[0]!
  const before = { spans: [] as Span[], hw: [] as HwSample[] }
  const during = { spans: [] as Span[], hw: [] as HwSample[] }
  const window = (us: number) => {
    const t = (us - SCENARIO_EPOCH_US) / 1e6
    return t <= 150 ? before : t > 200 && t <= 260 ? during : undefined
  }
  for (const step of simulate(s)) {
    // spans by arrival time (they are emitted when they complete, later during a backlog)
    for (const x of step.spans)
      window(byCompletion ? x.timestamp_us + x.total_us : x.timestamp_us)?.spans.push(x)
    window(step.atUs)?.hw.push(...step.hw)
  }
  const span = (k: keyof Span, which: typeof before) =>
    mean(which.spans.map((x) => Number(x[k] ?? Number.NaN)).filter(Number.isFinite))
  const hw = (k: keyof HwSample, which: typeof before) => mean(which.hw.map((x) => Number(x[k])))
  return {
    span: (k: keyof Span) => [span(k, before), span(k, during)] as const,
    hw: (k: keyof HwSample) => [hw(k, before), hw(k, during)] as const,
    errorShare: (which: 'before' | 'during') => {
      const w = which === 'before' ? before : during
      return w.spans.filter((x) => x.status === 'server_error').length / w.spans.length
    },
  }
}

/** assert.ok with the compared values in the message */
function check(ok: boolean, what: string, ...values: readonly number[] | (readonly number[])[]): void {
  assert.ok(ok, `${what}: ${JSON.stringify(values)}`)
}

describe('pages (strict)', () => {
  test('a delivered symptom is an extra page, not a right one; pages per incident counts every page in the window', () => {
    const faults = [fault(), fault({ type: 'stage_stall', scenario: 'sc2', instance: 'sc2/i0' })]
    const pages: EvalAlert[] = [
      // the starvation: its page, and the latency drift that went out too (an extra page)
      alert('sc', { type: 'accelerator_starved', starts_at_us: S(102), updated_at_us: S(104) }),
      alert('sc', { type: 'latency_drift', starts_at_us: S(101), updated_at_us: S(103) }),
      // the stall: only its symptom paged (the right type never did)
      alert('sc2', {
        instance: 'sc2/i0',
        type: 'slo_p99_breach',
        starts_at_us: S(110),
        updated_at_us: S(113),
      }),
      // a clean run paged once; a busy host paged host_contention where a neighbour came (right) and
      // a stage regression (wrong)
      alert('clean', {
        instance: 'clean/i0',
        type: 'queue_growth',
        starts_at_us: S(50),
        updated_at_us: S(51),
      }),
      alert('busy', {
        instance: 'busy/i0',
        type: 'host_contention',
        starts_at_us: S(200),
        updated_at_us: S(203),
      }),
      alert('busy', {
        instance: 'busy/i0',
        type: 'stage_latency_regression',
        starts_at_us: S(400),
        updated_at_us: S(401),
      }),
    ]
    const neighbour = fault({
      type: 'noisy_neighbour',
      scenario: 'busy',
      instance: 'busy/i0',
      startUs: S(199),
      endUs: S(300),
    })
    const ps = pageScore({
      faults: [...faults, neighbour],
      pages,
      clean: { scenarios: new Set(['clean']), instanceHours: 10 },
      busyHost: { scenarios: new Set(['busy']), instanceHours: 2 },
    })
    assert.equal(ps.pages, 6)
    assert.equal(ps.rightPages, 2, 'the starvation page and the host_contention page')
    assert.equal(ps.precision, 2 / 6)
    assert.equal(ps.incidents, 3)
    assert.equal(ps.detected, 2)
    assert.equal(ps.pagesDuringIncidents, 4, 'starvation + drift, the SLO of the stall, host_contention')
    assert.equal(ps.pagesPerIncident, 4 / 3)
    assert.equal(ps.clean.falsePagesPerInstanceHour, 0.1)
    assert.equal(ps.busyHost.falsePagesPerInstanceHour, 0.5)
    assert.deepEqual(ps.wrongPagesByType, {
      latency_drift: 1,
      slo_p99_breach: 1,
      queue_growth: 1,
      stage_latency_regression: 1,
    })
    assert.equal(ps.meets.pagesPerIncident, false)
    assert.equal(ps.pass, false)
  })
})

describe('simulator', () => {
  test('is deterministic: same scenario, same bytes; another seed, other bytes', () => {
    const s = buildSuite({ filter: 'overlap-error_burst' })[0]!
    assert.equal(digest(s), digest(s))
    assert.notEqual(digest(s), digest({ ...s, seed: s.seed + 1 }))
  })

  test('the suite covers every fault type at three severities and two noise levels, plus clean load shapes', () => {
    const suite = buildSuite({ cleanInstanceHours: 8 })
    for (const type of FAULT_TYPES) {
      assert.equal(
        suite.filter((s) => s.faults.some((f) => f.type === type) && s.faults.length === 1).length,
        6,
      )
    }
    assert.ok(
      suite.some((s) => s.faults.length > 1),
      'overlapping faults',
    )
    const clean = suite.filter((s) => s.clean)
    assert.deepEqual(new Set(clean.map((s) => s.load.kind)), new Set(['steady', 'ramp', 'bursts', 'diurnal']))
    assert.equal(clean.reduce((n, s) => n + s.durationS * s.instances, 0) / 3600, 8)
  })

  test('each fault moves the fields the engine moves', () => {
    const starve = beforeDuring('data_starvation')
    const pre = starve.span('preprocess_us')
    check(pre[1] > 10 * pre[0], 'preprocess grows', pre)
    const fl = starve.hw('in_flight')
    check(fl[1] > 10 * fl[0] + 10, 'in flight piles up', fl)
    const busy = starve.hw('executor_busy')
    check(busy[1] < 0.8 * busy[0], 'executor idles', busy)
    check(starve.hw('queue_depth')[1] < 1, 'starved: nothing waits at the executor', starve.hw('queue_depth'))

    const drift = beforeDuring('input_drift')
    check(
      drift.span('input_mean')[1] - drift.span('input_mean')[0] > 0.1,
      'input mean shifts',
      drift.span('input_mean'),
    )
    const out = beforeDuring('output_drift')
    const conf = out.span('output_confidence')
    check(conf[0] - conf[1] > 0.15, 'confidence drops', conf)
    const leak = beforeDuring('memory_leak')
    check(leak.hw('rss_bytes')[1] - leak.hw('rss_bytes')[0] > 300e6, 'rss grows', leak.hw('rss_bytes'))
    // at 360 req/s a max batch of 1 leaves the executor ~70 % short: the backlog grows so fast that
    // most requests arriving during the fault are executed after it, in full batches again — so the
    // batch sizes are read by completion, when the executor ran them
    const batch = beforeDuring('batch_size_misconfig', 'high', { byCompletion: true })
    check(batch.span('batch_size')[0] > 1.5, 'batches before', batch.span('batch_size'))
    assert.equal(batch.span('batch_size')[1], 1)
    check(
      batch.hw('queue_depth')[1] > batch.hw('queue_depth')[0] + 5,
      'queue grows at batch size 1',
      batch.hw('queue_depth'),
    )
    const errors = beforeDuring('error_burst')
    check(errors.errorShare('before') < 0.01 && errors.errorShare('during') > 0.4, 'errors', [
      errors.errorShare('before'),
      errors.errorShare('during'),
    ])
    const ser = beforeDuring('slow_serialization')
    check(
      ser.span('serialize_us')[1] > ser.span('serialize_us')[0] + 25_000,
      'serialize',
      ser.span('serialize_us'),
    )
    const stall = beforeDuring('stage_stall')
    const stage = buildSuite({ filter: 'stage_stall-high-calm' })[0]!.faults[0]!.stage!
    const field = `${stage}_us` as keyof Span
    check(stall.span(field)[1] > stall.span(field)[0] + 50_000, `${stage} stalls`, stall.span(field))
  })
})

/** Fires on every hardware sample of every instance: the cry-wolf control. */
class AlwaysFires implements Detector {
  readonly type = 'accelerator_starved'
  private n = 0
  onHwSample(s: HwSample): Alert[] {
    return [
      makeAlert({
        id: `always-${s.instance}-${++this.n}`,
        type: this.type,
        instance: s.instance,
        dedup_key: `always/${s.instance}/${this.n}`,
        starts_at_us: s.timestamp_us,
        updated_at_us: s.timestamp_us,
      }),
    ]
  }
}

/** Never fires: the detector that misses every break. */
class NeverFires implements Detector {
  readonly type = 'accelerator_starved'
  onHwSample(): Alert[] {
    return []
  }
}

describe('harness', () => {
  const clean = () => ({ ...buildSuite({ filter: 'clean-bursts' })[0]!, durationS: 600, instances: 1 })
  const small = () => [...buildSuite({ filter: 'data_starvation-high-calm' }), clean()]

  test('broken-detector controls miss the targets', async () => {
    const silent = await runEval({ detectors: () => [new NeverFires()], live: 'none', scenarios: small() })
    assert.equal(silent.score.recall, 0)
    assert.equal(silent.score.pass, false)
    const wolf = await runEval({ detectors: () => [new AlwaysFires()], live: 'none', scenarios: small() })
    assert.equal(wolf.score.recall, 1, 'crying wolf finds every break…')
    assert.ok(wolf.score.precision < 0.2, `…at a precision near zero (${wolf.score.precision})`)
    assert.ok(wolf.score.falseAlertsPerInstanceHour > 1000)
    assert.equal(wolf.score.pass, false)
  })

  test('the starvation detector through the live path: detected, delivered, same alerts as offline', async () => {
    const report = await runEval({
      detectors: () => [new StarvationDetector()],
      live: 'faults',
      compareOffline: true,
      scenarios: [...buildSuite({ filter: 'data_starvation-medium-noisy' }), clean()],
    })
    const sc = report.score
    assert.equal(sc.recall, 1)
    assert.equal(sc.precision, 1)
    assert.equal(sc.cleanAlerts, 0)
    assert.deepEqual(report.webhook.liveOfflineMismatches, [])
    assert.equal(report.webhook.invalidSignatures, 0)
    const live = report.scenarios.filter((s) => s.path === 'live')
    assert.equal(live.length, 1)
    assert.equal(report.webhook.delivered, 2, 'firing and resolved reached the receiver, once each')
    for (const o of sc.outcomes) {
      assert.ok(o.webhookLatencyMs !== undefined, 'delay includes the measured webhook latency')
      assert.equal(o.delayS, o.eventDelayS! + o.webhookLatencyMs! / 1000)
      assert.ok(o.eventDelayS! >= 1 && o.eventDelayS! < 30)
    }
    const md = reportMarkdown(report, { cpu: 'test', cores: 1, node: process.version })
    assert.match(md, /\| recall \(all fault types\)\s+\| 1\.000/)
    assert.match(md, /data_starvation/)
    assert.equal(TARGETS.recall, 0.95)
  })
})
