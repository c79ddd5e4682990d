import assert from 'node:assert/strict'
import { mkdtemp, readFile, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { buildCorpus, FAMILIES, seedOf, seriesCsv, splitOf, writeCorpus } from '../../eval/corpus/corpus.ts'
import { parseReplayText } from '../../replay/file-source.ts'
import { probationPoints } from '../../eval/window-score.ts'

const corpus = buildCorpus()

test('corpus: at least 40 series, deterministic, both parts hold most families', () => {
  assert.ok(corpus.length >= 40, `${corpus.length} series`)
  const again = buildCorpus({ filter: 'latency' })
  const first = corpus.filter((s) => s.family === 'latency')
  assert.deepEqual(
    again.map((s) => seriesCsv(s)),
    first.map((s) => seriesCsv(s)),
  )
  const tuning = new Set(corpus.filter((s) => s.split === 'tuning').map((s) => s.family))
  const heldOut = new Set(corpus.filter((s) => s.split === 'held-out').map((s) => s.family))
  for (const f of FAMILIES) assert.ok(heldOut.has(f.name), `${f.name} has held-out series`)
  assert.ok(!tuning.has('gpu-power') && !tuning.has('hit-ratio'), 'held-out families never tune')
  assert.ok(tuning.size >= 14)
})

test('corpus: the split rule is the seed rule, fixed', () => {
  assert.equal(seedOf(0, 2), 1002)
  assert.equal(splitOf(1002, {}), 'held-out')
  assert.equal(splitOf(1001, {}), 'tuning')
  assert.equal(splitOf(1001, { heldOut: true }), 'held-out')
  for (const s of corpus) assert.equal(s.split, splitOf(s.seed, FAMILIES.find((f) => f.name === s.family)!))
})

test('corpus: sampling from 1 s to 1 h, clean series, windows after the probation and apart', () => {
  const intervals = new Set(corpus.map((s) => s.intervalS))
  for (const i of [1, 10, 60, 300, 900, 3600]) assert.ok(intervals.has(i), `interval ${i} s`)
  assert.ok(corpus.filter((s) => s.windows.length === 0).length >= 4, 'clean series')
  for (const s of corpus) {
    const ts = s.timestampsUs
    for (let i = 1; i < ts.length; i++) assert.ok(ts[i]! > ts[i - 1]!, `${s.name}: ascending timestamps`)
    const probationEnd = ts[probationPoints(ts.length)]!
    s.windows.forEach((w, k) => {
      assert.ok(w.startUs >= probationEnd, `${s.name}: window ${k} after the probation`)
      assert.ok(w.endUs >= w.startUs)
      if (k > 0) assert.ok(w.startUs > s.windows[k - 1]!.endUs, `${s.name}: windows apart`)
    })
  }
})

test('corpus: written as CSV that replay reads, with NAB-like labels beside', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'breakid-corpus-'))
  try {
    const some = corpus.filter((s) => s.family === 'irregular').slice(0, 2)
    const paths = writeCorpus(dir, some)
    const labels = JSON.parse(await readFile(join(dir, 'labels.json'), 'utf8')) as Record<string, string[][]>
    assert.deepEqual(Object.keys(labels), ['irregular-0.csv', 'irregular-1.csv'])
    assert.equal(labels['irregular-0.csv']![0]!.length, 2)
    assert.ok(!Number.isNaN(Date.parse(labels['irregular-0.csv']![0]![0]!)))
    const input = parseReplayText(await readFile(paths[0]!, 'utf8'), {})
    assert.deepEqual(input.columns.series, ['value'])
    assert.equal(input.events.length, some[0]!.values.length)
    assert.equal(input.skipped, 0)
    const first = input.events[0]!
    assert.equal(first.timestampUs, some[0]!.timestampsUs[0])
  } finally {
    await rm(dir, { recursive: true, force: true })
  }
})
