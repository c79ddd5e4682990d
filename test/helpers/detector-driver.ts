/**
 * The time-stepped driver every detector test uses (after Prometheus' rule tests): a fake clock in
 * event time, one step per sampling interval, the telemetry of each step written as a table of
 * columns in compact series notation (`'0.5x15 0.25x6'`: fifteen steps of 0.5, six of 0.25), and the
 * alert transitions read back as `[status, step]`. Nothing sleeps: the detectors run on the records'
 * timestamps, which the clock hands out.
 *
 * A step `i` covers event time [start + i·step, start + (i+1)·step): its spans are spread evenly over
 * it and fed first (as the engine emits spans when requests complete), then its hardware sample,
 * stamped at the end of the interval (as the sampler reports). A table column names a hardware-sample
 * field (`executor_busy`), a span field (`span.preprocess_us`), or `spans` (spans per step).
 *
 * The records go through `Paging` (detectors/paging.ts), the detector consumer's own logic: with
 * `inhibit: true` the causal inhibitor decides, as live, what is delivered, so a test reads both what
 * the detectors raised (`alerts`) and what would page (`pages`).
 */
import assert from 'node:assert/strict'
import type { Alert, HwSample, Span } from '../../contract/records.ts'
import { makeHwSample, makeSpan } from '../../contract/synthetic.ts'
import { STAGES } from '../../contract/vocabulary.ts'
import type { Detector } from '../../detectors/detector.ts'
import type { InhibitRule } from '../../detectors/inhibit.ts'
import { Paging, type PagingResult } from '../../detectors/paging.ts'
import { Prng } from '../../eval/prng.ts'
import { assertFields } from './assert-fields.ts'
import { series } from './series.ts'

/** 2026-01-01T00:00:00Z in µs: where every driven test starts */
export const T0_US = 1_767_225_600_000_000

/** Asserts the fields of an alert that `expected` names, each to its value. */
export const assertAlert = (alert: Alert, expected: Partial<Alert>) => assertFields(alert, expected, 'alert')

/** Event time, moved only by the test. */
export class FakeClock {
  constructor(public nowUs = T0_US) {}
  advance(ms: number): number {
    this.nowUs += Math.round(ms * 1000)
    return this.nowUs
  }
}

export interface DriverOptions {
  /** sampling interval, ms (1000) */
  stepMs?: number
  startUs?: number
  fleet?: string
  instance?: string
  model?: string
  /** pass raised alerts through the causal inhibitor (`pages`); `true` for the default order */
  inhibit?: boolean | readonly InhibitRule[]
}

export interface StepInput {
  /** fields of this step's hardware sample (several: one per instance); `false` or []: none this step */
  hw?: Partial<HwSample> | Partial<HwSample>[] | false
  /** spans of this step: a count (default fields), or the fields of each */
  spans?: number | Partial<Span>[]
}

/** One alert transition with the step that raised it. */
export interface Raised {
  step: number
  alert: Alert
}

const STAGE_FIELDS = STAGES.map((s) => `${s}_us` as const)

export class DetectorDriver {
  readonly clock: FakeClock
  readonly detectors: Detector[]
  /** every transition the detectors raised */
  readonly alerts: Raised[] = []
  /** the records that would be published (delivered alerts and root updates; all of them without `inhibit`) */
  readonly pages: Raised[] = []
  /** with `inhibit`: the symptoms kept from delivery */
  readonly inhibited: Raised[] = []
  /** the next step's index */
  step = 0
  private seq = 0
  private readonly stepUs: number
  private readonly paging: Paging

  constructor(
    detectors: Detector | Detector[],
    private readonly opts: DriverOptions = {},
  ) {
    this.detectors = Array.isArray(detectors) ? detectors : [detectors]
    this.stepUs = (opts.stepMs ?? 1000) * 1000
    this.clock = new FakeClock(opts.startUs ?? T0_US)
    this.paging = new Paging(this.detectors, {
      inhibitRules: opts.inhibit === true ? undefined : opts.inhibit || [],
    })
  }

  /** event time of the start of step `i` */
  at(i: number): number {
    return (this.opts.startUs ?? T0_US) + i * this.stepUs
  }

  /** A span of the driver's instance and model with `fields`; the total is the sum of its stages unless given. */
  span(fields: Partial<Span> = {}, timestampUs = this.clock.nowUs): Span {
    const i = this.seq++
    const s = makeSpan(i, {
      fleet: this.opts.fleet ?? 'test',
      instance: this.opts.instance ?? 'engine-0',
      model: this.opts.model ?? 'mlp',
      request_id: `${fields.instance ?? this.opts.instance ?? 'engine-0'}-req-${i}`,
      timestamp_us: timestampUs,
      ...fields,
    })
    if (fields.total_us === undefined && STAGE_FIELDS.some((f) => fields[f] !== undefined)) {
      s.total_us = STAGE_FIELDS.reduce((sum, f) => sum + s[f], 0)
    }
    return s
  }

  /** Feeds one step; returns what it raised. */
  tick(input: StepInput = {}): Raised[] {
    const i = this.step++
    const from = this.at(i)
    const spans: Partial<Span>[] =
      typeof input.spans === 'number' ? Array.from({ length: input.spans }, () => ({})) : (input.spans ?? [])
    spans.forEach((fields, k) => {
      this.clock.nowUs = from + Math.floor((k * this.stepUs) / Math.max(spans.length, 1))
      this.paging.span(this.span(fields, fields.timestamp_us ?? this.clock.nowUs))
    })
    this.clock.nowUs = from + this.stepUs
    const samples = input.hw === false ? [] : Array.isArray(input.hw) ? input.hw : [input.hw ?? {}]
    for (const fields of samples) {
      const sample = makeHwSample(i, {
        fleet: this.opts.fleet ?? 'test',
        instance: this.opts.instance ?? 'engine-0',
        interval_ms: this.stepUs / 1000,
        timestamp_us: this.clock.nowUs,
        ...fields,
      })
      this.paging.hwSample(sample)
    }
    return this.record(i, this.paging.flush())
  }

  /**
   * Runs a table of columns in series notation, one step per value (every column as long as the
   * others). `spans` sets the spans per step (default `spansPerStep`); `span.<field>` columns set a
   * span field; any other column a hardware-sample field. `span` and `hw` add fields computed per step.
   */
  run(
    table: Record<string, string>,
    opts: {
      spansPerStep?: number
      /** fields of span `k` of `step`; `columns` are the span fields the table gives for the step */
      span?: (step: number, k: number, columns: Partial<Span>) => Partial<Span>
      hw?: (step: number) => Partial<HwSample>
    } = {},
  ): Raised[] {
    const columns = Object.entries(table).map(([name, notation]) => [name, series(notation)] as const)
    const lengths = new Set(columns.map(([, v]) => v.length))
    assert.equal(
      lengths.size,
      1,
      `series lengths differ: ${columns.map(([n, v]) => `${n} ${v.length}`).join(', ')}`,
    )
    const steps = columns[0]![1].length
    const out: Raised[] = []
    for (let j = 0; j < steps; j++) {
      const i = this.step
      const hw: Record<string, number> = {}
      const spanFields: Record<string, number> = {}
      let count = opts.spansPerStep ?? 0
      for (const [name, values] of columns) {
        const v = values[j]!
        if (name === 'spans') count = v
        else if (name.startsWith('span.')) spanFields[name.slice(5)] = v
        else hw[name] = v
      }
      const spans = Array.from({ length: count }, (_, k) => ({
        ...spanFields,
        ...opts.span?.(i, k, spanFields as Partial<Span>),
      }))
      out.push(...this.tick({ spans, hw: { ...hw, ...opts.hw?.(i) } as Partial<HwSample> }))
    }
    return out
  }

  /** The consumer's shutdown: every open alert resolves (reason shutdown); returns what was raised. */
  shutdown(): Raised[] {
    return this.record(this.step, this.paging.close())
  }

  /** `[status, step]` of every raised transition (of `type` when given). */
  transitions(type?: string): [Alert['status'], number][] {
    return this.alerts.filter((r) => !type || r.alert.type === type).map((r) => [r.alert.status, r.step])
  }

  /** Types of the alerts that would page (firing records of delivered alerts, once per id). */
  pagedTypes(): string[] {
    const seen = new Set<string>()
    const out: string[] = []
    for (const { alert } of this.pages) {
      if (alert.status !== 'firing' || seen.has(alert.id)) continue
      seen.add(alert.id)
      out.push(alert.type)
    }
    return out
  }

  private record(step: number, r: PagingResult): Raised[] {
    const rows = r.raised.map((alert) => ({ step, alert }))
    this.alerts.push(...rows)
    this.pages.push(...r.publish.map((alert) => ({ step, alert })))
    this.inhibited.push(...r.inhibited.map((alert) => ({ step, alert })))
    return rows
  }
}

/** Deterministic noise for tests: uniform in [0, 1) from a seed. */
export function noise(seed: number): () => number {
  const p = new Prng(seed)
  return () => p.next()
}
