/** The labelled corpus as replay takes it in process, shared by the corpus benchmarks. */
import type { CorpusSeries } from '../eval/corpus/corpus.ts'
import type { ReplayEvent } from '../replay/file-source.ts'

/** One `value` series, as `breakid replay --file` names a corpus file's column. */
export function replayEvents(s: CorpusSeries): ReplayEvent[] {
  return s.values.map((value, i) => ({
    kind: 'point',
    timestampUs: s.timestampsUs[i]!,
    series: 'value',
    value,
    fleet: 'replay',
    instance: 'replay',
  }))
}
