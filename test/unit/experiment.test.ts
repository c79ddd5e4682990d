/**
 * The pure parts of `breakid experiment`: plan validation (errors name the key), the grid, the Pareto
 * front with its tolerance, the best cell under an SLO, pooled repetitions, and the report's table.
 */
import assert from 'node:assert/strict'
import { describe, test } from 'node:test'
import {
  bestCell,
  type CellResult,
  type CellRun,
  gridCells,
  loadPlan,
  markParetoFront,
  parsePlan,
  pooledRun,
  renderExperiment,
  summarizeCell,
} from '../../compare/experiment.ts'

const PLAN = {
  model: 'cnn:w=8',
  settings: { batching: ['static', 'adaptive'], maxBatchSize: [8, 16] },
  load: { rates: [60, 140] },
  durationS: 10,
  warmupS: 2,
  repetitions: 2,
  slo: { p99Ms: 100 },
  pricing: { instanceTypes: { vm: { pricePerHour: 0.36, kind: 'cpu' } }, defaultInstanceType: 'vm' },
}

describe('plan', () => {
  test('valid: defaults filled in', () => {
    const p = parsePlan(PLAN)
    assert.deepEqual(p.load, { mode: 'rate', levels: [60, 140] })
    assert.equal(p.slo!.maxErrorRate, 0.01)
    assert.equal(p.distinctInputs, 64)
    assert.equal(parsePlan({ model: 'mlp', load: { concurrency: [1, 4] } }).load.mode, 'concurrency')
  })
  test('mistakes are named', () => {
    const bad = (over: Record<string, unknown>, message: RegExp) =>
      assert.throws(() => parsePlan({ ...PLAN, ...over }), message)
    bad(
      { settings: { batching: ['fast'] } },
      /settings\.batching\[0\]: "fast" is not one of none, static, adaptive/,
    )
    bad({ settings: { precision: ['int4'] } }, /settings\.precision\[0\]/)
    bad({ settings: { threads: [1] } }, /unknown setting "threads"/)
    bad({ settings: { maxBatchSize: [0] } }, /settings\.maxBatchSize\[0\]: expected an integer from 1/)
    bad({ load: { rates: [1], concurrency: [1] } }, /exactly one of "rates"/)
    bad({ load: { concurrency: [1.5] } }, /load\.concurrency\[0\]/)
    bad({ repetitions: 0 }, /repetitions/)
    bad({ model: 'mlp:p=int8' }, /settings\.precision, not in the model/)
    bad({ extra: true }, /unknown key "extra"/)
    bad({ pricing: { instanceTypes: {} } }, /plan\.pricing\.instanceTypes/)
  })
})

test('the grid: every settings combination × every load level, in order', () => {
  const cells = gridCells(parsePlan(PLAN))
  assert.equal(cells.length, 8)
  assert.deepEqual(
    cells.map((c) => [c.id, c.settings.batching, c.settings.maxBatchSize, c.load.level]),
    [
      ['c01', 'static', 8, 60],
      ['c02', 'static', 8, 140],
      ['c03', 'static', 16, 60],
      ['c04', 'static', 16, 140],
      ['c05', 'adaptive', 8, 60],
      ['c06', 'adaptive', 8, 140],
      ['c07', 'adaptive', 16, 60],
      ['c08', 'adaptive', 16, 140],
    ],
  )
  assert.equal(cells[0]!.settings.precision, 'fp32', 'unset settings take their defaults')
})

function result(
  id: string,
  thr: number,
  p99: number,
  cost: number | null,
  meetsSlo: boolean | null = true,
): CellResult {
  const cell = gridCells(parsePlan(PLAN))[0]!
  return {
    cell: { ...cell, id },
    runs: [],
    throughputPerSec: thr,
    p50Ms: 1,
    p99Ms: p99,
    p99RangeMs: [p99, p99],
    errorRate: 0,
    costPer1k: cost,
    onParetoFront: false,
    meetsSlo,
  }
}

describe('ranking', () => {
  test('Pareto front: dominated cells are off it; near-equal throughput is a tie, not a win', () => {
    const cells = [
      result('a', 60, 20, 0.002),
      result('b', 59.99, 40, 0.002), // as fast as a, slower p99: dominated by a
      result('c', 140, 80, 0.0009), // more throughput, cheaper, worse p99: on the front
      result('d', 139, 300, 0.0009), // dominated by c
      result('e', 60.01, 19.9, 0.002), // ties a within the tolerance on everything: both stay
    ]
    markParetoFront(cells)
    assert.deepEqual(
      cells.filter((c) => c.onParetoFront).map((c) => c.cell.id),
      ['a', 'c', 'e'],
    )
  })
  test('best under the SLO: most throughput, then least cost, then lowest p99; none when none meets it', () => {
    const cells = [
      result('slow-ok', 60, 20, 0.002),
      result('fast-misses', 140, 300, 0.0009, false),
      result('fast-ok', 139, 90, 0.0009),
      result('fast-ok-lower-p99', 139.5, 70, 0.00091),
    ]
    assert.equal(bestCell(cells)!.cell.id, 'fast-ok-lower-p99')
    assert.equal(bestCell([result('x', 1, 1, 1, false)]), null)
  })
})

test('a cell over repetitions: medians, pooled cost per 1,000, SLO', () => {
  const run = (p99: number, ok: number, cost: number): CellRun => ({
    runId: 'r',
    throughputPerSec: ok / 10,
    p50Ms: 1,
    p99Ms: p99,
    sent: 1000,
    ok,
    cost,
    requests: [],
    host: [],
  })
  const cell = gridCells(parsePlan(PLAN))[0]!
  const c = summarizeCell(cell, [run(80, 1000, 0.001), run(120, 990, 0.001), run(90, 1000, 0.001)], {
    p99Ms: 100,
    maxErrorRate: 0.01,
  })
  assert.equal(c.p99Ms, 90)
  assert.deepEqual(c.p99RangeMs, [80, 120])
  assert.ok(Math.abs(c.costPer1k! - (0.003 / 2990) * 1000) < 1e-12)
  assert.ok(Math.abs(c.errorRate - 10 / 3000) < 1e-12)
  assert.equal(c.meetsSlo, true)
})

test('pooled repetitions follow each other in time', () => {
  const req = (t: number) => ({
    model: 'm',
    status: 'ok',
    timestamp_us: t,
    cache_hit: false,
    batch_size: 1,
    durations_us: {
      deserialize: 1,
      preprocess: 1,
      queue_wait: 1,
      compute: 1,
      postprocess: 1,
      serialize: 1,
      total: 6,
    },
  })
  const run = (start: number): CellRun => ({
    runId: 'r',
    throughputPerSec: 1,
    p50Ms: 1,
    p99Ms: 1,
    sent: 2,
    ok: 2,
    cost: null,
    requests: [req(start), req(start + 5e6)],
    host: [{ timestamp_us: start, process_cpu: 1, host_cpu: 1, host_cpus: 2 }],
  })
  const pooled = pooledRun([run(1e12), run(5e12)])
  assert.deepEqual(
    pooled.requests.map((r) => r.timestamp_us - 1e12),
    [0, 5e6, 6e6, 11e6],
  )
  assert.deepEqual(
    pooled.host.map((h) => h.timestamp_us - 1e12),
    [0, 6e6],
  )
})

test('the report: one row per cell with cost per 1,000, the front, the SLO and the best', () => {
  const plan = parsePlan(PLAN)
  const cells = [result('c01', 60, 20, 0.002), result('c02', 140, 80, 0.0009)]
  markParetoFront(cells)
  const text = renderExperiment(
    { experiment: 'exp-1', plan, cells, best: 'c02', reference: 'c02', precision: [], currency: 'USD' },
    'table',
  )
  assert.match(text, /best meeting the SLO \(p99 ≤ 100 ms, errors ≤ 1\.0%\): c02/)
  assert.match(
    text,
    /cell\s+settings\s+rate\/s\s+ok\/s\s+p50 ms\s+p99 ms \(reps\)\s+errors\s+per 1k USD\s+Pareto/,
  )
  assert.match(text, /c02 .* 9\.00e-4|c02 .*0\.000900/)
  const md = renderExperiment(
    { experiment: 'exp-1', plan, cells, best: 'c02', reference: 'c02', precision: [], currency: 'USD' },
    'markdown',
  )
  assert.match(md, /^### breakid experiment exp-1/)
  assert.match(md, /\n\| cell \| settings \|/)
})

test('the plan in the docs (used by docs/ci-example.yml) is valid: 2 batching settings × 2 rates, priced', () => {
  const plan = loadPlan(new URL('../../docs/experiment-plan.json', import.meta.url).pathname)
  const cells = gridCells(plan)
  assert.equal(cells.length, 4)
  assert.deepEqual([...new Set(cells.map((c) => c.settings.batching))], ['static', 'adaptive'])
  assert.equal(plan.load.levels.length, 2)
  assert.ok(plan.pricing && plan.slo)
})
