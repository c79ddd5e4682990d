/**
 * The newest spans of one instance (bounded) and the model they were for: what a detector that judges
 * hardware samples keeps of the spans to name the model and pick exemplar requests. Not persisted: it
 * refills within seconds, and the model is restored from the detector's state.
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

  /** request ids of the `n` spans with the largest `by` */
  exemplars(by: (span: Span) => number, n = 3): string[] {
    return [...this.spans]
      .sort((a, b) => by(b) - by(a))
      .slice(0, n)
      .map((s) => s.request_id)
  }
}
