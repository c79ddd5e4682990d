/**
 * The labelled corpus for the generic detector: FAMILIES × INSTANCES series (one per variant for
 * `clean`), generated
 * deterministically, written as CSV files (`timestamp,value`, what `breakid replay --file` reads)
 * with their anomaly windows in `labels.json` beside them, NAB-like:
 * `{ "traffic-0.csv": [["2026-01-09T10:00:00.000Z", "2026-01-09T11:30:00.000Z"], …] }`, and a
 * `manifest.json` with each series' family, split, windows' kinds and normal events.
 *
 * **Split, fixed before any tuning:** a series is *held-out* when its seed (1000 · (family index + 1)
 * + instance) is divisible by 3, or when its family is marked held-out (a kind of series the
 * detector was never tuned on at all: `gpu-power`, `hit-ratio`); every other series is *tuning*.
 * Thresholds may be tuned on the tuning part only; the held-out part is scored and reported, never
 * looked at series by series while tuning.
 */
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { Prng } from '../prng.ts'
import type { LabelledWindow } from '../window-score.ts'
import * as f from './families.ts'
import type { Draft } from './shapes.ts'

export type CorpusSplit = 'tuning' | 'held-out'

interface FamilySpec {
  name: string
  make: f.Family
  /** every instance held out */
  heldOut?: boolean
  /** instances (default INSTANCES_PER_FAMILY) */
  instances?: number
}

export const FAMILIES: readonly FamilySpec[] = [
  { name: 'traffic', make: f.traffic },
  { name: 'latency', make: f.latency },
  { name: 'cpu', make: f.cpu },
  { name: 'memory', make: f.memory },
  { name: 'disk', make: f.disk },
  { name: 'queue', make: f.queue },
  { name: 'errors', make: f.errors },
  { name: 'temperature', make: f.temperature },
  { name: 'flat', make: f.flat },
  { name: 'jobs', make: f.jobs },
  { name: 'network', make: f.network },
  { name: 'clean', make: f.clean, instances: f.CLEAN_INSTANCES },
  { name: 'irregular', make: f.irregular },
  { name: 'kpi-hourly', make: f.kpiHourly },
  { name: 'seasonal-break', make: f.seasonalBreak },
  { name: 'gpu-power', make: f.gpuPower, heldOut: true },
  { name: 'hit-ratio', make: f.hitRatio, heldOut: true },
]

export const INSTANCES_PER_FAMILY = 4

export const seedOf = (familyIndex: number, instance: number): number => 1000 * (familyIndex + 1) + instance

export function splitOf(seed: number, family: { heldOut?: boolean }): CorpusSplit {
  return family.heldOut || seed % 3 === 0 ? 'held-out' : 'tuning'
}

export interface CorpusWindow extends LabelledWindow {
  kind: string
}

export interface CorpusSeries {
  /** file name without extension, `<family>-<instance>` */
  name: string
  family: string
  seed: number
  split: CorpusSplit
  intervalS: number
  timestampsUs: number[]
  values: number[]
  /** the values as written (decimals) */
  decimals: number
  windows: CorpusWindow[]
  normal: { atUs: number; kind: string }[]
  description: string
}

const toUs = (s: number) => Math.round(s * 1000) * 1000

function fromDraft(name: string, family: string, seed: number, split: CorpusSplit, d: Draft): CorpusSeries {
  const timestampsUs = d.t.map(toUs)
  const scale = 10 ** d.decimals
  return {
    name,
    family,
    seed,
    split,
    intervalS: d.intervalS,
    timestampsUs,
    values: d.v.map((v) => Math.round(v * scale) / scale),
    decimals: d.decimals,
    windows: d.windows.map((w) => ({
      startUs: timestampsUs[w.start]!,
      endUs: timestampsUs[Math.min(w.end, timestampsUs.length - 1)]!,
      kind: w.kind,
    })),
    normal: d.normal.map((e) => ({
      atUs: timestampsUs[Math.min(e.at, timestampsUs.length - 1)]!,
      kind: e.kind,
    })),
    description: d.description,
  }
}

/** Every series of the corpus (optionally only one split or the families whose name contains `filter`). */
export function buildCorpus(opts: { split?: CorpusSplit; filter?: string } = {}): CorpusSeries[] {
  const out: CorpusSeries[] = []
  FAMILIES.forEach((fam, fi) => {
    if (opts.filter && !fam.name.includes(opts.filter)) return
    for (let i = 0; i < (fam.instances ?? INSTANCES_PER_FAMILY); i++) {
      const seed = seedOf(fi, i)
      const split = splitOf(seed, fam)
      if (opts.split && split !== opts.split) continue
      out.push(fromDraft(`${fam.name}-${i}`, fam.name, seed, split, fam.make(new Prng(seed), i)))
    }
  })
  return out
}

const iso = (us: number) => new Date(us / 1000).toISOString()

export function seriesCsv(s: CorpusSeries): string {
  const lines = ['timestamp,value']
  for (let i = 0; i < s.values.length; i++)
    lines.push(`${iso(s.timestampsUs[i]!)},${s.values[i]!.toFixed(s.decimals)}`)
  return `${lines.join('\n')}\n`
}

/** Writes `<name>.csv` per series, `labels.json` and `manifest.json` into `dir`; returns the CSV paths. */
export function writeCorpus(dir: string, series: readonly CorpusSeries[]): string[] {
  mkdirSync(dir, { recursive: true })
  const labels: Record<string, [string, string][]> = {}
  const manifest: Record<string, unknown> = {}
  const paths: string[] = []
  for (const s of series) {
    const file = `${s.name}.csv`
    const path = join(dir, file)
    writeFileSync(path, seriesCsv(s))
    paths.push(path)
    labels[file] = s.windows.map((w) => [iso(w.startUs), iso(w.endUs)])
    manifest[file] = {
      family: s.family,
      seed: s.seed,
      split: s.split,
      interval_s: s.intervalS,
      points: s.values.length,
      description: s.description,
      windows: s.windows.map((w) => ({ start: iso(w.startUs), end: iso(w.endUs), kind: w.kind })),
      normal: s.normal.map((e) => ({ at: iso(e.atUs), kind: e.kind })),
    }
  }
  writeFileSync(join(dir, 'labels.json'), `${JSON.stringify(labels, null, 1)}\n`)
  writeFileSync(join(dir, 'manifest.json'), `${JSON.stringify(manifest, null, 1)}\n`)
  return paths
}
