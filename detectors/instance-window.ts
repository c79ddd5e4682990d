/**
 * What a detector remembers about the spans of one instance between two hardware samples: per-stage
 * durations (for "which stage is to blame") and the request ids behind them (exemplars).
 */
import type { Span } from '../contract/records.ts'
import { STAGES, type Stage } from '../contract/vocabulary.ts'
import { isRecord, RollingBaseline, type RollingBaselineState } from './baseline.ts'

/** Plain-JSON state: what the window learned (stage baselines, model mix), not the spans in flight. */
export interface InstanceSpanWindowState {
  stageBaselines: Partial<Record<Stage, RollingBaselineState>>
  modelCounts: Record<string, number>
}

const EXEMPLAR_POOL = 256

export class InstanceSpanWindow {
  /** spans seen since the last `roll()` (bounded: the newest EXEMPLAR_POOL are kept) */
  private current: Span[] = []
  /** spans of the last closed interval, kept for exemplars */
  private keep: Span[] = []
  /** per-stage baseline of the median stage duration of each interval (µs) */
  readonly stageBaselines = new Map<Stage, RollingBaseline>(
    STAGES.map((s) => [s, new RollingBaseline(60, 5)]),
  )
  private readonly modelCounts = new Map<string, number>()
  lastMedians = new Map<Stage, number>()

  add(span: Span): void {
    if (this.current.length >= EXEMPLAR_POOL) this.current.shift()
    this.current.push(span)
    this.modelCounts.set(span.model, (this.modelCounts.get(span.model) ?? 0) + 1)
  }

  /** Close the interval: compute stage medians, feed the baselines unless `frozen`. */
  roll(frozen: boolean): void {
    this.lastMedians = new Map()
    if (this.current.length > 0) {
      for (const stage of STAGES) {
        const values = this.current.map((s) => s[`${stage}_us`]).sort((a, b) => a - b)
        const med = values[Math.floor(values.length / 2)]!
        this.lastMedians.set(stage, med)
        if (!frozen) this.stageBaselines.get(stage)!.push(med)
      }
    }
    this.keep = this.current
    this.current = []
  }

  /** The stage (compute excluded) that grew most against its baseline, with its ratio. */
  suspectStage(
    exclude: Stage[] = ['compute'],
  ): { stage: Stage; observedUs: number; baselineUs: number } | undefined {
    let best: { stage: Stage; observedUs: number; baselineUs: number; ratio: number } | undefined
    for (const stage of STAGES) {
      if (exclude.includes(stage)) continue
      const observed = this.lastMedians.get(stage)
      const base = this.stageBaselines.get(stage)!
      if (observed === undefined || !base.ready) continue
      const baselineUs = base.median()
      const ratio = observed / Math.max(baselineUs, 1)
      if (!best || ratio > best.ratio) best = { stage, observedUs: observed, baselineUs, ratio }
    }
    return best
  }

  /** Request ids of the slowest requests of the last interval in `stage`. */
  exemplars(stage: Stage, n = 3): string[] {
    return [...this.keep]
      .sort((a, b) => b[`${stage}_us`] - a[`${stage}_us`])
      .slice(0, n)
      .map((s) => s.request_id)
  }

  toState(): InstanceSpanWindowState {
    const stageBaselines: Partial<Record<Stage, RollingBaselineState>> = {}
    for (const [stage, b] of this.stageBaselines) stageBaselines[stage] = b.toState()
    return { stageBaselines, modelCounts: Object.fromEntries(this.modelCounts) }
  }

  static fromState(state: unknown): InstanceSpanWindow {
    const w = new InstanceSpanWindow()
    if (!isRecord(state)) return w
    const bases = isRecord(state.stageBaselines) ? state.stageBaselines : {}
    for (const stage of STAGES) {
      if (bases[stage] !== undefined)
        w.stageBaselines.set(stage, RollingBaseline.fromState(bases[stage], 60, 5))
    }
    const counts = isRecord(state.modelCounts) ? state.modelCounts : {}
    for (const [m, c] of Object.entries(counts)) if (typeof c === 'number' && c > 0) w.modelCounts.set(m, c)
    return w
  }

  /** the model this instance served most */
  dominantModel(): string {
    let best = '*'
    let count = 0
    for (const [m, c] of this.modelCounts) {
      if (c > count) {
        best = m
        count = c
      }
    }
    return best
  }
}
