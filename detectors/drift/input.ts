/**
 * `input_drift`: the per-request input statistics (input_mean, input_std) of a model moved away from
 * their baseline (KS + PSI, thresholds in ./detector.ts); one alert key per statistic. Requests
 * without input statistics (null) are skipped.
 */
import { DRIFT_SETTINGS, type DriftOptions, DistributionDriftDetector } from './detector.ts'

export class InputDriftDetector extends DistributionDriftDetector {
  constructor(opts: DriftOptions = {}) {
    super(
      {
        type: 'input_drift',
        features: [
          { name: 'input_mean', value: (s) => s.input_mean },
          { name: 'input_std', value: (s) => s.input_std },
        ],
        reads: { spans: ['instance', 'model', 'request_id', 'input_mean', 'input_std'], hw: [] },
        attributeStage: false,
        direction: 'both',
        mayBeCritical: false,
        unit: (v) => v.toPrecision(3),
        cause:
          'the inputs the model receives changed: a new client, an upstream data or preprocessing change',
        action:
          'check recent changes upstream of the model (data source, feature pipeline, client versions); the model may need retraining on the new inputs',
      },
      opts,
      DRIFT_SETTINGS,
    )
  }
}
