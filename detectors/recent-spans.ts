/**
 * The newest spans (bounded) and the model they were for: what a detector keeps of the spans between
 * two judgements — of one instance between hardware samples, or of one interval or bucket — to name
 * the model, compute over them and pick exemplar requests. Full, it drops the oldest. Not persisted:
 * it refills within seconds, and the model is restored from the detector's state.
 */
import type { Span } from '../contract/records.ts'

export class RecentSpans {
  private spans: Span[] = []

  constructor(
    /** the model of the newest span; '*' until one is seen */
    public model = '*',
    private readonly capacity = 128,
  ) {}

  add(span: Span): void {
    if (this.spans.length >= this.capacity) this.spans.shift()
    this.spans.push(span)
    this.model = span.model
  }

  get size(): number {
    return this.spans.length
  }

  /** the spans kept, oldest first, and an empty pool for the next interval */
  take(): Span[] {
    const spans = this.spans
    this.spans = []
    return spans
  }

  /** request ids of the `n` spans with the largest `by` */
  exemplars(by: (span: Span) => number, n = 3): string[] {
    return exemplarIds(this.spans, by, n)
  }
}

/** Request ids of the `n` spans with the largest `by`: the exemplars an alert names. */
export function exemplarIds(spans: readonly Span[], by: (span: Span) => number, n = 3): string[] {
  return [...spans]
    .sort((a, b) => by(b) - by(a))
    .slice(0, n)
    .map((s) => s.request_id)
}
