/**
 * Where detectors' learned state lives between runs, so a detector consumer that restarts — or takes
 * over partitions after a rebalance — resumes with its baselines and open alerts instead of relearning
 * through a warm-up (during which it could neither detect a break nor resolve an alert it had raised).
 *
 * Layout: one row per (scope, detector type, key) in ClickHouse's `detector_state` table, the newest
 * checkpoint winning (ReplacingMergeTree(updated_at); readers take argMax). `scope` is the consumer
 * group. A detector whose exportState() returns `{ keys: { <key>: … }, …rest }` is stored as one row
 * per key plus one row `*` for the rest; any other shape is one row `*`. Per-key rows let several
 * members of one group share a table: each member writes only the keys whose state changed since its
 * last checkpoint, so an instance a member stopped seeing (it moved to another member) is not
 * overwritten with stale state, and a member that restarts loads every key — including those it
 * takes over.
 *
 * Restore calls `importState` once per detector with the merged rows; a row that does not parse is
 * skipped (counted), never fatal: the detector then learns that key from scratch.
 */
import type { ClickHouse } from '../store/client.ts'
import { ident } from '../store/client.ts'
import { type DetectorStateRow, detectorStateTable } from '../store/tables.ts'
import { insertRecords } from '../store/writer.ts'
import { isRecord } from './baseline.ts'
import type { Detector } from './detector.ts'

/** the field of an exported state whose entries are stored as one row per key */
export const PER_KEY_FIELD = 'keys'
/** the row key of a detector's state outside PER_KEY_FIELD */
export const WHOLE_STATE_KEY = '*'

export interface StoredState {
  detectorType: string
  key: string
  /** JSON */
  state: string
}

export interface DetectorStateStore {
  /** the newest state of every (detector type, key) of `scope` */
  load(scope: string): Promise<StoredState[]>
  save(scope: string, rows: StoredState[]): Promise<void>
}

export class ClickHouseStateStore implements DetectorStateStore {
  private lastUpdatedUs = 0

  constructor(private readonly ch: ClickHouse) {}

  async load(scope: string): Promise<StoredState[]> {
    const rs = await this.ch.client.query({
      query:
        `SELECT detector_type, key, argMax(state, updated_at) AS state ` +
        `FROM ${ident(this.ch.database)}.${ident(detectorStateTable.name)} ` +
        `WHERE scope = {scope:String} GROUP BY detector_type, key`,
      query_params: { scope },
      format: 'JSONEachRow',
    })
    const rows = await rs.json<{ detector_type: string; key: string; state: string }>()
    return rows.map((r) => ({ detectorType: r.detector_type, key: r.key, state: r.state }))
  }

  async save(scope: string, rows: StoredState[]): Promise<void> {
    // strictly increasing within the process, so two checkpoints in one microsecond still order
    this.lastUpdatedUs = Math.max(Date.now() * 1000, this.lastUpdatedUs + 1)
    const updated_at_us = this.lastUpdatedUs
    const records: DetectorStateRow[] = rows.map((r) => ({
      scope,
      detector_type: r.detectorType,
      key: r.key,
      state: r.state,
      updated_at_us,
    }))
    await insertRecords(this.ch, detectorStateTable, records)
  }
}

/** For replays, the evaluation harness and tests that need no ClickHouse. */
export class MemoryStateStore implements DetectorStateStore {
  readonly rows = new Map<string, StoredState>()
  async load(scope: string): Promise<StoredState[]> {
    return [...this.rows.entries()].filter(([k]) => k.startsWith(`${scope}\u0000`)).map(([, v]) => v)
  }
  async save(scope: string, rows: StoredState[]): Promise<void> {
    for (const r of rows) this.rows.set(`${scope}\u0000${r.detectorType}\u0000${r.key}`, { ...r })
  }
}

export interface CheckpointOptions {
  /** checkpoint after this much event time (µs of telemetry timestamps) since the last. Default 10 s */
  everyEventUs?: number
  /** …or after this many records since the last, whichever comes first. Default 5000 */
  everyRecords?: number
}

export const CHECKPOINT_DEFAULTS: Readonly<Required<CheckpointOptions>> = Object.freeze({
  everyEventUs: 10_000_000,
  everyRecords: 5_000,
})

/**
 * Restores and checkpoints the state of a set of detectors in one scope. Event time, not wall time,
 * paces the checkpoints, so a replay at full speed checkpoints as often per telemetry-second as live.
 */
export class DetectorCheckpoints {
  private readonly o: Required<CheckpointOptions>
  /** JSON last written or restored per `${type}\0${key}`: only changed keys are written */
  private readonly written = new Map<string, string>()
  private recordsSince = 0
  private lastCheckpointEventUs: number | undefined
  private maxEventUs = 0
  readonly stats = { restoredKeys: 0, unreadableRows: 0, checkpoints: 0, rowsWritten: 0 }

  constructor(
    private readonly store: DetectorStateStore,
    private readonly scope: string,
    private readonly detectors: readonly Detector[],
    opts: CheckpointOptions = {},
  ) {
    this.o = { ...CHECKPOINT_DEFAULTS, ...opts }
  }

  /** Loads the scope's newest state into every detector that can import it. */
  async restore(): Promise<void> {
    this.apply(await this.store.load(this.scope))
    // what the detectors hold now counts as written: untouched keys are never rewritten
    for (const row of this.snapshot()) this.written.set(`${row.detectorType}\u0000${row.key}`, row.state)
  }

  /** Every stored row of the scope (a member loads them once and applies them per instance, see consumer.ts). */
  load(): Promise<StoredState[]> {
    return this.store.load(this.scope)
  }

  /** Imports `rows` into the detectors (merged into what they hold); the keys imported count as written. */
  apply(rows: StoredState[]): void {
    const imported = new Set(rows.map((r) => `${r.detectorType}\u0000${r.key}`))
    for (const d of this.detectors) {
      if (!d.importState) continue
      let whole: Record<string, unknown> = {}
      const keys: Record<string, unknown> = {}
      let any = false
      for (const r of rows) {
        if (r.detectorType !== d.type) continue
        let parsed: unknown
        try {
          parsed = JSON.parse(r.state)
        } catch {
          this.stats.unreadableRows++
          continue
        }
        any = true
        if (r.key === WHOLE_STATE_KEY) {
          if (isRecord(parsed)) whole = parsed
        } else keys[r.key] = parsed
        this.stats.restoredKeys++
      }
      if (!any) continue
      d.importState(Object.keys(keys).length > 0 ? { ...whole, [PER_KEY_FIELD]: keys } : whole)
    }
    for (const row of this.snapshot()) {
      const k = `${row.detectorType}\u0000${row.key}`
      if (imported.has(k)) this.written.set(k, row.state)
    }
  }

  /**
   * The rows of `rows` that belong to one instance: keyed by the instance alone, or as
   * `<fleet>/<instance>` or `<fleet>/<instance>/…` (instance names may contain `/` themselves).
   */
  static ofInstance(rows: readonly StoredState[], fleet: string, instance: string): StoredState[] {
    const prefix = `${fleet}/${instance}`
    return rows.filter((r) => r.key === instance || r.key === prefix || r.key.startsWith(`${prefix}/`))
  }

  /** Counts one record of event time `eventUs`; true when a checkpoint is due. */
  note(eventUs: number): boolean {
    this.recordsSince++
    if (eventUs > this.maxEventUs) this.maxEventUs = eventUs
    this.lastCheckpointEventUs ??= this.maxEventUs
    return (
      this.recordsSince >= this.o.everyRecords ||
      this.maxEventUs - this.lastCheckpointEventUs >= this.o.everyEventUs
    )
  }

  /** Writes every key whose state changed since the last checkpoint; returns the rows written. */
  async checkpoint(): Promise<number> {
    const changed = this.snapshot().filter(
      (r) => this.written.get(`${r.detectorType}\u0000${r.key}`) !== r.state,
    )
    if (changed.length > 0) await this.store.save(this.scope, changed)
    for (const r of changed) this.written.set(`${r.detectorType}\u0000${r.key}`, r.state)
    this.recordsSince = 0
    this.lastCheckpointEventUs = this.maxEventUs
    this.stats.checkpoints++
    this.stats.rowsWritten += changed.length
    return changed.length
  }

  private snapshot(): StoredState[] {
    const out: StoredState[] = []
    for (const d of this.detectors) {
      if (!d.exportState) continue
      const { [PER_KEY_FIELD]: keys, ...rest } = d.exportState()
      if (isRecord(keys)) {
        for (const [key, value] of Object.entries(keys)) {
          out.push({ detectorType: d.type, key, state: JSON.stringify(value) })
        }
        if (Object.keys(rest).length > 0) {
          out.push({ detectorType: d.type, key: WHOLE_STATE_KEY, state: JSON.stringify(rest) })
        }
      } else {
        const whole = keys === undefined ? rest : { ...rest, [PER_KEY_FIELD]: keys }
        out.push({ detectorType: d.type, key: WHOLE_STATE_KEY, state: JSON.stringify(whole) })
      }
    }
    return out
  }
}
