/**
 * The drift, resource, SLO, error and generic detectors, for `defaultDetectors()` in app/pipeline.ts.
 * Each takes its own options (thresholds documented in its module); omitted options keep the defaults.
 */
import { AnomalyDetector, type AnomalyOptions } from './anomaly/detector.ts'
import { BatchUnderutilizedDetector, type BatchUnderutilizedOptions } from './batching/detector.ts'
import type { Detector } from './detector.ts'
import type { DriftOptions } from './drift/detector.ts'
import { InputDriftDetector } from './drift/input.ts'
import { LatencyDriftDetector } from './drift/latency.ts'
import { OutputDriftDetector } from './drift/output.ts'
import { ErrorRateDetector, type ErrorRateOptions } from './errors/detector.ts'
import { MemoryLeakDetector, type MemoryLeakOptions } from './leak/detector.ts'
import { SerializationDominantDetector, type SerializationOptions } from './serialization/detector.ts'
import { SloP99Detector, type SloOptions } from './slo/detector.ts'

export interface DriftAndResourceOptions {
  latencyDrift?: DriftOptions
  inputDrift?: DriftOptions
  outputDrift?: DriftOptions
  memoryLeak?: MemoryLeakOptions
  batching?: BatchUnderutilizedOptions
  serialization?: SerializationOptions
  slo?: SloOptions
  errorRate?: ErrorRateOptions
  /** options of the generic detector on hardware samples; `false` leaves it out */
  anomaly?: AnomalyOptions | false
}

export function driftAndResourceDetectors(opts: DriftAndResourceOptions = {}): Detector[] {
  const detectors: Detector[] = [
    new LatencyDriftDetector(opts.latencyDrift),
    new InputDriftDetector(opts.inputDrift),
    new OutputDriftDetector(opts.outputDrift),
    new MemoryLeakDetector(opts.memoryLeak),
    new BatchUnderutilizedDetector(opts.batching),
    new SerializationDominantDetector(opts.serialization),
    new SloP99Detector(opts.slo),
    new ErrorRateDetector(opts.errorRate),
  ]
  if (opts.anomaly !== false) detectors.push(new AnomalyDetector(opts.anomaly ?? {}))
  return detectors
}

export {
  AnomalyDetector,
  BatchUnderutilizedDetector,
  ErrorRateDetector,
  InputDriftDetector,
  LatencyDriftDetector,
  MemoryLeakDetector,
  OutputDriftDetector,
  SerializationDominantDetector,
  SloP99Detector,
}
