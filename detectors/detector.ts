/**
 * The detector kernel: the contract every detector implements, the settings every detector declares,
 * and one keyed-detector base that owns what they all share.
 *
 * A detector sees records in event-time order and returns the alert state changes they cause.
 * Detectors are pure computation (no I/O), driven by the telemetry's own timestamps, so the same code
 * gives the same alerts in the live consumer, in replay and in the evaluation harness.
 *
 * What the base (`KeyedDetector`) owns, so no detector repeats it:
 * - per-key state (a key is an instance, instance + model, fleet + model …), made on first use;
 * - an event-time warm-up per key (`warmupMs`): a key fires only after it has been seen that long,
 *   so the first seconds of a process (JIT, first batches, load ramping up) never page on their own;
 * - the snapshot frame `{ keys: { <key>: … } }` (one row per key in the state store) and its restore;
 * - the pending instances the inhibitor asks for;
 * - the end of alerts nobody evaluates any more: `close` (shutdown) and `sweepStale`.
 * A subclass says what one key's state is, how it reads and writes as JSON, and which alert
 * lifecycles it holds.
 */
import type { Alert, HwSample, Span } from '../contract/records.ts'
import { InvalidInputError } from '../core/errors.ts'
import type { AlertType } from '../contract/vocabulary.ts'
import { isRecord } from './baseline.ts'
import { type ModelBuckets, modelBucketsFromJson, modelBucketsToJson } from './stats.ts'
import { AlertLifecycle, type AlertEvidence, type LifecycleOptions } from './lifecycle.ts'

/** What a detector reads, for `breakid detectors` and the README. */
export interface DetectorReads {
  spans: readonly (keyof Span)[]
  hw: readonly (keyof HwSample)[]
}

export interface Detector {
  /** the alert type it raises (contract/vocabulary.ts; tests may use probes of their own) */
  readonly type: string
  /** what it reads (every kernel detector says; the registry says it for the others) */
  readonly reads?: DetectorReads
  /** the detector's effective settings (defaults overridden by its options) */
  readonly settings?: Readonly<Record<string, unknown>>
  onSpan?(span: Span): Alert[]
  onHwSample?(sample: HwSample): Alert[]
  /**
   * Plain-JSON snapshot of everything the detector learned (baselines, alert lifecycles), so a
   * consumer that restarts or takes over partitions resumes instead of relearning. Must round-trip
   * through JSON.stringify/parse.
   */
  exportState?(): Record<string, unknown>
  /** Restores a snapshot taken by exportState (of the same detector type); ignores what it cannot read. */
  importState?(state: Record<string, unknown>): void
  /**
   * Instances where this detector's condition holds but has not fired yet (pending). Causes implement
   * it, so the symptoms of a cause about to fire wait for it (inhibit.ts).
   */
  pendingInstances?(): Iterable<string>
  /** Resolves every open alert now with `reason` and leaves every lifecycle inactive (shutdown). */
  close?(nowUs: number, reason: 'shutdown'): Alert[]
  /** Resolves (`stale`) every firing alert whose key was last evaluated before `nowUs − staleAfterUs`. */
  sweepStale?(nowUs: number, staleAfterUs: number): Alert[]
  /** Things a detector wants said once (e.g. that it is off for lack of input); the caller logs them. */
  drainNotices?(): string[]
}

// ----- settings -----

/** One setting of a detector: its default, its valid range and what it means. */
export type SettingSpec =
  | { kind: 'number'; default: number; min?: number; max?: number; integer?: boolean; doc: string }
  /** numbers by name (per-model SLOs); `default` is usually empty */
  | { kind: 'map'; default: Readonly<Record<string, number>>; min?: number; doc: string }
  | { kind: 'list'; default: readonly string[]; doc: string }

export type SettingsSpec = Readonly<Record<string, SettingSpec>>

/** The plain values of a spec, e.g. `{ ratio: number, … }`. */
export type SettingsOf<S extends SettingsSpec> = {
  -readonly [K in keyof S]: S[K] extends { kind: 'number' }
    ? number
    : S[K] extends { kind: 'map' }
      ? Readonly<Record<string, number>>
      : readonly string[]
}

const num = (d: number, doc: string, more: { min?: number; max?: number; integer?: boolean } = {}) =>
  ({ kind: 'number', default: d, min: 0, ...more, doc }) as const

/** Spec helpers: a number ≥ 0, a whole number ≥ 1, a ratio in [0, 1]. */
export const setting = {
  number: num,
  count: (d: number, doc: string, min = 1) => num(d, doc, { min, integer: true }),
  ratio: (d: number, doc: string) => num(d, doc, { max: 1 }),
  map: (doc: string) => ({ kind: 'map', default: {}, min: 0, doc }) as const,
  list: (d: readonly string[], doc: string) => ({ kind: 'list', default: d, doc }) as const,
}

/** The settings every keyed detector has, merged into its own spec. */
export const LIFECYCLE_SETTINGS = {
  pendingSamples: setting.count(2, 'consecutive breaching evaluations before an alert fires (hold time)'),
  resolveSamples: setting.count(3, 'consecutive clear evaluations before a firing alert resolves'),
  warmupMs: setting.number(
    15_000,
    'event time a key must have been seen before it may fire (the first seconds of a process are no baseline)',
  ),
} as const satisfies SettingsSpec

/** The options a detector's constructor takes: any of its settings. */
export type OptionsOf<S extends SettingsSpec> = Partial<SettingsOf<S>>

/** A spec's defaults as plain values. */
export function defaultsOf<S extends SettingsSpec>(spec: S): SettingsOf<S> {
  return Object.fromEntries(Object.entries(spec).map(([k, v]) => [k, v.default])) as SettingsOf<S>
}

/** Why a setting does not validate, naming it (a user's input error: the CLI exits 2 with it). */
export class SettingError extends InvalidInputError {}

/**
 * Validates `raw` against `spec` and returns the effective settings (defaults for what `raw` omits).
 * `where` prefixes every error, e.g. `detectors.slo_p99_breach`. Unknown keys are errors: a typo in a
 * config file must not silently leave a default in force.
 */
export function resolveSettings<S extends SettingsSpec>(
  spec: S,
  raw: Readonly<Record<string, unknown>> = {},
  where = 'settings',
): SettingsOf<S> {
  const out = defaultsOf(spec) as Record<string, unknown>
  for (const [key, value] of Object.entries(raw)) {
    if (value === undefined) continue
    const s = spec[key]
    if (!s) {
      throw new SettingError(
        `${where}.${key}: unknown setting (known: ${Object.keys(spec).sort().join(', ')})`,
      )
    }
    out[key] = checkSetting(s, value, `${where}.${key}`)
  }
  return out as SettingsOf<S>
}

function checkSetting(s: SettingSpec, value: unknown, path: string): unknown {
  if (s.kind === 'list') {
    const list = typeof value === 'string' ? value.split(/[,;]/).map((x) => x.trim()) : value
    if (!Array.isArray(list) || !list.every((x) => typeof x === 'string'))
      throw new SettingError(`${path}: expected a list of names, got ${JSON.stringify(value)}`)
    return Object.freeze(list.filter((x: string) => x.length > 0))
  }
  if (s.kind === 'map') {
    if (!isRecord(value)) throw new SettingError(`${path}: expected an object of numbers by name`)
    const out: Record<string, number> = {}
    for (const [k, v] of Object.entries(value)) {
      out[k] = checkNumber({ kind: 'number', default: 0, min: s.min, doc: '' }, v, `${path}.${k}`)
    }
    return Object.freeze(out)
  }
  return checkNumber(s, value, path)
}

function checkNumber(s: Extract<SettingSpec, { kind: 'number' }>, value: unknown, path: string): number {
  const n = typeof value === 'string' && value.trim() !== '' ? Number(value) : value
  const range =
    `${s.integer ? 'a whole number' : 'a number'}` +
    `${s.min !== undefined ? ` ≥ ${s.min}` : ''}${s.max !== undefined ? ` and ≤ ${s.max}` : ''}`
  // +Infinity is allowed where no maximum is: it turns a count-based test off (drift's fastSamples)
  if (
    typeof n !== 'number' ||
    Number.isNaN(n) ||
    n === Number.NEGATIVE_INFINITY ||
    (n === Number.POSITIVE_INFINITY && s.max !== undefined) ||
    (s.integer && Number.isFinite(n) && !Number.isInteger(n)) ||
    (s.min !== undefined && n < s.min) ||
    (s.max !== undefined && n > s.max)
  ) {
    throw new SettingError(
      `${path}: expected ${range}, got ${typeof value === 'number' ? value : JSON.stringify(value)}`,
    )
  }
  return n
}

// ----- the keyed base -----

/** The bookkeeping the base keeps per key next to the detector's own state. */
interface KeyMeta {
  /** event time the key was first seen */
  firstSeenUs: number
}

/**
 * A detector keeping one state per key. `S` is one key's state; `O` its settings (at least the
 * lifecycle settings). See the module comment for what the base owns.
 */
export abstract class KeyedDetector<S, O extends SettingsOf<typeof LIFECYCLE_SETTINGS>> implements Detector {
  abstract readonly type: AlertType
  abstract readonly reads: DetectorReads
  protected readonly keys = new Map<string, S>()
  private readonly meta = new Map<string, KeyMeta>()
  /** the effective settings */
  readonly settings: Readonly<O>

  constructor(spec: SettingsSpec, opts: Partial<O> = {}) {
    this.settings = Object.freeze(resolveSettings(spec, opts as Record<string, unknown>) as O)
  }

  /** shorthand for the settings inside a detector */
  protected get o(): Readonly<O> {
    return this.settings
  }

  /** the options of a new alert lifecycle of this detector */
  protected get lifecycleOptions(): LifecycleOptions {
    return { pendingSamples: this.o.pendingSamples, resolveSamples: this.o.resolveSamples }
  }

  /** a fresh lifecycle with this detector's hold and resolve counts */
  protected newLifecycle(): AlertLifecycle {
    return new AlertLifecycle(this.lifecycleOptions)
  }

  /** a lifecycle restored from a snapshot, with this detector's hold and resolve counts */
  protected restoreLifecycle(raw: unknown): AlertLifecycle {
    return AlertLifecycle.fromState(raw, this.lifecycleOptions)
  }

  /** one key's state as plain JSON */
  protected abstract stateToJson(s: S, key: string): unknown
  /** the inverse of stateToJson: reads what it can, defaults the rest; undefined drops the key */
  protected abstract stateFromJson(raw: Record<string, unknown>, key: string): S | undefined
  /** every alert lifecycle of one key's state */
  protected abstract lifecyclesOf(s: S): Iterable<AlertLifecycle>
  /** the instance a key's alerts are about (for the inhibitor's pending causes) */
  protected abstract instanceOf(s: S, key: string): string

  /**
   * The state of `key`, made on first use by `make` — by default restored from an empty snapshot
   * (`seed`: what a new key knows, e.g. its fleet and instance), so a new key and a restored one are
   * built by the same code; `nowUs` starts its warm-up.
   */
  protected state(key: string, nowUs: number, make: () => S = () => this.newState(key, {})): S {
    let s = this.keys.get(key)
    if (s === undefined) {
      s = make()
      this.keys.set(key, s)
    }
    if (!this.meta.has(key)) this.meta.set(key, { firstSeenUs: nowUs })
    return s
  }

  /**
   * The key `<fleet>/<instance>/<model>` of the instance and model a span is from, and its state (a
   * new one made from a snapshot holding the three).
   */
  protected modelKey(span: Span): [string, S] {
    const { fleet, instance, model } = span
    const key = `${fleet}/${instance}/${model}`
    return [key, this.state(key, span.timestamp_us, () => this.newState(key, { fleet, instance, model }))]
  }

  /** A new key's state: `stateFromJson` of a snapshot holding only `seed`. */
  protected newState(key: string, seed: Record<string, unknown>): S {
    const s = this.stateFromJson(seed, key)
    if (s === undefined) throw new Error(`${this.type}: no state for a new key ${key}`)
    return s
  }

  /**
   * One evaluation of one alert: feeds `lc` whether the condition `holds`, with the evidence `finding`
   * builds (only while it holds; the type and the dedup key `<type>/<scope>` added here), then lets
   * `learn` feed the baselines only if no alert is pending or firing afterwards — a break never
   * teaches the baselines that it is normal. Returns the alert records of the transition, if any.
   */
  protected judge(
    lc: AlertLifecycle,
    nowUs: number,
    holds: boolean,
    scope: string,
    finding: () => Finding,
    learn?: () => void,
  ): Alert[] {
    let evidence: AlertEvidence | undefined
    if (holds) {
      const { severity, ...rest } = finding()
      // the order of an alert's fields as the detectors always wrote them (webhook bodies keep it)
      evidence = { type: this.type, severity, dedup_key: `${this.type}/${scope}`, ...rest }
    }
    const alert = lc.observe(nowUs, holds, evidence)
    if (!lc.active) learn?.()
    return alert ? [alert] : []
  }

  /** Drops a key and everything the base keeps about it. */
  protected forget(key: string): void {
    this.keys.delete(key)
    this.meta.delete(key)
  }

  /** Whether `key` has been seen for at least `warmupMs` of event time at `nowUs`. */
  protected warm(key: string, nowUs: number): boolean {
    return this.seenFor(key, nowUs) >= this.o.warmupMs * 1000
  }

  /** How long `key` has been seen at `nowUs`, µs (∞ for a key restored without that record). */
  protected seenFor(key: string, nowUs: number): number {
    const m = this.meta.get(key)
    return m === undefined ? 0 : nowUs - m.firstSeenUs
  }

  *pendingInstances(): Iterable<string> {
    for (const [key, s] of this.keys) {
      for (const lc of this.lifecyclesOf(s)) {
        if (lc.state === 'pending') {
          yield this.instanceOf(s, key)
          break
        }
      }
    }
  }

  close(nowUs: number, reason: 'shutdown'): Alert[] {
    const out: Alert[] = []
    for (const s of this.keys.values()) {
      for (const lc of this.lifecyclesOf(s)) {
        const a = lc.close(nowUs, reason)
        if (a) out.push(a)
      }
    }
    return out
  }

  sweepStale(nowUs: number, staleAfterUs: number): Alert[] {
    const out: Alert[] = []
    for (const s of this.keys.values()) {
      for (const lc of this.lifecyclesOf(s)) {
        if (lc.state !== 'firing' || nowUs - lc.lastObservedUs < staleAfterUs) continue
        const a = lc.close(lc.lastObservedUs, 'stale')
        if (a) out.push(a)
      }
    }
    return out
  }

  /** detector-wide state besides the keys (e.g. a clock); merged into the snapshot */
  protected exportExtra(): Record<string, unknown> {
    return {}
  }

  /** the inverse of exportExtra */
  protected importExtra(_state: Record<string, unknown>): void {}

  exportState(): Record<string, unknown> {
    const keys: Record<string, unknown> = {}
    for (const [key, s] of this.keys) {
      const json = this.stateToJson(s, key)
      const firstSeenUs = this.meta.get(key)?.firstSeenUs
      keys[key] = isRecord(json) && firstSeenUs !== undefined ? { ...json, firstSeenUs } : json
    }
    return { ...this.exportExtra(), keys }
  }

  /**
   * Merges the keys of `state` into this detector (keys it already has are replaced). Snapshots of
   * detectors from before the kernel kept their keys under `instances` or `series`; those read too.
   */
  importState(state: Record<string, unknown>): void {
    this.importExtra(state)
    const keys = state.keys ?? state.instances ?? state.series
    if (!isRecord(keys)) return
    for (const [key, raw] of Object.entries(keys)) {
      if (!isRecord(raw)) continue
      const s = this.stateFromJson(raw, key)
      if (s === undefined) continue
      this.keys.set(key, s)
      // a restored key has its baseline: no new warm-up unless the snapshot does not say when it began
      const firstSeenUs = typeof raw.firstSeenUs === 'number' ? raw.firstSeenUs : Number.NEGATIVE_INFINITY
      this.meta.set(key, { firstSeenUs })
    }
  }
}

/** What a detector finds about a break; `judge` adds the alert type and dedup key. */
export type Finding = Omit<AlertEvidence, 'type' | 'dedup_key'>

/** The state of a key that holds one alert lifecycle (most detectors). */
export interface OneAlertState {
  lifecycle: AlertLifecycle
  /** the instance the key's alert is about; the key itself when absent */
  instance?: string
}

/** Settings of a detector: its own, over the lifecycle settings every keyed detector has. */
export type WithLifecycle<Own extends SettingsSpec> = Omit<typeof LIFECYCLE_SETTINGS, keyof Own> & Own

/** What a kernel detector declares once: the alert type it raises, what it reads and its settings. */
export interface DetectorKind<Spec extends SettingsSpec> {
  readonly type: AlertType
  readonly reads: DetectorReads
  /** the lifecycle settings included */
  readonly settings: Spec
}

/**
 * A detector's declaration: `own` settings are merged over the lifecycle settings (a detector may give
 * those other defaults, e.g. a longer hold).
 */
export function detectorKind<Own extends SettingsSpec>(
  type: AlertType,
  reads: DetectorReads,
  own: Own,
): DetectorKind<WithLifecycle<Own>> {
  return { type, reads, settings: { ...LIFECYCLE_SETTINGS, ...own } }
}

/** A key's state but its alert lifecycle (which OneAlertDetector reads and writes). */
export type StateFields<S extends OneAlertState> = Omit<S, 'lifecycle'>

/** A keyed detector built from its declaration (`detectorKind`). */
export abstract class DeclaredDetector<S, Spec extends SettingsSpec> extends KeyedDetector<
  S,
  SettingsOf<Spec> & SettingsOf<typeof LIFECYCLE_SETTINGS>
> {
  readonly type: AlertType
  readonly reads: DetectorReads

  constructor(kind: DetectorKind<Spec>, opts: OptionsOf<Spec> = {}) {
    super(kind.settings, opts as Partial<SettingsOf<Spec> & SettingsOf<typeof LIFECYCLE_SETTINGS>>)
    this.type = kind.type
    this.reads = kind.reads
  }
}

/** A declared detector whose keys each hold one alert lifecycle. */
export abstract class OneAlertDetector<
  S extends OneAlertState,
  Spec extends SettingsSpec,
> extends DeclaredDetector<S, Spec> {
  protected lifecyclesOf(s: S): AlertLifecycle[] {
    return [s.lifecycle]
  }

  protected instanceOf(s: S, key: string): string {
    return s.instance ?? key
  }

  /** a key's own fields as plain JSON (its lifecycle is written next to them here) */
  protected abstract fieldsToJson(s: S, key: string): Record<string, unknown>
  /** the inverse of fieldsToJson (the lifecycle is restored here); undefined drops the key */
  protected abstract fieldsFromJson(raw: Record<string, unknown>, key: string): StateFields<S> | undefined

  protected stateToJson(s: S, key: string): Record<string, unknown> {
    return { ...this.fieldsToJson(s, key), lifecycle: s.lifecycle.toState() }
  }

  protected stateFromJson(raw: Record<string, unknown>, key: string): S | undefined {
    const fields = this.fieldsFromJson(raw, key)
    return fields && ({ ...fields, lifecycle: this.restoreLifecycle(raw.lifecycle) } as S)
  }
}

/** The state of an instance judged on its hardware samples, with what it keeps of its spans. */
export interface SampledInstanceState extends OneAlertState {
  spans: { add(span: Span): void }
}

/**
 * A detector keyed by instance that judges each hardware sample; the instance's spans only name its
 * model and the exemplar requests of an alert.
 */
export abstract class InstanceSampleDetector<
  S extends SampledInstanceState,
  Spec extends SettingsSpec,
> extends OneAlertDetector<S, Spec> {
  onSpan(span: Span): Alert[] {
    this.state(span.instance, span.timestamp_us).spans.add(span)
    return []
  }

  abstract onHwSample(sample: HwSample): Alert[]
}

/** The state of an instance + model judged on event-time buckets of its spans. */
export type BucketedModelState = OneAlertState & ModelBuckets

/** One key's state of a BucketedModelDetector: the detector's own fields and what the kernel keeps. */
export type Bucketed<Own> = Own & BucketedModelState

/**
 * A detector keyed by instance + model (`modelKey`) that judges event-time buckets of the spans: a
 * span that closes the open bucket has it judged (`judgeBucket`) before it joins the next (`count`).
 * The kernel writes and restores the instance, model and open bucket (`bucketMs` wide) next to the
 * lifecycle; the detector only its own fields (`Own`).
 */
export abstract class BucketedModelDetector<
  Own,
  Spec extends SettingsSpec & { readonly bucketMs: { readonly kind: 'number' } },
> extends OneAlertDetector<Bucketed<Own>, Spec> {
  /** the closed bucket of `key`, which ended at `endUs` */
  protected abstract judgeBucket(key: string, s: Bucketed<Own>, endUs: number): Alert[]
  /** adds a span to the open bucket */
  protected abstract count(s: Bucketed<Own>, span: Span): void
  /** the detector's own fields as plain JSON */
  protected abstract ownFieldsToJson(s: Own): Record<string, unknown>
  /** the inverse of ownFieldsToJson */
  protected abstract ownFieldsFromJson(raw: Record<string, unknown>): Own

  onSpan(span: Span): Alert[] {
    const [key, s] = this.modelKey(span)
    const alerts = s.buckets.closing(span.timestamp_us, (endUs) => this.judgeBucket(key, s, endUs))
    this.count(s, span)
    return alerts
  }

  protected fieldsToJson(s: Bucketed<Own>): Record<string, unknown> {
    return { ...modelBucketsToJson(s), ...this.ownFieldsToJson(s) }
  }

  protected fieldsFromJson(raw: Record<string, unknown>): StateFields<Bucketed<Own>> {
    // the setting's value type is deferred while Spec is generic; Spec's constraint makes it a number
    const bucketUs = Number(this.o.bucketMs) * 1000
    const fields = { ...modelBucketsFromJson(raw, bucketUs), ...this.ownFieldsFromJson(raw) }
    // TypeScript cannot see through Omit of a generic type that the two parts are all the fields
    return fields as StateFields<Bucketed<Own>>
  }
}

/**
 * Per-key state in the shape the state store splits into one row per key (`{ keys: { <key>: … } }`),
 * for detectors outside the kernel.
 */
export function keyedState<S>(states: Map<string, S>, toState: (s: S) => unknown): Record<string, unknown> {
  return Object.fromEntries([...states].map(([key, s]) => [key, toState(s)]))
}

/** The value of `key` in `map`, made on first use. */
export function getOrCreate<K, V>(map: Map<K, V>, key: K, make: () => V): V {
  let v = map.get(key)
  if (v === undefined) {
    v = make()
    map.set(key, v)
  }
  return v
}
