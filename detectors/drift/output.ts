/**
 * `output_drift`: the per-request output confidence of a model moved away from its baseline (KS + PSI,
 * thresholds in ./detector.ts). Requests without output_confidence (null) are skipped.
 */
import { DRIFT_SETTINGS, type DriftOptions, DistributionDriftDetector } from './detector.ts'

export class OutputDriftDetector extends DistributionDriftDetector {
  constructor(opts: DriftOptions = {}) {
    super(
      {
        type: 'output_drift',
        features: [{ name: 'output_confidence', value: (s) => s.output_confidence }],
        reads: { spans: ['instance', 'model', 'request_id', 'output_confidence'], hw: [] },
        attributeStage: false,
        direction: 'both',
        mayBeCritical: false,
        unit: (v) => v.toPrecision(3),
        cause:
          'the model’s output confidence changed: shifted inputs, a different model version, or degraded weights',
        action:
          'check the model version and the input drift of this model; compare predictions against labels if available',
      },
      opts,
      DRIFT_SETTINGS,
    )
  }
}
