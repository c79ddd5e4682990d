/**
 * How the generic detector's window score moves when one parameter moves: every variant (one
 * parameter set lower or higher than its default, or one mechanism switched off) runs over the whole
 * labelled corpus (eval/corpus) through replay, side by side in one run, and the tuning and held-out
 * scores are printed next to each other. A parameter the held-out score is flat around is not
 * tuned to the corpus; one whose best tuning value costs held-out score is.
 *
 * Also measures replay speed on the corpus' 20 000-point series (in-process: series detector only).
 *
 * Run: node --import tsx bench/corpus-sensitivity.ts  (~5 min on 2 cores)
 * Writes bench/results/corpus-sensitivity.{json,md} with machineInfo().
 */
import { writeFileSync } from 'node:fs'
import { machineInfo } from '../core/machine.ts'
import { AnomalyDetector, type AnomalyOptions } from '../detectors/anomaly/detector.ts'
import { buildCorpus, type CorpusSeries } from '../eval/corpus/corpus.ts'
import { replayEvents } from './corpus-events.ts'
import { formatJson } from '../eval/report.ts'
import { scoreCorpus } from '../eval/window-score.ts'
import { replay } from '../replay/replay.ts'

interface Variant {
  name: string
  opts: AnomalyOptions
}

const VARIANTS: Variant[] = [
  { name: 'defaults', opts: {} },
  { name: 'alertZ 4', opts: { alertZ: 4 } },
  { name: 'alertZ 6', opts: { alertZ: 6 } },
  { name: 'excursionZ 2.5', opts: { excursionZ: 2.5 } },
  { name: 'excursionZ 3.5', opts: { excursionZ: 3.5 } },
  { name: 'familiarAfter 2', opts: { familiarAfter: 2 } },
  { name: 'familiarAfter 5', opts: { familiarAfter: 5 } },
  { name: 'familiarity off', opts: { familiarAfter: 1e9 } },
  { name: 'similarShare 0.5', opts: { similarShare: 0.5 } },
  { name: 'similarShare 0.9', opts: { similarShare: 0.9 } },
  { name: 'levelPoints 32', opts: { levelPoints: 32 } },
  { name: 'levelPoints 128', opts: { levelPoints: 128 } },
  { name: 'spreadPoints 128', opts: { spreadPoints: 128 } },
  { name: 'spreadPoints 512', opts: { spreadPoints: 512 } },
  { name: 'quietPoints 16', opts: { quietPoints: 16 } },
  { name: 'quietPoints 256', opts: { quietPoints: 256 } },
  { name: 'relativeFloor 0.003', opts: { relativeFloor: 0.003 } },
  { name: 'relativeFloor 0.03', opts: { relativeFloor: 0.03 } },
  { name: 'seasonalGain 0.6', opts: { seasonalGain: 0.6 } },
  { name: 'seasonalGain 0.95', opts: { seasonalGain: 0.95 } },
  { name: 'seasons off', opts: { seasonsS: [] } },
  { name: 'probation ≤ 500 points', opts: { probation: { maxPoints: 500 } } },
  { name: 'probation ≤ 2000 points', opts: { probation: { maxPoints: 2000 } } },
  { name: 'historyPoints 2048', opts: { historyPoints: 2048 } },
  { name: 'historyPoints 32768', opts: { historyPoints: 32_768 } },
]

const events = replayEvents

async function detections(s: CorpusSeries, opts: AnomalyOptions): Promise<number[]> {
  const { alerts } = await replay(events(s), { detectors: [], series: new AnomalyDetector(opts) })
  return alerts.map((a) => Date.parse(a.fired_at) * 1000)
}

async function main() {
  const corpus = buildCorpus()
  const rows: Record<string, unknown>[] = []
  for (const v of VARIANTS) {
    const t0 = performance.now()
    const scored: { s: CorpusSeries; detectionsUs: number[] }[] = []
    for (const s of corpus) scored.push({ s, detectionsUs: await detections(s, v.opts) })
    const part = (split: string) =>
      scoreCorpus(
        scored
          .filter((x) => split === 'all' || x.s.split === split)
          .map((x) => ({
            name: x.s.name,
            timestampsUs: x.s.timestampsUs,
            windows: x.s.windows,
            detectionsUs: x.detectionsUs,
          })),
      )
    const [tuning, heldOut] = [part('tuning'), part('held-out')]
    const row = {
      variant: v.name,
      tuning: Math.round(tuning.normalized * 10) / 10,
      heldOut: Math.round(heldOut.normalized * 10) / 10,
      tuningDetected: `${tuning.detected}/${tuning.windows}`,
      heldOutDetected: `${heldOut.detected}/${heldOut.windows}`,
      tuningFalse: tuning.falsePositives,
      heldOutFalse: heldOut.falsePositives,
      seconds: Math.round((performance.now() - t0) / 100) / 10,
    }
    rows.push(row)
    process.stdout.write(
      `${v.name.padEnd(26)} tuning ${String(row.tuning).padStart(6)} (${row.tuningDetected}, ${row.tuningFalse} false)   ` +
        `held-out ${String(row.heldOut).padStart(6)} (${row.heldOutDetected}, ${row.heldOutFalse} false)\n`,
    )
  }

  // speed: the 20 000-point series, five rounds, series detector alone
  const long = corpus.filter((s) => s.values.length >= 20_000)
  const speed: Record<string, unknown>[] = []
  for (const s of long) {
    const ev = events(s)
    const ms: number[] = []
    for (let round = 0; round < 5; round++) {
      const t0 = performance.now()
      await replay(ev, { detectors: [], series: new AnomalyDetector() })
      ms.push(performance.now() - t0)
    }
    ms.sort((a, b) => a - b)
    speed.push({
      series: s.name,
      points: s.values.length,
      medianMs: Math.round(ms[2]!),
      minMs: Math.round(ms[0]!),
    })
  }
  process.stdout.write(
    `\nreplay speed: ${speed.map((x) => `${x.series} ${x.points} points ${x.medianMs} ms`).join('; ')}\n`,
  )

  const machine = machineInfo()
  writeFileSync(
    'bench/results/corpus-sensitivity.json',
    `${formatJson({ machine, variants: rows, speed })}\n`,
  )
  const md = [
    '# Generic detector: sensitivity of the window score to its parameters',
    '',
    `${machine.date}, ${machine.cpu} (${machine.cores} cores), ${machine.node}. One parameter changed at a time;`,
    'window score (NAB standard profile, 0 = never alerts, 100 = perfect) on the tuning and the held-out part.',
    '',
    '| variant | tuning | held-out | tuning detected | held-out detected | tuning false alerts | held-out false alerts |',
    '|---|---|---|---|---|---|---|',
    ...rows.map(
      (r) =>
        `| ${r.variant} | ${r.tuning} | ${r.heldOut} | ${r.tuningDetected} | ${r.heldOutDetected} | ${r.tuningFalse} | ${r.heldOutFalse} |`,
    ),
    '',
    `Replay speed (series detector in-process, median of 5): ${speed.map((x) => `${x.series} (${x.points} points) ${x.medianMs} ms`).join(', ')}.`,
    '',
  ].join('\n')
  writeFileSync('bench/results/corpus-sensitivity.md', md)
}

await main()
