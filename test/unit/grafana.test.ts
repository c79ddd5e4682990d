/**
 * The Grafana dashboards (deploy/grafana/): every panel's, template variable's and annotation's SQL,
 * with Grafana's ClickHouse macros expanded exactly as the plugin does (grafana/clickhouse-datasource,
 * pkg/macros/macros.go) and the template variables filled from their own queries, runs read-only
 * against a chDB store filled with synthetic records through store/'s writer, and returns what its
 * panel draws. Nothing here knows a panel by heart beyond what the contract says (the six stages):
 * a storage change that breaks a panel's SQL fails this file.
 */
import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, describe, test } from 'node:test'
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { makeAlert, makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import {
  buildDashboards,
  DASHBOARD_DIR,
  DATASOURCE,
  type Dashboard,
  type Panel,
  renderDashboard,
  type Target,
} from '../../deploy/grafana/dashboards.ts'
import { readOnlyPool } from '../../queries/readonly.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { alertsTable, hwSamplesTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'

const T0_MS = Date.UTC(2026, 0, 1) // 2026-01-01T00:00:00Z
const RANGE = { fromMs: T0_MS, toMs: T0_MS + 10 * 60_000 }
/** an hour before any record: every panel must still be valid SQL when there is nothing to show */
const EMPTY_RANGE = { fromMs: T0_MS - 2 * 3_600_000, toMs: T0_MS - 3_600_000 }
const INTERVAL_MS = 10_000

interface Range {
  fromMs: number
  toMs: number
}

/**
 * The plugin's macros (pkg/macros/macros.go of grafana/clickhouse-datasource): times are the range's
 * ends in Unix seconds (or milliseconds for the _ms forms), the interval Grafana's in whole seconds
 * (at least 1). A macro it does not have is an error, as it is in Grafana.
 */
export function expandMacros(sql: string, range: Range, intervalMs: number): string {
  const s = (ms: number) => `toDateTime(${Math.floor(ms / 1000)})`
  const ms = (t: number) => `fromUnixTimestamp64Milli(${Math.floor(t)})`
  const date = (t: number) => `toDate('${new Date(t).toISOString().slice(0, 10)}')`
  const seconds = Math.max(Math.floor(intervalMs / 1000), 1)
  return sql.replace(/\$__(\w+)(?:\(([^()]*)\))?/g, (whole, name: string, args: string | undefined) => {
    const argv = args === undefined ? [] : args.split(',').map((a) => a.trim())
    const one = () => {
      if (argv.length !== 1) throw new Error(`${whole}: expected 1 argument, received ${argv.length}`)
      return argv[0]!
    }
    switch (name) {
      case 'fromTime':
        return s(range.fromMs)
      case 'toTime':
        return s(range.toMs)
      case 'fromTime_ms':
        return ms(range.fromMs)
      case 'toTime_ms':
        return ms(range.toMs)
      case 'timeFilter':
        return `${one()} >= ${s(range.fromMs)} AND ${one()} <= ${s(range.toMs)}`
      case 'timeFilter_ms':
        return `${one()} >= ${ms(range.fromMs)} AND ${one()} <= ${ms(range.toMs)}`
      case 'dateFilter':
        return `${one()} >= ${date(range.fromMs)} AND ${one()} <= ${date(range.toMs)}`
      case 'timeInterval':
        return `toStartOfInterval(toDateTime(${one()}), INTERVAL ${seconds} second)`
      case 'timeInterval_ms':
        return `toStartOfInterval(toDateTime64(${one()}, 3), INTERVAL ${Math.max(Math.floor(intervalMs), 1)} millisecond)`
      case 'interval_s':
        return String(seconds)
      default:
        throw new Error(`unknown macro ${whole}`)
    }
  })
}

/** `${name:singlequote}` → 'a','b' (the one variable form the dashboards use; any other is an error) */
function expandVariables(sql: string, values: Map<string, string[]>): string {
  const out = sql.replace(/\$\{(\w+):singlequote\}/g, (whole, name: string) => {
    const v = values.get(name)
    if (!v) throw new Error(`${whole}: no such template variable`)
    return v.map((x) => `'${x.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`).join(',')
  })
  const left = /\$\w+|\$\{[^}]*\}/.exec(out)
  if (left) throw new Error(`unexpanded ${left[0]} in: ${out}`)
  return out
}

interface Result {
  names: string[]
  types: string[]
  rows: unknown[][]
}

let dir = ''
let ch: ClickHouse

/** read-only and limited, on the sessions `breakid sql` uses (queries/readonly.ts) */
async function query(sql: string): Promise<Result> {
  return readOnlyPool(ch).withSlot(undefined, async (slot) => {
    const rs = await slot.run((abort_signal) =>
      slot.target.client.query({
        query: `${slot.tag}\n${sql}`,
        format: 'JSONCompactEachRowWithNamesAndTypes',
        clickhouse_settings: slot.target.settings,
        abort_signal,
      }),
    )
    const [names, types, ...rows] = await rs.json<unknown[]>()
    return { names: names as string[], types: types as string[], rows }
  })
}

/** runs a dashboard's variables, then each of its queries; the SQL goes with a failure */
async function runDashboard(d: Dashboard, range: Range) {
  const values = new Map<string, string[]>()
  for (const v of d.templating.list as { name: string; query: string }[]) {
    const r = await query(expandMacros(v.query, range, INTERVAL_MS))
    values.set(
      v.name,
      r.rows.map((row) => String(row[0])),
    )
  }
  const run = async (t: Target, where: string) => {
    const sql = expandVariables(expandMacros(t.rawSql, range, INTERVAL_MS), values)
    try {
      return await query(sql)
    } catch (err) {
      throw new Error(`${d.uid} ${where}: ${(err as Error).message}\n${sql}`)
    }
  }
  const panels: { panel: Panel; result: Result }[] = []
  for (const panel of d.panels) {
    for (const t of panel.targets ?? [])
      panels.push({ panel, result: await run(t, `panel "${panel.title}"`) })
  }
  const annotations: Result[] = []
  for (const a of d.annotations.list as { target?: Target; name: string }[]) {
    if (a.target) annotations.push(await run(a.target, `annotation "${a.name}"`))
  }
  return { values, panels, annotations }
}

const INSTANCES = ['engine-0', 'engine-1']
const MODELS = ['mlp', 'cnn']

function spans(): Span[] {
  const out: Span[] = []
  let i = 0
  for (let t = 0; t < 600_000; t += 500) {
    for (const instance of INSTANCES) {
      for (const model of MODELS) {
        i++
        const slow = model === 'mlp' && t > 300_000 // preprocessing starves half way through
        const stages = {
          deserialize_us: 30 + (i % 7),
          preprocess_us: slow ? 6000 + (i % 900) : 60 + (i % 40),
          queue_wait_us: 300 + (i % 200),
          compute_us: model === 'cnn' ? 2200 + (i % 300) : 900 + (i % 100),
          postprocess_us: 15,
          serialize_us: 12,
        }
        out.push(
          makeSpan(i, {
            timestamp_us: (T0_MS + t) * 1000,
            instance,
            model,
            request_id: `r-${i}`,
            status: model === 'cnn' && i % 20 === 0 ? 'server_error' : 'ok',
            ...stages,
            total_us: Object.values(stages).reduce((a, b) => a + b, 0) + 20,
          }),
        )
      }
    }
  }
  return out
}

function hwSamples(): HwSample[] {
  const out: HwSample[] = []
  for (let t = 0; t < 600_000; t += 5_000) {
    for (const [k, instance] of INSTANCES.entries()) {
      const n = t / 5_000
      out.push(
        makeHwSample(n, {
          timestamp_us: (T0_MS + t) * 1000,
          instance,
          executor_busy: 0.3 + 0.1 * k,
          devices: [
            {
              device: 'gpu0',
              utilization: 40 + (n % 50),
              memory_used_bytes: 8e9 + n * 1e6,
              memory_total_bytes: 80e9,
              power_w: 300 + (n % 100),
              temperature_c: 60,
            },
          ],
          cgroup_cpu_limit: 2,
          cgroup_nr_throttled: n * 3,
          cgroup_throttled_us: n * 40_000,
        }),
      )
    }
  }
  return out
}

function alerts(): Alert[] {
  const at = (ms: number) => (T0_MS + ms) * 1000
  const starved = makeAlert({
    id: 'a-starved',
    instance: 'engine-0',
    starts_at_us: at(310_000),
    updated_at_us: at(310_000),
    exemplar_request_ids: ['r-1', 'r-2'],
  })
  return [
    starved,
    // resolved later: FINAL keeps this, the newest state of the alert
    {
      ...starved,
      status: 'resolved',
      ends_at_us: at(400_000),
      updated_at_us: at(400_000),
      resolve_reason: 'cleared',
    },
    makeAlert({
      id: 'a-errors',
      type: 'error_rate_spike',
      severity: 'warning',
      instance: 'engine-1',
      model: 'cnn',
      stage: null,
      starts_at_us: at(500_000),
      updated_at_us: at(500_000),
    }),
  ]
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'breakid-grafana-'))
  ch = openClickHouse({ dataDir: dir, database: 'breakid_grafana' })
  await migrate(ch)
  await insertRecords(ch, spansTable, spans())
  await insertRecords(ch, hwSamplesTable, hwSamples())
  await insertRecords(ch, alertsTable, alerts())
})

after(async () => {
  await ch?.close()
  await rm(dir, { recursive: true, force: true })
})

const dashboards = buildDashboards()
const byUid = (uid: string) => Object.values(dashboards).find((d) => d.uid === uid)!
const col = (r: Result, name: string) => {
  const i = r.names.indexOf(name)
  assert.ok(i >= 0, `column ${name} in ${r.names.join(', ')}`)
  return r.rows.map((row) => Number(row[i]))
}
const isNumeric = (type: string) => /^(Nullable\()?(U?Int|Float|Decimal)/.test(type)

describe('grafana dashboards', () => {
  test('the JSON files are what deploy/grafana/dashboards.ts renders, on the provisioned data source', () => {
    for (const [file, d] of Object.entries(dashboards)) {
      assert.equal(
        readFileSync(join(DASHBOARD_DIR, file), 'utf8'),
        renderDashboard(d),
        `${file} is stale: run npm run grafana:generate`,
      )
    }
    const provisioned = readFileSync(
      join(DASHBOARD_DIR, '../provisioning/datasources/clickhouse.yaml'),
      'utf8',
    )
    assert.match(provisioned, new RegExp(`uid: ${DATASOURCE.uid}\\b`))
    assert.match(provisioned, new RegExp(`type: ${DATASOURCE.type}\\b`))
    assert.deepEqual(
      Object.values(dashboards)
        .map((d) => d.uid)
        .sort(),
      ['breakid-alerts', 'breakid-fleet', 'breakid-hardware', 'breakid-stages'],
    )
  })

  test('the macro expansion follows the plugin', () => {
    const range = { fromMs: 1_700_000_000_123, toMs: 1_700_000_600_999 }
    assert.equal(
      expandMacros(
        'WHERE $__timeFilter(ts) AND d >= $__fromTime_ms GROUP BY $__timeInterval(ts) / $__interval_s',
        range,
        30_000,
      ),
      'WHERE ts >= toDateTime(1700000000) AND ts <= toDateTime(1700000600) AND d >= fromUnixTimestamp64Milli(1700000000123) GROUP BY toStartOfInterval(toDateTime(ts), INTERVAL 30 second) / 30',
    )
    assert.equal(expandMacros('$__interval_s', range, 200), '1', 'at least one second')
    assert.throws(() => expandMacros('$__timeFilterr(ts)', range, 1000), /unknown macro/)
    assert.throws(() => expandMacros('$__timeFilter(a, b)', range, 1000), /expected 1 argument/)
    assert.throws(
      () => expandVariables('model IN ($model)', new Map([['model', ['a']]])),
      /unexpanded \$model/,
    )
  })

  for (const d of Object.values(dashboards)) {
    test(`${d.uid}: every query runs on a filled store and returns what its panel draws`, async () => {
      const { values, panels, annotations } = await runDashboard(d, RANGE)
      for (const [name, v] of values) assert.ok(v.length > 0, `variable ${name} has values`)
      assert.ok(panels.length >= 3)
      for (const { panel, result } of panels) {
        const where = `${d.uid} "${panel.title}"`
        assert.ok(result.rows.length > 0, `${where}: rows`)
        const numeric = result.types.filter(isNumeric)
        assert.ok(numeric.length > 0, `${where}: a numeric column (${result.types.join(', ')})`)
        if (panel.type === 'timeseries') {
          assert.equal(result.names[0], 'time', `${where}: time first`)
          assert.match(result.types[0]!, /^DateTime/, `${where}: time is a time`)
          const times = result.rows.map((r) => String(r[0]))
          assert.deepEqual(times, [...times].sort(), `${where}: ordered by time`)
        }
        if (panel.type === 'stat') assert.equal(result.rows.length, 1, `${where}: one value`)
      }
      for (const a of annotations) {
        assert.deepEqual(a.names, ['time', 'timeEnd', 'text', 'tags'])
        // the two alerts that started in the range, each once (FINAL: the starvation alert's latest state)
        assert.equal(a.rows.length, 2, `${d.uid}: alert annotations`)
        assert.ok(a.rows.some((r) => String(r[2]).startsWith('accelerator_starved [critical] engine-0/mlp')))
      }
    })

    test(`${d.uid}: every query is valid on a range with no data (empty variables)`, async () => {
      const { values, panels } = await runDashboard(d, EMPTY_RANGE)
      for (const [name, v] of values) assert.deepEqual(v, [], `variable ${name} is empty`)
      assert.ok(panels.length > 0)
    })
  }

  test('fleet: rates, error rate and percentiles agree with the records', async () => {
    const { panels } = await runDashboard(byUid('breakid-fleet'), RANGE)
    const get = (title: string) => panels.find((p) => p.panel.title === title)!.result
    // 4 series (2 models × 2 instances) at 2 requests/s each, over 600 s
    assert.equal(col(get('Requests/s'), 'requests_per_s')[0], 8)
    const table = get('Per model and instance')
    assert.equal(
      col(table, 'requests').reduce((a, b) => a + b, 0),
      4800,
    )
    const errors = col(table, 'errors').reduce((a, b) => a + b, 0)
    assert.ok(errors > 0)
    assert.equal(col(get('Error rate'), 'error_rate')[0], errors / 4800)
    const lat = get('Latency p50 / p95 / p99 per model')
    const [p50, p95, p99] = ['p50_ms', 'p95_ms', 'p99_ms'].map((c) => col(lat, c))
    for (let i = 0; i < p50!.length; i++) assert.ok(p50![i]! <= p95![i]! && p95![i]! <= p99![i]!)
    assert.equal(col(get('Alerts firing'), 'firing')[0], 1, 'the resolved alert is not firing')
  })

  test('stages: one column per contract stage, shares summing to at most 1, mlp preprocessing grows', async () => {
    const { panels } = await runDashboard(byUid('breakid-stages'), RANGE)
    const shares = panels.find((p) => p.panel.title === 'Share of request time per stage')!.result
    assert.deepEqual(shares.names, ['time', ...STAGES])
    for (const row of shares.rows) {
      const sum = (row.slice(1) as number[]).reduce((a, b) => a + Number(b), 0)
      assert.ok(sum > 0.9 && sum <= 1, `shares sum to ${sum}`)
    }
    const pre = col(shares, 'preprocess')
    assert.ok(pre.at(-1)! > 5 * pre[0]!, 'the starved second half shows in the preprocess share')
    const table = panels.find((p) => p.panel.title === 'Stages per model')!.result
    const stagesOf = (model: string) => table.rows.filter((r) => r[0] === model).map((r) => r[1])
    assert.deepEqual(stagesOf('mlp'), [...STAGES], 'pipeline order')
  })

  test('hardware: device series per instance, throttling as a rate', async () => {
    const { panels } = await runDashboard(byUid('breakid-hardware'), RANGE)
    const util = panels.find((p) => p.panel.title === 'Device utilization')!.result
    assert.deepEqual([...new Set(util.rows.map((r) => r[1]))].sort(), ['engine-0/gpu0', 'engine-1/gpu0'])
    const throttled = panels.find((p) => p.panel.title === 'CPU throttling')!.result
    // 40 ms throttled per 5 s sample: 8 ms/s, over buckets of two samples (10 s): (40 ms) / 10 s
    for (const v of col(throttled, 'throttled_s_per_s'))
      assert.ok(Math.abs(v - 0.004) < 1e-9, `throttled ${v}`)
  })
})
