/**
 * The verdicts of compare/compare.ts on synthetic runs whose truth is known: same distribution → no
 * change; a slower preprocess → a regression naming it; a tiny stage that doubles → no change (the
 * absolute floor); a busier host → inconclusive, but a stage whose share of the request grew still
 * regresses; warm-up dropped; error rates; and the rendered table, Markdown and JSON.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  COMPARED_STAGES,
  type ComparedStage,
  compareRuns,
  type HostSample,
  type RequestRecord,
  type StageRow,
} from '../../compare/compare.ts'
import { renderComparison } from '../../compare/report.ts'
import { parseSelection } from '../../compare/source.ts'
import { seededRandom } from '../../compare/stats.ts'

const T0 = 1_767_225_600_000_000

interface RunShape {
  seed: number
  /** ms of each stage at its median; lognormal noise around it */
  stagesMs?: Partial<Record<ComparedStage, number>>
  /** a stage's multiplier over time: (second of the run) → factor */
  slow?: { stage: ComparedStage; factor: (second: number) => number }
  /** every stage × this (a busier host) */
  hostFactor?: number
  seconds?: number
  rate?: number
  errorRate?: number
  model?: string
}

const BASE_MS: Record<Exclude<ComparedStage, 'total'>, number> = {
  deserialize: 0.7,
  preprocess: 0.04,
  queue_wait: 1.5,
  compute: 3,
  postprocess: 0.03,
  serialize: 0.25,
}

/** A run of `rate` req/s for `seconds`, with per-second "weather" (each second a bit faster or slower). */
function run(shape: RunShape): RequestRecord[] {
  const random = seededRandom(shape.seed)
  const normal = () => Math.sqrt(-2 * Math.log(1 - random())) * Math.cos(2 * Math.PI * random())
  const seconds = shape.seconds ?? 40
  const rate = shape.rate ?? 120
  const out: RequestRecord[] = []
  for (let s = 0; s < seconds; s++) {
    const weather = Math.exp(0.1 * normal()) * (shape.hostFactor ?? 1)
    for (let k = 0; k < rate; k++) {
      const durations = {} as Record<ComparedStage, number>
      let total = 0
      for (const stage of Object.keys(BASE_MS) as (keyof typeof BASE_MS)[]) {
        let ms = (shape.stagesMs?.[stage] ?? BASE_MS[stage]) * weather * Math.exp(0.3 * normal())
        if (shape.slow?.stage === stage) ms *= shape.slow.factor(s)
        durations[stage] = Math.round(ms * 1000)
        total += durations[stage]
      }
      durations.total = total + 50
      out.push({
        model: shape.model ?? 'resnet50',
        status: random() < (shape.errorRate ?? 0) ? 'server_error' : 'ok',
        timestamp_us: T0 + s * 1e6 + Math.round((k * 1e6) / rate),
        cache_hit: false,
        batch_size: 1,
        durations_us: durations,
      })
    }
  }
  return out
}

/** a host of 4 CPUs where others take `foreign` and the engine `engine` */
const host = (foreign: number, engine = 0.6, seconds = 40): HostSample[] =>
  Array.from({ length: seconds }, (_, s) => ({
    timestamp_us: T0 + s * 1e6,
    process_cpu: engine,
    host_cpu: engine + foreign,
    host_cpus: 4,
  }))

const stageRows = (rows: ReturnType<typeof compareRuns>['rows']) =>
  rows.filter((r): r is StageRow => r.kind === 'stage')
const verdicts = (c: ReturnType<typeof compareRuns>) =>
  Object.fromEntries(stageRows(c.rows).map((r) => [r.stage, r.verdict]))

describe('compare', () => {
  test('two runs of the same configuration: no change on every stage, throughput and errors', () => {
    const c = compareRuns({ requests: run({ seed: 1 }) }, { requests: run({ seed: 2 }) })
    assert.deepEqual(
      c.rows.map((r) => r.verdict),
      Array(c.rows.length).fill('no change'),
    )
    assert.equal(stageRows(c.rows).length, COMPARED_STAGES.length)
    assert.equal(c.regressions.length, 0)
  })

  test('a preprocessing slowdown over most of the run fails, naming preprocess', () => {
    const starved = run({
      seed: 2,
      slow: { stage: 'preprocess', factor: (s) => (s >= 4 && s < 36 ? 2000 : 1) },
    })
    const c = compareRuns({ requests: run({ seed: 1 }) }, { requests: starved })
    const v = verdicts(c)
    assert.equal(v.preprocess, 'regression')
    assert.equal(v.total, 'regression')
    for (const s of ['deserialize', 'queue_wait', 'compute', 'postprocess', 'serialize']) {
      assert.equal(v[s], 'no change', s)
    }
    const row = stageRows(c.rows).find((r) => r.stage === 'preprocess')!
    assert.ok(row.reasons.some((x) => x.startsWith('p50 ×')))
    assert.ok(row.mannWhitney.p < 1e-10 && row.mannWhitney.cliffsDelta > 0.5)
  })

  test('a tiny stage that doubles is not a regression on relative change alone (absolute floor)', () => {
    const slower = run({ seed: 2, stagesMs: { postprocess: 0.06 } })
    const c = compareRuns({ requests: run({ seed: 1 }) }, { requests: slower })
    const row = stageRows(c.rows).find((r) => r.stage === 'postprocess')!
    assert.ok(row.stats.p50.ratio.lo > 1.5, 'it did double')
    assert.equal(row.verdict, 'no change')
    // with the floor lowered the same data is a regression: the floor is what held it back
    const strict = compareRuns({ requests: run({ seed: 1 }) }, { requests: slower }, { minEffectMs: 0.01 })
    assert.equal(verdicts(strict).postprocess, 'regression')
  })

  test('a 10 % slowdown stays under a 25 % threshold; a 2× slower compute does not', () => {
    const small = compareRuns(
      { requests: run({ seed: 1 }) },
      { requests: run({ seed: 2, stagesMs: { compute: 3.3 } }) },
    )
    assert.equal(verdicts(small).compute, 'no change')
    const big = compareRuns(
      { requests: run({ seed: 1 }) },
      { requests: run({ seed: 2, stagesMs: { compute: 6 } }) },
    )
    assert.equal(verdicts(big).compute, 'regression')
    const faster = compareRuns(
      { requests: run({ seed: 1, stagesMs: { compute: 6 } }) },
      { requests: run({ seed: 2 }) },
    )
    assert.equal(verdicts(faster).compute, 'improvement')
  })

  test('a busier host: every stage slower is inconclusive, not a regression; without host samples it is one', () => {
    const base = run({ seed: 1 })
    const busy = run({ seed: 2, hostFactor: 2 })
    const judged = compareRuns({ requests: base, host: host(0.5) }, { requests: busy, host: host(1.4) })
    assert.equal(judged.contention.busier, 'candidate')
    assert.equal(judged.regressions.length, 0)
    assert.equal(verdicts(judged).compute, 'inconclusive')
    assert.equal(verdicts(judged).total, 'inconclusive')
    // control: the same requests without the hardware samples are regressions
    const blind = compareRuns({ requests: base }, { requests: busy })
    assert.equal(blind.contention.busier, 'neither')
    assert.equal(verdicts(blind).compute, 'regression')
  })

  test('both runs squeezed for CPU by others: faster or slower is inconclusive either way', () => {
    // 4 CPUs, others take 3.3, the engine uses 0.6 of the 0.7 left: short of CPU in both runs
    const squeezed = host(3.3, 0.6)
    const c = compareRuns(
      { requests: run({ seed: 1, hostFactor: 1.5 }), host: squeezed },
      { requests: run({ seed: 2 }), host: squeezed },
    )
    assert.equal(c.contention.busier, 'both')
    assert.ok(c.contention.baseline!.squeezed && c.contention.candidate!.squeezed)
    assert.equal(
      verdicts(c).compute,
      'inconclusive',
      'a faster candidate on a squeezed host is not an improvement',
    )
    const reverse = compareRuns(
      { requests: run({ seed: 1 }), host: squeezed },
      { requests: run({ seed: 2, hostFactor: 1.5 }), host: squeezed },
    )
    assert.equal(verdicts(reverse).compute, 'inconclusive')
    assert.equal(reverse.regressions.length, 0)
    // control: an engine with room to spare on the same busy host is judged
    const roomy = host(3.3, 0.2)
    const judged = compareRuns(
      { requests: run({ seed: 1 }), host: roomy },
      { requests: run({ seed: 2, hostFactor: 1.5 }), host: roomy },
    )
    assert.equal(judged.contention.busier, 'neither')
    assert.equal(verdicts(judged).compute, 'regression')
  })

  test('a busier host does not hide a stage that took a larger share of the request', () => {
    const starvedAndBusy = run({
      seed: 2,
      hostFactor: 2,
      slow: { stage: 'preprocess', factor: (s) => (s >= 4 && s < 36 ? 2000 : 1) },
    })
    const c = compareRuns(
      { requests: run({ seed: 1 }), host: host(0.5) },
      { requests: starvedAndBusy, host: host(1.4) },
    )
    assert.equal(verdicts(c).preprocess, 'regression')
    assert.equal(verdicts(c).compute, 'inconclusive')
  })

  test('the warm-up is dropped: a slow first 12 s is not compared with a 12 s warm-up', () => {
    const coldStart = run({ seed: 2, slow: { stage: 'compute', factor: (s) => (s < 12 ? 20 : 1) } })
    const opts = { gate: ['mean' as const] }
    const dropped = compareRuns(
      { requests: run({ seed: 1 }) },
      { requests: coldStart },
      { ...opts, warmupMs: 12_000 },
    )
    assert.equal(verdicts(dropped).compute, 'no change')
    // control: kept, the same slow start is a regression
    const kept = compareRuns(
      { requests: run({ seed: 1 }) },
      { requests: coldStart },
      { ...opts, warmupMs: 0 },
    )
    assert.equal(verdicts(kept).compute, 'regression')
  })

  test('error rates: +4 points is a regression, +0.2 is not', () => {
    const errorRow = (rate: number) =>
      compareRuns({ requests: run({ seed: 1 }) }, { requests: run({ seed: 2, errorRate: rate }) }).rows.find(
        (r) => r.kind === 'error_rate',
      )!
    assert.equal(errorRow(0.04).verdict, 'regression')
    assert.equal(errorRow(0.002).verdict, 'no change')
  })

  test('models in one selection only are listed, not compared', () => {
    const c = compareRuns(
      { requests: [...run({ seed: 1 }), ...run({ seed: 3, model: 'mlp', seconds: 10 })] },
      { requests: run({ seed: 2 }) },
    )
    assert.deepEqual(c.onlyInBaseline, ['mlp'])
    assert.ok(c.rows.every((r) => r.model === 'resnet50'))
  })

  test('bad options are refused with the option named', () => {
    assert.throws(() => compareRuns({ requests: [] }, { requests: [] }, { confidence: 1.5 }), /confidence/)
    assert.throws(() => compareRuns({ requests: [] }, { requests: [] }, { gate: [] }), /gate/)
  })
})

describe('report', () => {
  const starved = run({
    seed: 2,
    slow: { stage: 'preprocess', factor: (s) => (s >= 4 && s < 36 ? 2000 : 1) },
  })
  const comparison = compareRuns({ requests: run({ seed: 1 }) }, { requests: starved }, { iterations: 200 })
  const input = { baseline: 'run:a', candidate: 'run:b', comparison }

  test('table: the headline names the regressed stages, one line per stage', () => {
    const text = renderComparison(input, 'table')
    assert.match(text.split('\n')[0]!, /^REGRESSION in resnet50\/preprocess, resnet50\/total$/)
    assert.match(text, /resnet50\s+preprocess\s+\d+\/\d+\s+0\.04→\d+/)
    assert.match(text, /resnet50\/preprocess regression: p50 ×/)
  })
  test('markdown: a pull-request comment with a table', () => {
    const md = renderComparison(input, 'markdown')
    assert.match(md, /^### ❌ breakid compare: REGRESSION in resnet50\/preprocess/)
    assert.match(md, /\n\| model \| stage \| n base\/cand \| p50 ms \|/)
    assert.match(md, /\n\| --- \|/)
    assert.match(md, /\n- resnet50\/preprocess regression: /)
  })
  test('json: everything, with the overall verdict', () => {
    const json = JSON.parse(renderComparison(input, 'json'))
    assert.equal(json.verdict, 'regression')
    assert.equal(json.rows.find((r: StageRow) => r.stage === 'preprocess').verdict, 'regression')
    assert.equal(typeof json.rows[0].mannWhitney.p, 'number')
  })
})

describe('selections', () => {
  test('run:<id> and FROM..TO', () => {
    assert.deepEqual(parseSelection('run:main-42').params, { run: 'main-42', from: '0', to: 'now+1d' })
    assert.deepEqual(parseSelection('-2h..-1h').params, { run: '', from: '-2h', to: '-1h' })
    assert.deepEqual(parseSelection('2026-11-27T10:00Z..2026-11-27T10:05Z').params.to, '2026-11-27T10:05Z')
  })
  test('anything else is a clear error', () => {
    assert.throws(() => parseSelection('main-42'), /neither run:<id> nor FROM..TO/)
    assert.throws(() => parseSelection('run:a b'), /not a run id/)
    assert.throws(() => parseSelection('-2h..'), /neither/)
  })
})
