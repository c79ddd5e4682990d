/**
 * Scheduled fault injection for evaluation and demos. A schedule is a list of windows relative to the
 * engine's start; every window is also ground truth (`groundTruth()`), so detectors can be scored
 * against what was really injected.
 */
import { InvalidInputError } from '../ingest/errors.ts'

export const FAULT_TYPES = ['data_starvation'] as const
export type FaultType = (typeof FAULT_TYPES)[number]

export interface FaultWindow {
  type: FaultType
  /** offset from engine start, ms */
  startMs: number
  endMs: number
  /** data_starvation: extra preprocessing time per request, ms */
  delayMs?: number
}

export class FaultSchedule {
  private origin = Date.now()

  constructor(readonly windows: readonly FaultWindow[] = []) {
    for (const w of windows) {
      if (!FAULT_TYPES.includes(w.type)) throw new InvalidInputError(`unknown fault type ${w.type}`)
      if (!(w.endMs > w.startMs && w.startMs >= 0)) {
        throw new InvalidInputError(`fault ${w.type}: window must satisfy 0 <= start < end`)
      }
    }
  }

  /** the schedule's time zero (the engine calls this when it starts serving) */
  startClock(nowMs = Date.now()): void {
    this.origin = nowMs
  }

  active(type: FaultType, nowMs = Date.now()): FaultWindow | undefined {
    const t = nowMs - this.origin
    return this.windows.find((w) => w.type === type && t >= w.startMs && t < w.endMs)
  }

  /** the injected windows in absolute epoch milliseconds */
  groundTruth(): { type: FaultType; startEpochMs: number; endEpochMs: number }[] {
    return this.windows.map((w) => ({
      type: w.type,
      startEpochMs: this.origin + w.startMs,
      endEpochMs: this.origin + w.endMs,
    }))
  }
}

/** Parses `type@startS-endS[:delayMs]`, e.g. `data_starvation@25-40:80`. */
export function parseFaultSpec(spec: string): FaultWindow {
  const m = /^([a-z_]+)@(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?::(\d+(?:\.\d+)?))?$/.exec(spec.trim())
  if (!m) throw new InvalidInputError(`bad fault spec "${spec}": expected type@startS-endS[:delayMs]`)
  const type = m[1] as FaultType
  if (!FAULT_TYPES.includes(type)) {
    throw new InvalidInputError(`unknown fault type "${m[1]}"; known: ${FAULT_TYPES.join(', ')}`)
  }
  const w: FaultWindow = { type, startMs: Number(m[2]) * 1000, endMs: Number(m[3]) * 1000 }
  if (m[4] !== undefined) w.delayMs = Number(m[4])
  return w
}
