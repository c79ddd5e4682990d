/**
 * Named queries over a store of N fleet-generator spans (default 10 M: 200 instances at 500 req/s,
 * 100 s of a 100 000 spans/s fleet). Fills a fresh chDB store through the product's Native inserts
 * (the rollup views fill as they do live), merges it as background merges would, then prints one
 * JSON line per query — the median of several runs of its wall time, and the rows it read and its
 * peak memory (ClickHouse's own statistics and memory tracker) — and one with the bytes a span takes
 * on disk, with the columns that take them. Then it times the CLI answering a named query in a
 * fresh process, and `--help` alone (start-up).
 *
 * Run: node --import tsx bench/query.ts [--spans 10000000] [--runs 5] [--cli-runs 5]
 */
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createRequire } from 'node:module'
import { loadavg, tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { FleetGenerator } from '../contract/synthetic.ts'
import { machineInfo } from '../core/machine.ts'
import { resolveParams } from '../queries/params.ts'
import { getQuery } from '../queries/runner.ts'
import { openClickHouse } from '../store/client.ts'
import { migrate } from '../store/migrations.ts'
import { spansTable } from '../store/tables.ts'
import { appendRecord, blockFor, insertBlock } from '../store/writer.ts'

const { values: args } = parseArgs({
  options: {
    spans: { type: 'string', default: '10000000' },
    runs: { type: 'string', default: '5' },
    'cli-runs': { type: 'string', default: '5' },
    /** sequence (`<instance>-<n>`, short ids a client numbers itself; default) or uuid7 (what the engine generates) */
    'request-ids': { type: 'string', default: 'sequence' },
    child: { type: 'string' },
    'data-dir': { type: 'string' },
    out: { type: 'string', default: join(import.meta.dirname, 'results', 'query.json') },
  },
})
const SPANS = Number(args.spans)
const RUNS = Number(args.runs)
const DATABASE = 'breakid'
const START_US = 1_767_225_600_000_000

const median = (xs: number[]) => {
  const s = [...xs].sort((a, b) => a - b)
  return s.length % 2 ? s[(s.length - 1) / 2]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2
}
const iso = (us: number) => new Date(us / 1000).toISOString()

interface Case {
  label: string
  query: string
  params: Record<string, string>
}

/** Fills the store and runs the queries (in a child: chDB keeps its directory until the process ends). */
async function fillAndQuery(dataDir: string): Promise<void> {
  const ch = openClickHouse({ dataDir, database: DATABASE })
  await migrate(ch)
  const requestIds = args['request-ids'] === 'uuid7' ? 'uuid7' : 'sequence'
  const gen = new FleetGenerator({ seed: 3, startUs: START_US, requestIds })
  const block = blockFor(spansTable)
  const t0 = performance.now()
  for (let done = 0; done < SPANS; ) {
    block.reset()
    const n = Math.min(500_000, SPANS - done)
    for (let i = 0; i < n; i++) appendRecord(block, spansTable, gen.next())
    await insertBlock(ch, spansTable, block, { token: `bench/${done}` })
    done += n
  }
  const fillS = (performance.now() - t0) / 1000
  const lastUs = gen.timeUs
  // what background merges reach in a steady store: one part per partition
  for (const t of ['spans', 'spans_1m', 'spans_1h']) {
    await ch.client.command({ query: `OPTIMIZE TABLE ${DATABASE}.${t} FINAL`, clickhouse_settings: {} })
  }
  const require = createRequire(import.meta.url)
  const chdb = require('chdb') as {
    Session: new (
      path: string,
    ) => {
      queryBindAsync(sql: string, params: object, opts: object): Promise<{ text(): string }>
      queryAsync(sql: string, opts: object): Promise<{ text(): string }>
      close(): void
    }
  }
  const session = new chdb.Session(dataDir)
  const watcher = new chdb.Session(dataDir)
  await session.queryAsync(`USE ${DATABASE}`, { format: 'TSV' })

  const endMinuteUs = Math.ceil(lastUs / 60e6) * 60e6
  const whole = { from: iso(START_US), to: iso(endMinuteUs) }
  const window30s = { from: iso(START_US + 30e6), to: iso(START_US + 60e6) }
  const cases: Case[] = [
    { label: 'stage-breakdown', query: 'stage-breakdown', params: whole },
    {
      label: 'stage-breakdown model=resnet50',
      query: 'stage-breakdown',
      params: { ...whole, model: 'resnet50' },
    },
    { label: 'stage-breakdown 30 s raw exact', query: 'stage-breakdown', params: window30s },
    { label: 'slowest-requests', query: 'slowest-requests', params: whole },
    { label: 'throughput step=60', query: 'throughput', params: { ...whole, step: '60' } },
    { label: 'throughput 30 s step=1 raw', query: 'throughput', params: { ...window30s, step: '1' } },
    { label: 'alerts', query: 'alerts', params: {} },
  ]
  const lines: Record<string, unknown>[] = []
  for (const c of cases) {
    const def = getQuery(c.query)
    const bound = Object.fromEntries(
      Object.entries(resolveParams(def, c.params, endMinuteUs / 1000)).map(([k, v]) => [k, v.bound]),
    )
    const ms: number[] = []
    const rows: number[] = []
    const memory: number[] = []
    for (let run = 0; run < RUNS; run++) {
      let finished = false
      let peak = 0
      const t = performance.now()
      const answer = session
        .queryBindAsync(`${def.sql}\nFORMAT JSON`, bound, { format: 'JSON' })
        .finally(() => {
          finished = true
        })
      // the query's own memory tracker, read from a second session while it runs
      while (!finished) {
        const r = await watcher.queryAsync(
          "SELECT max(peak_memory_usage) FROM system.processes WHERE query NOT LIKE '%system.processes%'",
          { format: 'TSV' },
        )
        peak = Math.max(peak, Number(r.text().trim() || 0))
      }
      const json = JSON.parse((await answer).text()) as { statistics: { rows_read: number } }
      ms.push(performance.now() - t)
      rows.push(json.statistics.rows_read)
      memory.push(peak)
    }
    const line = {
      query: c.label,
      ms: Math.round(median(ms)),
      rows_read: median(rows),
      memory_bytes: median(memory),
    }
    console.log(JSON.stringify(line))
    lines.push(line)
  }
  const parts = JSON.parse(
    (
      await session.queryAsync(
        `SELECT table, sum(rows) AS rows, sum(data_compressed_bytes) AS bytes FROM system.parts
         WHERE database = '${DATABASE}' AND active GROUP BY table FORMAT JSON`,
        { format: 'JSON' },
      )
    ).text(),
  ) as { data: { table: string; rows: string; bytes: string }[] }
  const byTable = Object.fromEntries(
    parts.data.map((p) => [p.table, { rows: Number(p.rows), bytes: Number(p.bytes) }]),
  )
  const columns = JSON.parse(
    (
      await session.queryAsync(
        `SELECT name, data_compressed_bytes AS bytes FROM system.columns
         WHERE database = '${DATABASE}' AND table = 'spans' ORDER BY bytes DESC FORMAT JSON`,
        { format: 'JSON' },
      )
    ).text(),
  ) as { data: { name: string; bytes: string }[] }
  const spans = byTable.spans!
  const storage = {
    bytes_per_span: Number((spans.bytes / spans.rows).toFixed(1)),
    rollup_bytes_per_span: Number(
      (((byTable.spans_1m?.bytes ?? 0) + (byTable.spans_1h?.bytes ?? 0)) / spans.rows).toFixed(1),
    ),
    columns_bytes_per_span: Object.fromEntries(
      columns.data.map((c) => [c.name, Number((Number(c.bytes) / spans.rows).toFixed(2))]),
    ),
  }
  console.log(
    JSON.stringify({
      bytes_per_span: storage.bytes_per_span,
      rollup_bytes_per_span: storage.rollup_bytes_per_span,
    }),
  )
  process.stdout.write(`RESULT ${JSON.stringify({ lines, storage, fill_s: fillS, range: whole })}\n`)
  session.close()
  watcher.close()
}

function run(
  argv: string[],
  env: NodeJS.ProcessEnv = process.env,
): Promise<{ code: number; out: string; ms: number }> {
  return new Promise((resolve) => {
    const t = performance.now()
    const child = spawn(process.execPath, argv, { stdio: ['ignore', 'pipe', 'pipe'], env })
    let out = ''
    child.stdout.on('data', (d) => {
      out += d
    })
    child.stderr.on('data', (d) => {
      out += d
    })
    child.on('exit', (code) => resolve({ code: code ?? 1, out, ms: performance.now() - t }))
  })
}

if (args.child === 'fill-and-query') await fillAndQuery(args['data-dir']!)
else {
  const load0 = loadavg()[0]!
  const dir = mkdtempSync(join(tmpdir(), 'breakid-bench-query-'))
  const dataDir = join(dir, 'data')
  const child = await run([
    '--import',
    'tsx',
    import.meta.filename,
    '--child',
    'fill-and-query',
    '--data-dir',
    dataDir,
    '--spans',
    String(SPANS),
    '--runs',
    String(RUNS),
  ])
  for (const line of child.out.split('\n')) if (line.startsWith('{')) console.log(line)
  const resultLine = child.out.split('\n').find((l) => l.startsWith('RESULT '))
  if (child.code !== 0 || !resultLine) throw new Error(`fill-and-query failed:\n${child.out}`)
  const result = JSON.parse(resultLine.slice(7)) as {
    lines: unknown[]
    storage: unknown
    fill_s: number
    range: { from: string; to: string }
  }

  // the CLI in a fresh process each time: start-up (--help) and a real named query on this store
  const cli = join(import.meta.dirname, '..', 'bin', 'breakid.mjs')
  const cliRuns = Number(args['cli-runs'])
  const timed = async (argv: string[]) => {
    const ms: number[] = []
    for (let i = 0; i < cliRuns; i++) {
      const r = await run([cli, ...argv], { ...process.env, KAFKA_BROKERS: '', CLICKHOUSE_URL: '' })
      if (r.code !== 0) throw new Error(`breakid ${argv.join(' ')} exited ${r.code}: ${r.out}`)
      ms.push(r.ms)
    }
    return Math.round(median(ms))
  }
  const cliLines = [
    {
      query: 'cli: breakid query stage-breakdown --help',
      ms: await timed(['query', 'stage-breakdown', '--help']),
    },
    {
      query: 'cli: breakid query stage-breakdown (whole range)',
      ms: await timed([
        'query',
        'stage-breakdown',
        `--from=${result.range.from}`,
        `--to=${result.range.to}`,
        '--data-dir',
        dataDir,
        '--database',
        DATABASE,
      ]),
    },
  ]
  for (const l of cliLines) console.log(JSON.stringify(l))
  const record = {
    spans: SPANS,
    request_ids: args['request-ids'],
    runs: RUNS,
    fill_s: Number(result.fill_s.toFixed(1)),
    queries: result.lines,
    storage: result.storage,
    cli: cliLines,
    note: `medians of ${RUNS} runs (CLI: ${cliRuns}); load average ${load0.toFixed(1)} at start on a machine shared with other work`,
    machine: machineInfo(),
  }
  const previous = existsSync(args.out!)
    ? (JSON.parse(readFileSync(args.out!, 'utf8')) as { runs?: unknown[] })
    : {}
  writeFileSync(
    args.out!,
    `${JSON.stringify({ bench: 'query', runs: [...(previous.runs ?? []), record] }, null, 2)}\n`,
  )
  rmSync(dir, { recursive: true, force: true })
}
