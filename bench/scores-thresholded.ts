/**
 * What a NAB-style harness gets from `breakid replay --scores` when it thresholds each point's score
 * at 0.5, side by side with the alerts themselves, on the labelled corpus (eval/corpus): the score
 * under the alert policy (`score`, what `--scores` prints as the score) and the model's own score
 * before the policy (`model_score`, what `score` was before the policy applied to it). Every point at
 * or above 0.5 counts as a detection, as a harness that reads scores would count it.
 *
 * Run: node --import tsx bench/scores-thresholded.ts  (~1 min on 2 cores)
 * Writes bench/results/scores-thresholded.json with machineInfo().
 */
import { writeFileSync } from 'node:fs'
import { machineInfo } from '../core/machine.ts'
import { buildCorpus } from '../eval/corpus/corpus.ts'
import { replayEvents } from './corpus-events.ts'
import { formatJson } from '../eval/report.ts'
import { scoreCorpus, type SeriesToScore } from '../eval/window-score.ts'
import { replay } from '../replay/replay.ts'
import { AnomalyDetector } from '../detectors/anomaly/detector.ts'

const WAYS = ['alerts', 'score >= 0.5', 'model_score >= 0.5'] as const

async function main() {
  const rows: Record<string, unknown>[] = []
  const bySplit = new Map<string, Record<(typeof WAYS)[number], SeriesToScore[]>>()
  for (const s of buildCorpus()) {
    const policy: number[] = []
    const model: number[] = []
    const { alerts } = await replay(replayEvents(s), {
      detectors: [],
      series: new AnomalyDetector(),
      onPoint: (p) => {
        if ((p.score ?? 0) >= 0.5) policy.push(p.timestampUs)
        if ((p.modelScore ?? 0) >= 0.5) model.push(p.timestampUs)
      },
    })
    const fired = alerts.map((a) => Date.parse(a.fired_at) * 1000)
    const base = { name: s.name, timestampsUs: s.timestampsUs, windows: s.windows }
    const part = bySplit.get(s.split) ?? { alerts: [], 'score >= 0.5': [], 'model_score >= 0.5': [] }
    part.alerts.push({ ...base, detectionsUs: fired })
    part['score >= 0.5'].push({ ...base, detectionsUs: policy })
    part['model_score >= 0.5'].push({ ...base, detectionsUs: model })
    bySplit.set(s.split, part)
  }
  for (const [split, part] of bySplit) {
    for (const way of WAYS) {
      const c = scoreCorpus(part[way])
      const row = {
        part: split,
        detections: way,
        score: Math.round(c.normalized * 10) / 10,
        detected: `${c.detected}/${c.windows}`,
        falseDetections: c.falsePositives,
      }
      rows.push(row)
      process.stdout.write(
        `${split.padEnd(9)} ${way.padEnd(19)} window score ${String(row.score).padStart(6)}  ${row.detected} windows, ${row.falseDetections} false\n`,
      )
    }
  }
  writeFileSync('bench/results/scores-thresholded.json', `${formatJson({ machine: machineInfo(), rows })}\n`)
}

await main()
