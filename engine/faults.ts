/**
 * Scheduled fault injection for evaluation and demos. A schedule is a list of windows relative to the
 * engine's start; every window is also ground truth (`groundTruth()`, `groundTruthNdjson()`), so
 * detectors can be scored against what was really injected.
 *
 * What each fault does, its parameters and defaults: contract/faults.ts (the README's table is
 * generated from it).
 */
import { readFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { BreakidError, InvalidInputError } from '../core/errors.ts'
import {
  FAULT_TYPES,
  type FaultParams,
  type FaultType,
  faultParamSpecs,
  isFaultType,
  type ParamSpec,
  STALL_STAGES,
  type StallStage,
} from '../contract/faults.ts'
import type { Tensor } from './tensors.ts'

export interface FaultWindow extends FaultParams {
  type: FaultType
  /** offset from engine start, ms */
  startMs: number
  endMs: number
}

/** The request failure an `error_burst` window injects: answered 500, span status server_error. */
export class InjectedFaultError extends BreakidError {
  constructor() {
    super('injected fault (error_burst)', { code: 'BREAKID_INJECTED_FAULT' })
  }
}

/** Checks one parameter value against its spec; the error names the fault and the parameter. */
function checkParam(type: FaultType, name: string, spec: ParamSpec, value: unknown): number | StallStage {
  if (spec.kind === 'stage') {
    if (typeof value === 'string' && (STALL_STAGES as readonly string[]).includes(value)) {
      return value as StallStage
    }
    throw new InvalidInputError(
      `fault ${type}: ${name} must be one of ${STALL_STAGES.join(', ')}, got ${JSON.stringify(value)}`,
    )
  }
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  if (
    typeof n !== 'number' ||
    !Number.isFinite(n) ||
    n < spec.min ||
    (spec.max !== undefined && n > spec.max) ||
    (spec.integer && !Number.isInteger(n))
  ) {
    const range = `${spec.integer ? 'an integer' : 'a number'} in [${spec.min}, ${spec.max ?? '∞'}]`
    throw new InvalidInputError(`fault ${type}: ${name} must be ${range}, got ${JSON.stringify(value)}`)
  }
  return n
}

/** Validates a window: known type, 0 ≤ start < end, only the type's parameters, each in range. */
function validateWindow(w: FaultWindow): void {
  if (!isFaultType(w.type)) {
    throw new InvalidInputError(`unknown fault type "${String(w.type)}"; known: ${FAULT_TYPES.join(', ')}`)
  }
  if (!(Number.isFinite(w.startMs) && Number.isFinite(w.endMs) && w.endMs > w.startMs && w.startMs >= 0)) {
    throw new InvalidInputError(`fault ${w.type}: window must satisfy 0 <= start < end`)
  }
  const specs = faultParamSpecs(w.type)
  for (const [k, v] of Object.entries(w)) {
    if (k === 'type' || k === 'startMs' || k === 'endMs' || v === undefined) continue
    const spec = specs[k as keyof FaultParams]
    if (!spec) {
      const known = Object.keys(specs).join(', ')
      throw new InvalidInputError(`fault ${w.type}: unknown parameter "${k}" (takes ${known})`)
    }
    checkParam(w.type, k, spec, v)
  }
}

/** The window's parameters with defaults filled in (what is really injected). */
export function faultParams(w: FaultWindow): FaultParams {
  const out: Record<string, number | string> = {}
  for (const [k, spec] of Object.entries(faultParamSpecs(w.type))) {
    out[k] = w[k as keyof FaultParams] ?? spec.default
  }
  return out as FaultParams
}

export interface GroundTruthEntry {
  type: FaultType
  startEpochMs: number
  endEpochMs: number
  params: FaultParams
}

// The memory_leak fault's retained chunks. Module-level on purpose: a leak is process state, it
// outlives any one request or engine object, as real leaks (caches, listeners, closures) do.
const leaked: number[][] = []
let leakedBytesTotal = 0
/** JS doubles per retained chunk: 128 KiB each, so large leaks are many arrays, never one huge one */
const LEAK_CHUNK_DOUBLES = 16_384

/** Bytes the memory_leak fault retains right now. */
export function leakedBytes(): number {
  return leakedBytesTotal
}

/** Drops everything memory_leak retained (the next GC returns it). */
export function releaseLeakedMemory(): void {
  leaked.length = 0
  leakedBytesTotal = 0
}

export class FaultSchedule {
  private origin = Date.now()
  /** error_burst: accumulated failure credit, so exactly `rate` of the requests fail */
  private errorCredit = 0
  /** slow_serialization: bytes stringified beyond the response itself, in total */
  overheadBytes = 0

  constructor(readonly windows: readonly FaultWindow[] = []) {
    for (const w of windows) validateWindow(w)
  }

  /** the schedule's time zero (the engine calls this when it starts serving) */
  startClock(nowMs = Date.now()): void {
    this.origin = nowMs
  }

  active(type: FaultType, nowMs = Date.now()): FaultWindow | undefined {
    const t = nowMs - this.origin
    return this.windows.find((w) => w.type === type && t >= w.startMs && t < w.endMs)
  }

  /** the injected windows in absolute epoch milliseconds, with their effective parameters */
  groundTruth(): GroundTruthEntry[] {
    return this.windows.map((w) => ({
      type: w.type,
      startEpochMs: this.origin + w.startMs,
      endEpochMs: this.origin + w.endMs,
      params: faultParams(w),
    }))
  }

  /** Ground truth as NDJSON: one `{"type","params","start","end"}` line per window (ISO 8601 times). */
  groundTruthNdjson(): string {
    return this.groundTruth()
      .map((g) =>
        JSON.stringify({
          type: g.type,
          params: g.params,
          start: new Date(g.startEpochMs).toISOString(),
          end: new Date(g.endEpochMs).toISOString(),
        }),
      )
      .map((line) => `${line}\n`)
      .join('')
  }

  // ----- hooks the engine calls on the request path; each is a no-op outside its window -----

  /** memory_leak: retain memory for this request inside the window; let it go once the window is over. */
  onRequest(): void {
    const w = this.active('memory_leak')
    if (!w) {
      if (leakedBytesTotal > 0) releaseLeakedMemory()
      return
    }
    const p = faultParams(w)
    const bytes = p.bytesPerRequest!
    if (leakedBytesTotal + bytes > p.maxBytes!) return
    // JS arrays of doubles live on the V8 heap, so the leak shows in heap_used_bytes as well as rss_bytes
    for (let left = Math.ceil(bytes / 8); left > 0; left -= LEAK_CHUNK_DOUBLES) {
      leaked.push(new Array<number>(Math.min(left, LEAK_CHUNK_DOUBLES)).fill(leaked.length + 0.5))
    }
    leakedBytesTotal += bytes
  }

  /** error_burst: throws InjectedFaultError for `rate` of the requests (evenly spread, deterministic). */
  injectError(): void {
    const w = this.active('error_burst')
    if (!w) return
    this.errorCredit += faultParams(w).rate!
    if (this.errorCredit >= 1 - 1e-9) {
      this.errorCredit -= 1
      throw new InjectedFaultError()
    }
  }

  /**
   * stage_stall: a wait of `delayMs` when `stage` is the stalled one, else nothing to wait for.
   * Callers await only a returned promise: even `await undefined` yields to the other requests'
   * continuations, and live their work (another request's serialization) then counted in this
   * request's postprocess time.
   */
  stall(stage: StallStage): Promise<void> | undefined {
    const w = this.active('stage_stall')
    if (!w) return undefined
    const p = faultParams(w)
    return p.stage === stage && p.delayMs! > 0 ? sleep(p.delayMs!) : undefined
  }

  /** input_drift: shifts every FP32 input value by `shift` standard deviations of that input. */
  driftInputs(inputs: Tensor[]): Tensor[] {
    const w = this.active('input_drift')
    if (!w) return inputs
    const shift = faultParams(w).shift!
    return inputs.map((t) => {
      if (!(t.data instanceof Float32Array) || t.data.length === 0) return t // token ids cannot drift by σ
      const src = t.data
      let sum = 0
      let sq = 0
      for (const v of src) {
        sum += v
        sq += v * v
      }
      const mean = sum / src.length
      // a constant input has σ 0; shift by whole units then, so the drift is still visible
      const sigma = Math.sqrt(Math.max(0, sq / src.length - mean * mean)) || 1
      const data = new Float32Array(src.length)
      for (let i = 0; i < src.length; i++) data[i] = src[i]! + shift * sigma
      return { ...t, data }
    })
  }

  /** output_drift: flattens each 2-D FP32 output row toward uniform, so confidence drops. */
  driftOutputs(outputs: Tensor[]): Tensor[] {
    const w = this.active('output_drift')
    if (!w) return outputs
    const factor = faultParams(w).factor!
    return outputs.map((t) => {
      if (!(t.data instanceof Float32Array) || t.shape.length !== 2 || t.data.length === 0) return t
      const width = t.data.length / (t.shape[0] || 1)
      const data = new Float32Array(t.data.length)
      for (let i = 0; i < data.length; i++) data[i] = (1 - factor) * t.data[i]! + factor / width
      return { ...t, data }
    })
  }

  /**
   * slow_serialization (re-stringifies `payload` `factor` times, then waits `delayMs`) and stage_stall
   * of serialize; a promise only when there is something to wait for (see `stall`).
   */
  serializeOverhead(payload: unknown): Promise<void> | undefined {
    const w = this.active('slow_serialization')
    let delayMs = 0
    if (w) {
      const p = faultParams(w)
      let bytes = 0
      for (let i = 0; i < p.factor!; i++) bytes += JSON.stringify(payload).length
      this.overheadBytes += bytes // a use of the result, so the work cannot be optimised away
      delayMs = p.delayMs!
    }
    if (delayMs <= 0) return this.stall('serialize')
    return sleep(delayMs).then(() => this.stall('serialize'))
  }

  /** batch_size_misconfig: the batch size limit while the window is active (the batcher's override). */
  maxBatchSizeOverride(): number | undefined {
    const w = this.active('batch_size_misconfig')
    return w ? faultParams(w).maxBatchSize : undefined
  }
}

/**
 * Parses `type@startS-endS[:N | :k=v,k=v]`, e.g. `data_starvation@25-40:80`,
 * `stage_stall@10-20:stage=serialize,delayMs=30`. A bare `N` sets the type's first parameter.
 */
export function parseFaultSpec(spec: string): FaultWindow {
  const m = /^([a-z_]+)@(\d+(?:\.\d+)?)-(\d+(?:\.\d+)?)(?::(.+))?$/.exec(spec.trim())
  if (!m) {
    throw new InvalidInputError(`bad fault spec "${spec}": expected type@startS-endS[:N | :param=value,…]`)
  }
  const type = m[1]!
  if (!isFaultType(type)) {
    throw new InvalidInputError(`unknown fault type "${type}"; known: ${FAULT_TYPES.join(', ')}`)
  }
  const w: FaultWindow = { type, startMs: Number(m[2]) * 1000, endMs: Number(m[3]) * 1000 }
  const specs = faultParamSpecs(type)
  const rest = m[4]
  if (rest !== undefined) {
    const raw: Record<string, string> = {}
    if (/^-?\d+(?:\.\d+)?$/.test(rest)) {
      raw[Object.keys(specs)[0]!] = rest
    } else {
      for (const kv of rest.split(',')) {
        const eq = kv.indexOf('=')
        if (eq <= 0) throw new InvalidInputError(`bad fault spec "${spec}": "${kv}" is not param=value`)
        raw[kv.slice(0, eq).trim()] = kv.slice(eq + 1).trim()
      }
    }
    for (const [k, v] of Object.entries(raw)) {
      const ps = specs[k as keyof FaultParams]
      if (!ps) {
        throw new InvalidInputError(
          `fault ${type}: unknown parameter "${k}" (takes ${Object.keys(specs).join(', ')})`,
        )
      }
      ;(w as unknown as Record<string, unknown>)[k] = checkParam(type, k, ps, v)
    }
  }
  validateWindow(w)
  return w
}

/**
 * Parses a scenario: `{"faults":[{"type","startS","endS", ...params}]}`. `source` names the file in
 * errors. Every problem is an InvalidInputError naming the entry.
 */
export function parseScenario(doc: unknown, source = 'scenario'): FaultWindow[] {
  if (typeof doc !== 'object' || doc === null || !Array.isArray((doc as { faults?: unknown }).faults)) {
    throw new InvalidInputError(`${source}: expected {"faults": [{"type", "startS", "endS", ...params}]}`)
  }
  return (doc as { faults: unknown[] }).faults.map((entry, i) => {
    const where = `${source}: faults[${i}]`
    if (typeof entry !== 'object' || entry === null || Array.isArray(entry)) {
      throw new InvalidInputError(`${where}: expected an object`)
    }
    const { type, startS, endS, ...params } = entry as Record<string, unknown>
    if (!isFaultType(type)) {
      throw new InvalidInputError(
        `${where}: unknown fault type ${JSON.stringify(type)}; known: ${FAULT_TYPES.join(', ')}`,
      )
    }
    if (typeof startS !== 'number' || typeof endS !== 'number') {
      throw new InvalidInputError(`${where}: startS and endS must be numbers (seconds from engine start)`)
    }
    const w: FaultWindow = { type, startMs: startS * 1000, endMs: endS * 1000 }
    const specs = faultParamSpecs(type)
    for (const [k, v] of Object.entries(params)) {
      const ps = specs[k as keyof FaultParams]
      if (!ps) {
        throw new InvalidInputError(
          `${where}: fault ${type} has no parameter "${k}" (takes ${Object.keys(specs).join(', ')})`,
        )
      }
      if (ps.kind === 'number' && typeof v !== 'number') {
        throw new InvalidInputError(`${where}: ${k} must be a number, got ${JSON.stringify(v)}`)
      }
      try {
        ;(w as unknown as Record<string, unknown>)[k] = checkParam(type, k, ps, v)
      } catch (err) {
        throw new InvalidInputError(`${where}: ${(err as Error).message}`)
      }
    }
    try {
      validateWindow(w)
    } catch (err) {
      throw new InvalidInputError(`${where}: ${(err as Error).message}`)
    }
    return w
  })
}

/** Reads and parses a scenario file (JSON). */
export function loadScenarioFile(path: string): FaultWindow[] {
  let text: string
  try {
    text = readFileSync(path, 'utf8')
  } catch (err) {
    throw new InvalidInputError(`--scenario ${path}: cannot read (${(err as Error).message})`, err)
  }
  let doc: unknown
  try {
    doc = JSON.parse(text)
  } catch (err) {
    throw new InvalidInputError(`--scenario ${path}: not JSON (${(err as Error).message})`, err)
  }
  return parseScenario(doc, path)
}

/** The windows from `--fault` flags and an optional `--scenario` file, together. */
export function faultsFromFlags(
  faultFlags: readonly string[] | undefined,
  scenarioPath?: string,
): FaultWindow[] {
  const out = (faultFlags ?? []).map(parseFaultSpec)
  if (scenarioPath) out.push(...loadScenarioFile(scenarioPath))
  return out
}
