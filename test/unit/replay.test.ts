/**
 * Replay / backtest over files (CSV, NDJSON) and over a ClickHouse range (real chDB, one data
 * directory for this file's process). Files are generated here, deterministically.
 */
import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { mkdtemp, rm, writeFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { after, before, describe, test } from 'node:test'
import { Prng } from '../../eval/prng.ts'
import { clickhouseEvents } from '../../replay/clickhouse-source.ts'
import {
  medianIntervalUs,
  parseReplayText,
  parseTimestampUs,
  ReplayInputError,
  type ReplayEvent,
} from '../../replay/file-source.ts'
import { AnomalyDetector } from '../../detectors/anomaly/detector.ts'
import { findSeriesDetector, replay } from '../../replay/replay.ts'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import { hwSamplesTable, spansTable } from '../../store/tables.ts'
import { insertRecords } from '../../store/writer.ts'
import type { HwSample, Span } from '../../contract/records.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'

const T0_MS = Date.parse('2026-03-01T00:00:00Z')
const FIVE_MIN_MS = 300_000

/** A series every five minutes: noise around 100 (sd 3), plus `shift` from sample `at` on. */
function fiveMinuteCsv(opts: {
  seed: number
  n: number
  shift?: number
  at?: number
  ts?: (ms: number) => string
}) {
  const r = new Prng(opts.seed)
  const lines = ['timestamp,latency_ms']
  for (let i = 0; i < opts.n; i++) {
    const ms = T0_MS + i * FIVE_MIN_MS
    const v = 100 + 3 * r.normal() + (opts.shift && i >= opts.at! ? opts.shift : 0)
    lines.push(`${opts.ts ? opts.ts(ms) : new Date(ms).toISOString()},${v.toFixed(3)}`)
  }
  return `${lines.join('\n')}\n`
}

async function replayText(text: string, opts: Parameters<typeof parseReplayText>[1] = {}) {
  const input = parseReplayText(text, opts)
  const result = await replay(input.events, { detectors: [new StarvationDetector()] })
  return { input, ...result }
}

describe('replay from a file', () => {
  test('a 5-minute series with one obvious level shift: one alert, at the shift, nowhere else', async () => {
    // the first day of a 5-minute series is the detector's probation; the shift comes on day two
    const { input, alerts, stats } = await replayText(fiveMinuteCsv({ seed: 7, n: 800, shift: 40, at: 500 }))
    assert.equal(input.intervalUs, 300e6, 'median interval estimated from the timestamps')
    assert.deepEqual(input.columns.series, ['latency_ms'])
    assert.equal(stats.points, 800)
    assert.equal(alerts.length, 1, JSON.stringify(alerts))
    const a = alerts[0]!
    assert.equal(a.type, 'anomaly')
    assert.equal(a.key, 'anomaly/replay/replay/latency_ms')
    assert.equal(a.start, new Date(T0_MS + 500 * FIVE_MIN_MS).toISOString(), 'starts at the shift')
    assert.equal(a.fired_at, a.start, 'a 13σ shift fires on its first value')
    assert.equal(a.status, 'resolved', 'a shift that stays becomes the new normal (adopted)')
    assert.ok(a.end! > a.start)
    assert.ok(a.evidence.observed > a.evidence.threshold && a.evidence.baseline < 105)
    assert.match(a.summary, /every 5\.0 min/)
  })

  test('a shift that recovers gives start and end; pure noise gives nothing (several seeds)', async () => {
    const r = new Prng(3)
    const lines = ['timestamp,latency_ms']
    for (let i = 0; i < 700; i++) {
      const v = 100 + 3 * r.normal() + (i >= 500 && i < 520 ? 50 : 0)
      lines.push(`${new Date(T0_MS + i * FIVE_MIN_MS).toISOString()},${v}`)
    }
    const { alerts } = await replayText(`${lines.join('\n')}\n`)
    assert.equal(alerts.length, 1)
    assert.equal(alerts[0]!.start, new Date(T0_MS + 500 * FIVE_MIN_MS).toISOString())
    assert.equal(alerts[0]!.status, 'resolved')
    const endIndex = (Date.parse(alerts[0]!.end!) - T0_MS) / FIVE_MIN_MS
    assert.ok(
      endIndex >= 522 && endIndex <= 535,
      `resolved a few clear samples after the shift ended: ${endIndex}`,
    )
    for (const seed of [1, 2, 3, 4, 5]) {
      const noise = await replayText(fiveMinuteCsv({ seed, n: 600 }))
      assert.deepEqual(noise.alerts, [], `noise seed ${seed}`)
    }
  })

  test('epoch seconds, milliseconds and microseconds replay the same as ISO 8601', async () => {
    const iso = await replayText(fiveMinuteCsv({ seed: 11, n: 200, shift: 40, at: 120 }))
    for (const ts of [
      (ms: number) => String(ms / 1000),
      (ms: number) => String(ms),
      (ms: number) => String(ms * 1000),
    ]) {
      const other = await replayText(fiveMinuteCsv({ seed: 11, n: 200, shift: 40, at: 120, ts }))
      assert.deepEqual(other.alerts, iso.alerts)
    }
    assert.equal(parseTimestampUs('2026-03-01T00:00:00.123456Z'), T0_MS * 1000 + 123_456)
    assert.equal(parseTimestampUs('2026-03-01T01:00:00+01:00'), T0_MS * 1000)
    assert.equal(parseTimestampUs(`${T0_MS * 1e6}`), T0_MS * 1000, 'nanoseconds')
    assert.equal(parseTimestampUs('yesterday'), undefined)
    assert.equal(medianIntervalUs([0, 1e6, 2e6, 2e6, 3e6, 10e6]), 1e6)
  })

  test('the same series sampled every second alerts at the same sample', async () => {
    // after both probations: a day of 5-minute samples, 1000 one-second samples
    const five = await replayText(fiveMinuteCsv({ seed: 5, n: 1400, shift: 40, at: 1200 }))
    const secondly = await replayText(
      fiveMinuteCsv({
        seed: 5,
        n: 1400,
        shift: 40,
        at: 1200,
        ts: (ms) => String(T0_MS + (ms - T0_MS) / 300),
      }),
    )
    assert.equal(five.alerts.length, 1)
    assert.equal(secondly.alerts.length, 1)
    assert.equal(secondly.input.intervalUs, 1e6)
    assert.equal(five.alerts[0]!.start, new Date(T0_MS + 1200 * FIVE_MIN_MS).toISOString())
    assert.equal(secondly.alerts[0]!.start, new Date(T0_MS + 1_200_000).toISOString())
  })

  test('schema columns build hardware samples for the detectors that read them (NDJSON)', async () => {
    // the starvation pattern of test/unit/starvation.test.ts, as a recorded NDJSON export
    const rows: string[] = []
    for (let i = 0; i < 30; i++) {
      const starved = i >= 15 && i < 21
      rows.push(
        JSON.stringify({
          timestamp: new Date(T0_MS + i * 1000).toISOString(),
          instance: 'gpu-7',
          executor_busy: starved ? 0.25 : 0.5,
          in_flight: starved ? 60 : 3,
          queue_depth: starved ? 0 : 1,
          temperature: 60 + (i % 3),
        }),
      )
    }
    const { input, alerts } = await replayText(`${rows.join('\n')}\n`)
    assert.deepEqual(input.columns.hw, ['executor_busy', 'in_flight', 'queue_depth'])
    assert.deepEqual(input.columns.series, ['temperature'])
    assert.deepEqual(input.instances, ['gpu-7'])
    const hw = input.events.find((e) => e.kind === 'hw')!
    assert.equal(hw.kind === 'hw' && hw.sample.interval_ms, 1000, 'interval_ms from the sampling interval')
    const starved = alerts.filter((a) => a.type === 'accelerator_starved')
    assert.equal(starved.length, 1)
    assert.equal(starved[0]!.instance, 'gpu-7')
    assert.equal(starved[0]!.start, new Date(T0_MS + 15_000).toISOString())
    assert.equal(starved[0]!.end, new Date(T0_MS + 23_000).toISOString())
  })

  test('span columns become spans with neutral defaults; --instance names rows without one', () => {
    const input = parseReplayText(
      'timestamp,total_us,status,preprocess_us\n2026-03-01T00:00:00Z,1500,server_error,\n2026-03-01T00:00:01Z,,,40\n',
      { instance: 'edge-1' },
    )
    const spans = input.events.filter((e): e is Extract<ReplayEvent, { kind: 'span' }> => e.kind === 'span')
    assert.equal(spans.length, 2)
    assert.equal(spans[0]!.span.instance, 'edge-1')
    assert.equal(spans[0]!.span.status, 'server_error')
    assert.equal(spans[0]!.span.total_us, 1500)
    assert.equal(spans[1]!.span.total_us, 40, 'total from the stages when the column is empty')
    assert.equal(spans[1]!.span.status, 'ok')
  })

  test('clear errors: no timestamp column, empty input, nothing readable', () => {
    assert.throws(
      () => parseReplayText('when,value\n1,2\n', {}),
      (e: unknown) =>
        e instanceof ReplayInputError && /no timestamp column.*columns found: when, value/.test(e.message),
    )
    assert.throws(() => parseReplayText('', {}), /empty input/)
    assert.throws(() => parseReplayText('\n\n', { format: 'csv' }), /empty input/)
    assert.throws(() => parseReplayText('timestamp,value\n', {}), /no data rows/)
    assert.throws(
      () => parseReplayText('timestamp,value\nnope,1\nlater,2\n', {}),
      /none of 2 rows has a readable timestamp \(line 2: timestamp "nope"/,
    )
  })

  test('unparseable rows are skipped, counted and reported by line; the rest is replayed', () => {
    const input = parseReplayText(
      [
        'timestamp,value',
        '2026-03-01T00:00:00Z,1',
        'garbage,2',
        '2026-03-01T00:00:02Z,3,extra',
        '2026-03-01T00:00:03Z,abc',
        '2026-03-01T00:00:04Z,5',
      ].join('\n'),
      {},
    )
    assert.equal(input.rows, 5)
    assert.equal(input.skipped, 2)
    assert.deepEqual(
      input.skippedExamples.map((s) => s.line),
      [4, 3],
      'the field-count error is found while reading, the timestamp one while parsing',
    )
    assert.equal(input.badValues, 1, 'abc left out of its row')
    assert.deepEqual(
      input.events.map((e) => (e.kind === 'point' ? e.value : null)),
      [1, 5],
    )
    const nd = parseReplayText(
      '{"timestamp": 1767225600, "v": 1}\n{not json\n[1]\n{"timestamp": 1767225601, "v": 2}\n',
      {},
    )
    assert.equal(nd.skipped, 2)
    assert.equal(nd.events.length, 2)
  })

  test("the detector set's own series detector is used when it has one", async () => {
    const own = new AnomalyDetector({ alertZ: 6 })
    assert.equal(findSeriesDetector([new StarvationDetector(), own]), own)
    assert.equal(findSeriesDetector([new StarvationDetector()]), undefined)
  })

  test('breakid replay --file prints one NDJSON alert per line', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'breakid-replay-'))
    try {
      const file = join(dir, 'replay-shift.csv')
      // a schema column the live detectors read, with every other hardware field missing: the
      // neutral defaults must not make any detector of the live set fire
      const csv = fiveMinuteCsv({ seed: 7, n: 800, shift: 40, at: 600 })
        .trim()
        .split('\n')
        .map((l, i) => `${l},${i === 0 ? 'queue_depth' : String(i % 3)}`)
        .join('\n')
      await writeFile(file, `${csv}\n`)
      const { stdout, stderr } = await promisify(execFile)(
        process.execPath,
        ['bin/breakid.mjs', 'replay', '--file', file],
        { cwd: join(import.meta.dirname, '../..') },
      )
      const lines = stdout.trim().split('\n').filter(Boolean)
      const alerts = lines.map((l) => JSON.parse(l) as { type: string; start: string; key: string })
      assert.equal(alerts.length, 1, stdout)
      assert.match(alerts[0]!.key, /latency_ms$/)
      assert.equal(alerts[0]!.start, new Date(T0_MS + 600 * FIVE_MIN_MS).toISOString())
      assert.match(stderr, /800 rows, 0 skipped; sampling interval 5\.0 min/)
      // --scores: one line per point of every series column, score in [0, 1], the alert marked
      const scored = await promisify(execFile)(
        process.execPath,
        ['bin/breakid.mjs', 'replay', '--file', file, '--scores'],
        { cwd: join(import.meta.dirname, '../..'), maxBuffer: 1 << 24 },
      )
      const points = scored.stdout
        .trim()
        .split('\n')
        .map(
          (l) =>
            JSON.parse(l) as {
              timestamp: string
              series: string
              value: number
              score: number
              alert?: string
            },
        )
      assert.equal(points.length, 800)
      assert.deepEqual(Object.keys(points[0]!), [
        'timestamp',
        'series',
        'instance',
        'value',
        'score',
        'model_score',
      ])
      assert.equal(points[0]!.series, 'latency_ms')
      assert.equal(points[0]!.score, 0, 'probation')
      assert.ok(points.every((p) => p.score >= 0 && p.score <= 1))
      const firing = points.findIndex((p) => p.alert === 'firing')
      assert.equal(firing, 600)
      assert.ok(points[600]!.score >= 0.5)
      // the score follows the alert policy: thresholded at 0.5 it gives the alert, not one detection
      // per point of the shift (its later points stay just below)
      assert.deepEqual(
        points.flatMap((p, i) => (p.score >= 0.5 ? [i] : [])),
        [600],
      )
      assert.equal(points[601]!.score, 0.4999, 'the shift goes on, held back by the open episode')
      assert.ok((points[601] as { model_score?: number }).model_score! >= 0.5, 'as the model alone sees it')
      assert.ok(
        points.slice(300, 600).every((p) => p.score < 0.5),
        'quiet before the shift',
      )
      const bad = await promisify(execFile)(
        process.execPath,
        ['bin/breakid.mjs', 'replay', '--file', join(dir, 'nope.csv')],
        {
          cwd: join(import.meta.dirname, '../..'),
        },
      ).catch((e: { code: number; stderr: string }) => e)
      assert.equal((bad as { code: number }).code, 2)
    } finally {
      await rm(dir, { recursive: true, force: true })
    }
  })
})

describe('replay from ClickHouse', () => {
  let dir: string
  let ch: ClickHouse
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'breakid-replay-ch-'))
    ch = openClickHouse({ dataDir: dir, database: 'breakid_replay' })
    await migrate(ch)
  })
  after(async () => {
    await ch.close()
    await rm(dir, { recursive: true, force: true })
  })

  test('a time range, read in pages, gives the alerts an in-memory replay of the same records gives', async () => {
    const T0_US = 1_767_225_600_000_000
    const spans: Span[] = []
    const hw: HwSample[] = []
    let req = 0
    for (let i = 0; i < 40; i++) {
      const starved = i >= 20 && i < 27
      for (let k = 0; k < 20; k++) {
        spans.push(
          makeSpan(req++, {
            timestamp_us: T0_US + i * 1e6 + k * 1000,
            preprocess_us: starved ? 40_000 + k : 50 + k,
          }),
        )
      }
      hw.push(
        makeHwSample(i, {
          timestamp_us: T0_US + i * 1e6 + 999_000,
          executor_busy: starved ? 0.25 : 0.5,
          in_flight: starved ? 60 : 3,
          queue_depth: starved ? 0 : 1,
        }),
      )
    }
    // outside the range: must not be read
    hw.push(makeHwSample(0, { timestamp_us: T0_US + 3_600e6 }))
    await insertRecords(ch, spansTable, spans)
    await insertRecords(ch, hwSamplesTable, hw)

    const events: ReplayEvent[] = []
    for await (const e of clickhouseEvents(ch, { fromUs: T0_US, toUs: T0_US + 60e6, pageRows: 97 }))
      events.push(e)
    assert.equal(events.filter((e) => e.kind === 'span').length, 800, 'every span, across 9 pages')
    assert.equal(events.filter((e) => e.kind === 'hw').length, 40)
    const ts = events.map((e) => e.timestampUs)
    assert.deepEqual(
      ts,
      [...ts].sort((a, b) => a - b),
      'one event-time order',
    )
    const first = events.find((e) => e.kind === 'span')!
    assert.deepEqual(first.kind === 'span' && first.span, spans[0], 'spans read back field for field')

    const fromStore = await replay(events, { detectors: [new StarvationDetector()] })
    const inMemory = await replay(
      [
        ...spans.map((s) => ({ kind: 'span' as const, timestampUs: s.timestamp_us, span: s })),
        ...hw.slice(0, 40).map((s) => ({ kind: 'hw' as const, timestampUs: s.timestamp_us, sample: s })),
      ].sort((a, b) => a.timestampUs - b.timestampUs),
      { detectors: [new StarvationDetector()] },
    )
    assert.equal(fromStore.alerts.length, 1)
    assert.equal(fromStore.alerts[0]!.type, 'accelerator_starved')
    assert.equal(fromStore.alerts[0]!.stage, 'preprocess')
    assert.deepEqual(fromStore.alerts, inMemory.alerts)
  })
})
