import assert from 'node:assert/strict'
import { test } from 'node:test'
import {
  perfectDetections,
  probationPoints,
  scaledSigmoid,
  scoreCorpus,
  scoreSeries,
  type SeriesToScore,
} from '../../eval/window-score.ts'

const ts = Array.from({ length: 1000 }, (_, i) => i * 60e6)
/** one window of points 500..549 */
const base: Omit<SeriesToScore, 'detectionsUs'> = {
  name: 's',
  timestampsUs: ts,
  windows: [{ startUs: ts[500]!, endUs: ts[549]! }],
}
const at = (...i: number[]) => i.map((k) => ts[k]!)

test('window score: NAB scaled sigmoid and probation (15 %, at most 750 points)', () => {
  assert.ok(Math.abs(scaledSigmoid(-1) - 0.9866) < 1e-4)
  assert.equal(scaledSigmoid(0), 0)
  assert.equal(scaledSigmoid(3.5), -1)
  assert.equal(probationPoints(1000), 150)
  assert.equal(probationPoints(20_000), 750)
})

test('window score: silent 0, perfect 100, early detection near 100, late near 0', () => {
  assert.equal(scoreSeries({ ...base, detectionsUs: [] }).normalized, 0)
  assert.equal(scoreSeries({ ...base, detectionsUs: perfectDetections(base) }).normalized, 100)
  const mid = scoreSeries({ ...base, detectionsUs: at(525) })
  assert.equal(mid.detected, 1)
  assert.ok(mid.tpScore > 0.8 && mid.tpScore < 0.9, `middle of the window: ${mid.tpScore}`)
  const last = scoreSeries({ ...base, detectionsUs: at(549) })
  assert.ok(last.tpScore > 0 && last.tpScore < 0.1)
})

test('window score: only the first detection in a window counts; false positives cost 0.11, less just after a window', () => {
  const repeated = scoreSeries({ ...base, detectionsUs: at(500, 510, 520) })
  assert.equal(repeated.raw, 1)
  assert.deepEqual(
    repeated.detections.map((d) => d.kind),
    ['tp', 'redundant', 'redundant'],
  )
  const before = scoreSeries({ ...base, detectionsUs: at(300) })
  assert.equal(before.falsePositives, 1)
  assert.ok(Math.abs(before.fpScore + 0.11) < 1e-12, 'before any window: the full cost')
  const justAfter = scoreSeries({ ...base, detectionsUs: at(551) })
  assert.ok(justAfter.fpScore < 0 && justAfter.fpScore > -0.02, `just after: ${justAfter.fpScore}`)
  const farAfter = scoreSeries({ ...base, detectionsUs: at(900) })
  assert.ok(Math.abs(farAfter.fpScore + 0.11) < 1e-9, 'three window widths after: the full cost')
  // the same point twice is one detection
  assert.equal(scoreSeries({ ...base, detectionsUs: [ts[300]!, ts[300]! - 1] }).falsePositives, 1)
})

test('window score: detections in probation are not scored, nor windows that end in it', () => {
  const s = scoreSeries({
    ...base,
    windows: [{ startUs: ts[10]!, endUs: ts[20]! }, ...base.windows],
    detectionsUs: at(15, 100),
  })
  assert.equal(s.windows, 1, 'the window inside the probation is dropped')
  assert.equal(s.falsePositives, 0)
  assert.deepEqual(
    s.detections.map((d) => d.kind),
    ['probation', 'probation'],
  )
})

test('window score: the corpus is normalised over all series; a clean series only costs', () => {
  const clean = { name: 'clean', timestampsUs: ts, windows: [], detectionsUs: at(400, 600) }
  const c = scoreCorpus([{ ...base, detectionsUs: at(500) }, clean])
  assert.equal(c.windows, 1)
  assert.equal(c.falsePositives, 2)
  assert.ok(Math.abs(c.normalized - (100 * (1 - 0.22 + 1)) / 2) < 1e-9)
  assert.equal(c.series[1]!.normalized, null)
  assert.throws(() =>
    scoreSeries({
      ...base,
      windows: [...base.windows, { startUs: ts[540]!, endUs: ts[560]! }],
      detectionsUs: [],
    }),
  )
})
