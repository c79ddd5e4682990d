/**
 * Cost: the pricing section (validated, with errors that name the key), and the named query run-cost
 * over spans, hardware samples and alerts stored in chDB, with numbers worked out by hand: billed
 * time, cost per 1,000 inferences, idle and starved executor cost, and the compute the cache saved.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import { costTotals, parsePricing, pricesParam, readCost } from '../../compare/cost.ts'
import { parseSelection } from '../../compare/source.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { alertsTable, hwSamplesTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { runNamedQuery } from '../../queries/runner.ts'
import { loadConfig } from '../../app/config.ts'

const PRICING = {
  currency: 'USD',
  instanceTypes: {
    'gpu.small': { pricePerHour: 3.6, kind: 'accelerator' },
    'cpu.small': { pricePerHour: 0.36, kind: 'cpu' },
  },
  instances: { 'gpu-0': 'gpu.small' },
  defaultInstanceType: 'cpu.small',
}

describe('pricing', () => {
  test('a valid section, from the config file or BREAKID_PRICING', () => {
    const p = parsePricing(PRICING)
    assert.equal(p.instanceTypes['gpu.small']!.kind, 'accelerator')
    assert.ok(Object.isFrozen(p))
    assert.deepEqual(loadConfig({}, { BREAKID_PRICING: JSON.stringify(PRICING) }).pricing, p)
    assert.equal(loadConfig({}, {}).pricing, undefined)
    assert.deepEqual(JSON.parse(pricesParam(p)), {
      'gpu-0': { type: 'gpu.small', kind: 'accelerator', price: 3.6 },
      '*': { type: 'cpu.small', kind: 'cpu', price: 0.36 },
    })
  })
  test('mistakes are named', () => {
    const bad = (over: Record<string, unknown>, message: RegExp) =>
      assert.throws(() => parsePricing({ ...PRICING, ...over }), message)
    bad({ instanceTypes: {} }, /instanceTypes: expected at least one/)
    bad({ instanceTypes: { x: { pricePerHour: -1, kind: 'cpu' } } }, /instanceTypes\.x\.pricePerHour/)
    bad(
      { instanceTypes: { x: { pricePerHour: 1, kind: 'tpu' } } },
      /instanceTypes\.x\.kind: expected cpu or accelerator/,
    )
    bad({ instances: { a: 'nope' } }, /instances\.a: "nope" is not one of the instance types/)
    bad({ defaultInstanceType: 'nope' }, /defaultInstanceType/)
    bad({ extra: 1 }, /unknown key "extra"/)
    assert.throws(() => loadConfig({}, { BREAKID_PRICING: '{' }), /pricing: not JSON/)
  })
})

describe('run-cost', () => {
  let dir = ''
  let ch: ClickHouse
  const T0 = 1_767_225_600_000_000
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakid-cost-'))
    ch = openClickHouse({ dataDir: dir, database: 'cost' })
    await migrate(ch)
    // gpu-0, run r1: 10 samples of 1 s, busy 0.25; starved (an alert) from sample 2 to sample 6
    const samples = Array.from({ length: 10 }, (_, i) =>
      makeHwSample(i, {
        instance: 'gpu-0',
        host: 'gpu-host',
        timestamp_us: T0 + i * 1e6,
        interval_ms: 1000,
        executor_busy: 0.25,
        run_id: 'r1',
      }),
    )
    // 100 ok requests: 20 cache hits, 80 misses of 2 000 µs per batch of 2 (1 000 µs per request)
    const spans = Array.from({ length: 100 }, (_, i) =>
      makeSpan(i, {
        instance: 'gpu-0',
        host: 'gpu-host',
        timestamp_us: T0 + i * 90_000,
        cache_hit: i < 20,
        compute_us: i < 20 ? 0 : 2000,
        batch_size: i < 20 ? 0 : 2,
        run_id: 'r1',
      }),
    )
    // another run on a CPU instance without hardware samples: billed by its requests' time span
    const other = Array.from({ length: 11 }, (_, i) =>
      makeSpan(1000 + i, {
        instance: 'cpu-9',
        host: 'cpu-host',
        timestamp_us: T0 + i * 1e6,
        run_id: 'r2',
        cache_hit: false,
      }),
    )
    await insertRecords(ch, hwSamplesTable, samples)
    await insertRecords(ch, spansTable, [...spans, ...other])
    await insertRecords(ch, alertsTable, [
      makeAlert({
        id: 'starved-1',
        type: 'accelerator_starved',
        instance: 'gpu-0',
        starts_at_us: T0 + 2e6,
        ends_at_us: T0 + 6e6,
        updated_at_us: T0 + 6e6,
        status: 'resolved',
      }),
    ])
  })
  after(async () => {
    await ch.close()
    await rm(dir, { recursive: true, force: true })
  })

  const query = (name: string, params: Record<string, string>) => runNamedQuery(ch, name, params)
  const near = (a: number, b: number, what: string) =>
    assert.ok(Math.abs(a - b) < 1e-9, `${what}: ${a} vs ${b}`)

  test('an accelerator instance: billed seconds, cost per 1k, idle, starved and cache savings', async () => {
    const [row, ...rest] = await readCost(query, parseSelection('run:r1'), parsePricing(PRICING))
    assert.equal(rest.length, 0)
    assert.equal(row!.instance, 'gpu-0')
    assert.equal(row!.instance_type, 'gpu.small')
    assert.equal(row!.kind, 'accelerator')
    assert.equal(row!.ok, 100)
    near(row!.billed_s, 10, 'billed: 10 samples × 1 s')
    near(row!.cost, 0.01, 'cost: 10 s at 3.6/h = 0.001/s')
    near(row!.cost_per_1k!, 0.1, 'per 1 000 ok inferences')
    near(row!.idle_s, 7.5, 'idle: 10 × 0.75 s')
    near(row!.idle_cost, 0.0075, 'idle cost')
    near(row!.starved_s, 3, 'starved: samples at 2, 3, 4, 5 s inside the alert (end exclusive) × 0.75 s')
    near(row!.starved_cost, 0.003, 'starved cost')
    assert.equal(row!.cache_hits, 20)
    near(row!.compute_avoided_s, 0.02, 'avoided: 20 hits × 1 000 µs per request')
    near(row!.cache_saved_cost, 0.00002, 'saved: 0.02 s at 0.001/s')
    const totals = costTotals([row!])
    near(totals.costPer1k, 0.1, 'totals')
  })

  test('an instance without samples of the run is billed by its requests, at the default type', async () => {
    const [row] = await readCost(query, parseSelection('run:r2'), parsePricing(PRICING))
    assert.equal(row!.instance, 'cpu-9')
    assert.equal(row!.instance_type, 'cpu.small')
    near(row!.billed_s, 10, 'first to last request')
    near(row!.cost, 0.001, '10 s at 0.36/h')
    assert.equal(row!.idle_s, 0)
  })

  test('a time range covers both runs', async () => {
    const rows = await readCost(
      query,
      parseSelection(`${T0 / 1e6 - 1}..${T0 / 1e6 + 3600}`),
      parsePricing(PRICING),
    )
    assert.deepEqual(
      rows.map((r) => r.instance),
      ['cpu-9', 'gpu-0'],
    )
  })
})
