/**
 * The corpus evaluation wired to the product: each series file goes through what
 * `breakid replay --file` runs (the file reader and the live detector set), and an alert's detection
 * time is when it fired (`fired_at`, the evaluation that raised it — not its backdated onset).
 */
import { readReplayFile } from '../replay/file-source.ts'
import { replay } from '../replay/replay.ts'
import type { DetectFile } from '../eval/corpus/evaluate.ts'
import { defaultDetectors } from './pipeline.ts'

export const replayDetections: DetectFile = async (csvPath) => {
  const input = readReplayFile(csvPath)
  const { alerts } = await replay(input.events, { detectors: defaultDetectors() })
  return alerts.map((a) => Date.parse(a.fired_at) * 1000)
}
