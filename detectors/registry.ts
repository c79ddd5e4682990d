/**
 * The one registry of detectors: every detector type with its settings (defaults, ranges, meaning),
 * what it reads, and whether it runs by default. The live pipeline, `breakid eval`, `breakid replay`
 * and `breakid detectors` all build from here, and the configuration validates against it.
 */
import type { AlertType } from '../contract/vocabulary.ts'
import { ANOMALY, AnomalyDetector } from './anomaly/detector.ts'
import { BATCHING, BatchUnderutilizedDetector } from './batching/detector.ts'
import {
  type Detector,
  type DetectorReads,
  resolveSettings,
  SettingError,
  type SettingsSpec,
} from './detector.ts'
import { DRIFT_SETTINGS, LATENCY_DRIFT_SETTINGS } from './drift/detector.ts'
import { InputDriftDetector } from './drift/input.ts'
import { LatencyDriftDetector } from './drift/latency.ts'
import { OutputDriftDetector } from './drift/output.ts'
import { ERROR_RATE, ErrorRateDetector } from './errors/detector.ts'
import { EVENT_LOOP, EventLoopBlockedDetector } from './event-loop/detector.ts'
import { HOST_CONTENTION_SETTINGS, HostContentionDetector } from './host-contention/detector.ts'
import { IDLE, IdleNoLoadDetector } from './idle/detector.ts'
import { MEMORY_LEAK, MemoryLeakDetector } from './leak/detector.ts'
import { QUEUE_GROWTH, QueueGrowthDetector } from './queue-growth/detector.ts'
import { SERIALIZATION, SerializationDominantDetector } from './serialization/detector.ts'
import { SILENT, InstanceSilentDetector } from './silent/detector.ts'
import { SLO, SloP99Detector } from './slo/detector.ts'
import { STAGE_LATENCY, StageLatencyDetector } from './stage-latency/detector.ts'
import { STARVATION, StarvationDetector } from './starvation/detector.ts'

export interface DetectorDefinition {
  type: AlertType
  /** its settings; every definition also takes `enabled` */
  spec: SettingsSpec
  /** whether it runs when the configuration does not say */
  enabledByDefault: boolean
  /** a detector with these (validated) settings */
  create(settings: Record<string, unknown>): Detector
  /** what it reads (for detectors outside the kernel, which do not say themselves) */
  reads?: DetectorReads
}

/** Every detector, in the order they run (causes before their symptoms reads best in listings). */
export const DETECTORS: readonly DetectorDefinition[] = [
  {
    type: 'host_contention',
    spec: HOST_CONTENTION_SETTINGS,
    enabledByDefault: true,
    create: (s) => new HostContentionDetector(s),
  },
  {
    type: 'accelerator_starved',
    spec: STARVATION.settings,
    enabledByDefault: true,
    create: (s) => new StarvationDetector(s),
  },
  {
    type: 'accelerator_idle_no_load',
    spec: IDLE.settings,
    enabledByDefault: true,
    create: (s) => new IdleNoLoadDetector(s),
  },
  {
    type: 'instance_silent',
    spec: SILENT.settings,
    enabledByDefault: true,
    create: (s) => new InstanceSilentDetector(s),
  },
  {
    type: 'stage_latency_regression',
    spec: STAGE_LATENCY.settings,
    enabledByDefault: true,
    create: (s) => new StageLatencyDetector(s),
  },
  {
    type: 'queue_growth',
    spec: QUEUE_GROWTH.settings,
    enabledByDefault: true,
    create: (s) => new QueueGrowthDetector(s),
  },
  {
    type: 'event_loop_blocked',
    spec: EVENT_LOOP.settings,
    enabledByDefault: true,
    create: (s) => new EventLoopBlockedDetector(s),
  },
  {
    type: 'latency_drift',
    spec: LATENCY_DRIFT_SETTINGS,
    enabledByDefault: true,
    create: (s) => new LatencyDriftDetector(s),
  },
  {
    type: 'input_drift',
    spec: DRIFT_SETTINGS,
    enabledByDefault: true,
    create: (s) => new InputDriftDetector(s),
  },
  {
    type: 'output_drift',
    spec: DRIFT_SETTINGS,
    enabledByDefault: true,
    create: (s) => new OutputDriftDetector(s),
  },
  {
    type: 'memory_leak',
    spec: MEMORY_LEAK.settings,
    enabledByDefault: true,
    create: (s) => new MemoryLeakDetector(s),
  },
  {
    type: 'batch_underutilized',
    spec: BATCHING.settings,
    enabledByDefault: true,
    create: (s) => new BatchUnderutilizedDetector(s),
  },
  {
    type: 'serialization_dominant',
    spec: SERIALIZATION.settings,
    enabledByDefault: true,
    create: (s) => new SerializationDominantDetector(s),
  },
  {
    type: 'slo_p99_breach',
    spec: SLO.settings,
    enabledByDefault: true,
    create: (s) => new SloP99Detector(s),
  },
  {
    type: 'error_rate_spike',
    spec: ERROR_RATE.settings,
    enabledByDefault: true,
    create: (s) => new ErrorRateDetector(s),
  },
  {
    type: 'anomaly',
    spec: ANOMALY.settings,
    enabledByDefault: true,
    create: (s) => new AnomalyDetector(s),
  },
]

/** Per detector type: `enabled` and settings, as the configuration gives them (unvalidated). */
export type DetectorConfig = Readonly<Partial<Record<string, Readonly<Record<string, unknown>>>>>

/** One detector as configured: its effective settings and whether it runs. */
export interface ResolvedDetector {
  definition: DetectorDefinition
  enabled: boolean
  settings: Readonly<Record<string, unknown>>
}

export function definitionOf(type: string): DetectorDefinition | undefined {
  return DETECTORS.find((d) => d.type === type)
}

/**
 * Validates a detector configuration against the registry: every type known, `enabled` a boolean,
 * every setting known and in range. Errors name the key (`detectors.<type>.<setting>`).
 */
export function resolveDetectorConfig(config: DetectorConfig = {}, where = 'detectors'): ResolvedDetector[] {
  for (const type of Object.keys(config)) {
    if (!definitionOf(type)) {
      throw new SettingError(
        `${where}.${type}: unknown detector (known: ${DETECTORS.map((d) => d.type).join(', ')})`,
      )
    }
  }
  return DETECTORS.map((definition) => {
    const { enabled, ...raw } = config[definition.type] ?? {}
    if (enabled !== undefined && typeof enabled !== 'boolean' && enabled !== 'true' && enabled !== 'false') {
      throw new SettingError(
        `${where}.${definition.type}.enabled: expected true or false, got ${JSON.stringify(enabled)}`,
      )
    }
    return {
      definition,
      enabled: enabled === undefined ? definition.enabledByDefault : enabled === true || enabled === 'true',
      settings: resolveSettings(definition.spec, raw, `${where}.${definition.type}`),
    }
  })
}

/** The detectors a configuration runs, fresh (detectors keep state: one set per consumer or run). */
export function buildDetectors(config: DetectorConfig | readonly ResolvedDetector[] = {}): Detector[] {
  const resolved = Array.isArray(config)
    ? (config as readonly ResolvedDetector[])
    : resolveDetectorConfig(config as DetectorConfig)
  return resolved.filter((r) => r.enabled).map((r) => r.definition.create({ ...r.settings }))
}

/** What a detector reads: its own statement, or the registry's for detectors outside the kernel. */
export function readsOf(definition: DetectorDefinition): DetectorReads {
  return definition.reads ?? definition.create({}).reads ?? { spans: [], hw: [] }
}
