/**
 * `latency_drift`: the distribution of total_us per instance + model moved away from its baseline
 * (KS + PSI, see ./detector.ts for the thresholds). Catches shape changes a median or p99 rule misses
 * (a bimodal tail, a slow cache-miss path becoming common) and names the stage that moved most.
 */
import { STAGES } from '../../contract/vocabulary.ts'
import { type DriftOptions, DistributionDriftDetector } from './detector.ts'

export class LatencyDriftDetector extends DistributionDriftDetector {
  constructor(opts: DriftOptions = {}) {
    super(
      {
        type: 'latency_drift',
        features: [{ name: 'total_us', value: (s) => s.total_us }],
        reads: {
          spans: ['instance', 'model', 'request_id', 'total_us', ...STAGES.map((s) => `${s}_us` as const)],
          hw: [],
        },
        attributeStage: true,
        direction: 'slower',
        mayBeCritical: true,
        unit: (us) => `${(us / 1000).toFixed(2)} ms`,
        cause: 'request latency changed shape against its baseline window',
        action:
          'compare the stage breakdown before and after the onset (`breakid query stage-breakdown`); look for a deploy, a config or load-mix change',
      },
      opts,
    )
  }
}
