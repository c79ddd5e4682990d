/**
 * Puts the spans of one request back together. Exporters send each span when it ends, in batches of
 * their own making (Triton's batch span processor exports every 5 s by default, and a collector in
 * between may reorder), so the parts of a request arrive in any order and in different requests to
 * us. The assembler holds them by trace id until a request is whole, then maps it to one breakid span:
 *
 * - Triton traces (collect/triton/trace.ts): a request is whole when its `InferRequest` root, its
 *   model span and the compute spans under it are here;
 * - other services' SERVER spans (collect/generic/server-spans.ts): a request is emitted when its
 *   server span arrives, with the stage spans that arrived before it (an SDK ends, and so exports,
 *   children before their parent). Stage spans wait for their server span; other spans are not held.
 *
 * Bounded wait: a trace still open `maxWaitMs` (default 30 s, above Triton's 5 s export delay) after
 * its first part is closed by `sweep()`: each root it holds is emitted with what it has (counted in
 * `incomplete` by what was missing); a Triton request whose root never came is emitted from its model
 * span; parts that belong to no request are dropped (`dropped{reason=orphan}`).
 *
 * Bounded memory: at most `maxSpans` parts are held. When a new part would exceed it, the OLDEST open
 * trace is closed early the same way (counted `evicted`) — old requests lose their late parts rather
 * than new requests losing all of theirs.
 *
 * Late parts: the span ids of the last `rememberSpans` emitted requests are remembered; a part whose
 * parent is one of them arrived after its request went out and is dropped (`late_parts`), instead of
 * opening a new trace that could only end incomplete and counted twice.
 *
 * Time comes from `now()` (milliseconds), injected so tests step it.
 */
import type { Span } from '../contract/records.ts'
import type { Counters } from '../core/metrics.ts'
import { isServerSpan, mapServerSpan, type SpanMappingConfig, stageOf } from './generic/server-spans.ts'
import type { ReceivedSpan } from './otlp/spans.ts'
import {
  isModelSpan,
  isTritonRoot,
  isTritonSpan,
  mapTritonRequest,
  requestComplete,
  type SpanTree,
  TRITON,
} from './triton/trace.ts'

export interface AssemblerOptions {
  mapping: SpanMappingConfig
  /** fleet for telemetry whose resource names none */
  fleet: string
  counters: Counters
  now?: () => number
  /** how long a trace may wait for its missing parts, ms. Default 30 000. */
  maxWaitMs?: number
  /** most parts held at once. Default 200 000. */
  maxSpans?: number
  /** span ids of emitted requests remembered to recognise late parts. Default 100 000. */
  rememberSpans?: number
}

class OpenTrace implements SpanTree {
  readonly byId = new Map<string, ReceivedSpan>()
  private readonly byParent = new Map<string, ReceivedSpan[]>()
  constructor(
    readonly traceId: string,
    readonly firstSeenMs: number,
  ) {}

  add(span: ReceivedSpan): boolean {
    if (this.byId.has(span.spanId)) return false // a resent export: keep the first copy
    this.byId.set(span.spanId, span)
    const siblings = this.byParent.get(span.parentSpanId)
    if (siblings) siblings.push(span)
    else this.byParent.set(span.parentSpanId, [span])
    return true
  }

  children(spanId: string): ReceivedSpan[] {
    return this.byParent.get(spanId) ?? []
  }

  descendants(spanId: string): ReceivedSpan[] {
    const out: ReceivedSpan[] = []
    const stack = [...this.children(spanId)]
    while (stack.length > 0) {
      const s = stack.pop()!
      out.push(s)
      stack.push(...this.children(s.spanId))
    }
    return out
  }

  remove(spans: Iterable<ReceivedSpan>): number {
    let n = 0
    for (const s of spans) {
      if (!this.byId.delete(s.spanId)) continue
      n++
      const siblings = this.byParent.get(s.parentSpanId)
      if (!siblings) continue
      const rest = siblings.filter((x) => x.spanId !== s.spanId)
      if (rest.length > 0) this.byParent.set(s.parentSpanId, rest)
      else this.byParent.delete(s.parentSpanId)
    }
    return n
  }

  get size(): number {
    return this.byId.size
  }
}

/** A bounded set that forgets its oldest members (insertion order). */
class RecentIds {
  private readonly ids = new Set<string>()
  constructor(private readonly capacity: number) {}
  add(id: string): void {
    this.ids.add(id)
    if (this.ids.size > this.capacity) this.ids.delete(this.ids.values().next().value as string)
  }
  has(id: string): boolean {
    return this.ids.has(id)
  }
}

export class TraceAssembler {
  private readonly traces = new Map<string, OpenTrace>()
  private held = 0
  private readonly emitted: RecentIds
  private readonly now: () => number
  private readonly maxWaitMs: number
  private readonly maxSpans: number

  constructor(private readonly opts: AssemblerOptions) {
    this.now = opts.now ?? Date.now
    this.maxWaitMs = opts.maxWaitMs ?? 30_000
    this.maxSpans = opts.maxSpans ?? 200_000
    this.emitted = new RecentIds(opts.rememberSpans ?? 100_000)
  }

  /** parts waiting for the rest of their request */
  get pendingSpans(): number {
    return this.held
  }

  get openTraces(): number {
    return this.traces.size
  }

  /** Takes the spans of one export; returns the requests they completed. */
  add(spans: readonly ReceivedSpan[]): Span[] {
    const out: Span[] = []
    const touched = new Set<OpenTrace>()
    const c = this.opts.counters
    for (const span of spans) {
      if (!isTritonSpan(span) && !isServerSpan(span) && !stageOf(span, this.opts.mapping)) {
        c.inc('spans_ignored')
        continue
      }
      if (span.parentSpanId !== '' && this.emitted.has(span.parentSpanId)) {
        this.emitted.add(span.spanId) // its own children are late too
        c.inc('late_parts')
        continue
      }
      while (this.held >= this.maxSpans && this.traces.size > 0) out.push(...this.evictOldest())
      let trace = this.traces.get(span.traceId)
      if (!trace) {
        trace = new OpenTrace(span.traceId, this.now())
        this.traces.set(span.traceId, trace)
      }
      if (trace.add(span)) this.held++
      else c.inc('spans_duplicate')
      touched.add(trace)
    }
    for (const trace of touched) out.push(...this.completeWhole(trace))
    return out
  }

  /** Closes the traces whose wait is over; returns what they could still make. */
  sweep(): Span[] {
    const out: Span[] = []
    const deadline = this.now() - this.maxWaitMs
    for (const trace of this.traces.values()) {
      if (trace.firstSeenMs > deadline) break // insertion order = first-seen order
      out.push(...this.close(trace, 'timeout'))
    }
    return out
  }

  /** Closes every open trace (on stop). */
  flush(): Span[] {
    const out: Span[] = []
    for (const trace of this.traces.values()) out.push(...this.close(trace, 'shutdown'))
    return out
  }

  private evictOldest(): Span[] {
    const oldest = this.traces.values().next().value
    if (!oldest) return []
    this.opts.counters.inc('evicted')
    return this.close(oldest, 'evicted')
  }

  private roots(trace: OpenTrace): ReceivedSpan[] {
    return [...trace.byId.values()].filter((s) => isTritonRoot(s) || (isServerSpan(s) && !isTritonSpan(s)))
  }

  /** Emits the requests of `trace` that are whole now. */
  private completeWhole(trace: OpenTrace): Span[] {
    const out: Span[] = []
    for (const root of this.roots(trace)) {
      if (isTritonRoot(root)) {
        if (!requestComplete(trace, root)) continue
        out.push(this.emitTriton(trace, root, []))
      } else {
        out.push(this.emitGeneric(trace, root))
      }
    }
    if (trace.size === 0) this.traces.delete(trace.traceId)
    return out
  }

  private close(trace: OpenTrace, reason: 'timeout' | 'evicted' | 'shutdown'): Span[] {
    const out: Span[] = []
    const c = this.opts.counters
    for (const root of this.roots(trace)) {
      // mapTritonRequest names what is missing (model, compute) for the incomplete counter
      out.push(isTritonRoot(root) ? this.emitTriton(trace, root, []) : this.emitGeneric(trace, root))
    }
    // a Triton request whose root never came: its top model span (parent absent) stands in
    for (const span of [...trace.byId.values()]) {
      if (!trace.byId.has(span.spanId)) continue
      const parentHere = span.parentSpanId !== '' && trace.byId.has(span.parentSpanId)
      if (isModelSpan(span) && !parentHere && span.attributes[TRITON.attr.traceParentId] !== undefined) {
        const parentId = span.attributes[TRITON.attr.traceParentId]
        if (parentId === 0 || parentId === '0') out.push(this.emitTriton(trace, span, ['root']))
      }
    }
    if (trace.size > 0) {
      c.inc('dropped', trace.size, { reason: 'orphan' })
      this.held -= trace.size
    }
    if (reason !== 'evicted') c.inc('closed_open_traces', 1, { reason })
    this.traces.delete(trace.traceId)
    return out
  }

  private emitTriton(trace: OpenTrace, root: ReceivedSpan, known: string[]): Span {
    const { span, missing } = mapTritonRequest(trace, root, this.opts.fleet)
    const gaps = [...new Set([...known, ...missing])]
    this.release(trace, root)
    const c = this.opts.counters
    c.inc('assembled', 1, { kind: 'triton' })
    for (const gap of gaps) c.inc('incomplete', 1, { kind: 'triton', missing: gap })
    return span
  }

  private emitGeneric(trace: OpenTrace, server: ReceivedSpan): Span {
    const stageSpans = trace.descendants(server.spanId).filter((s) => stageOf(s, this.opts.mapping))
    const span = mapServerSpan(server, stageSpans, this.opts.mapping, this.opts.fleet)
    this.release(trace, server)
    this.opts.counters.inc('assembled', 1, { kind: 'generic' })
    return span
  }

  /** Forgets an emitted request's parts and remembers their ids for late parts. */
  private release(trace: OpenTrace, root: ReceivedSpan): void {
    const parts = [root, ...trace.descendants(root.spanId)]
    for (const p of parts) this.emitted.add(p.spanId)
    this.held -= trace.remove(parts)
  }
}
