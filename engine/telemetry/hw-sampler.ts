/**
 * Samples the process and its devices every `intervalMs` and emits one HwSample per interval.
 * Counters (CPU, GC, executor busy, arrivals) are deltas over the interval; gauges (RSS, queue depth,
 * in-flight) are read at its end.
 */
import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks'
import type { DeviceSample, HwSample } from '../../contract/records.ts'
import type { Lifecycle } from '../../bus/transport.ts'
import { type HostProbe, UNKNOWN_HOST } from './host-probe.ts'
import type { NvidiaSmi } from './nvidia-smi.ts'

/** What the engine reports about itself at each sample. */
export interface EngineGauges {
  queueDepth(): number
  inFlight(): number
  /** cumulative counters; the sampler takes deltas */
  arrivals(): number
  completions(): number
  executorBusyUs(): number
}

export interface HwSamplerOptions {
  identity: { fleet: string; host: string; instance: string }
  gauges: EngineGauges
  emit: (sample: HwSample) => void
  intervalMs?: number
  gpu?: NvidiaSmi
  /** host CPU, pressure and cgroup throttling; absent → those fields are null */
  host?: HostProbe
  /** device name reported when there is no GPU */
  cpuDevice?: string
  /** the run the sample belongs to (`run_id`), read at each sample; default: none (null) */
  runId?: () => string | null
}

export class HwSampler implements Lifecycle {
  private timer: NodeJS.Timeout | undefined
  private readonly loopDelay = monitorEventLoopDelay({ resolution: 10 })
  private gcMs = 0
  private readonly gcObserver = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) this.gcMs += e.duration
  })
  private last = { at: 0, cpu: process.cpuUsage(), gcMs: 0, arrivals: 0, completions: 0, busyUs: 0 }
  readonly intervalMs: number

  constructor(private readonly opts: HwSamplerOptions) {
    this.intervalMs = opts.intervalMs ?? 1_000
  }

  async start(): Promise<void> {
    this.opts.host?.read() // the first host CPU reading is the baseline of the first interval
    this.loopDelay.enable()
    this.gcObserver.observe({ entryTypes: ['gc'] })
    this.last = this.read()
    this.timer = setInterval(() => void this.tick(), this.intervalMs)
    this.timer.unref()
  }

  private read() {
    const g = this.opts.gauges
    return {
      at: performance.now(),
      cpu: process.cpuUsage(),
      gcMs: this.gcMs,
      arrivals: g.arrivals(),
      completions: g.completions(),
      busyUs: g.executorBusyUs(),
    }
  }

  /** Takes one sample now (also used by tests). */
  async tick(): Promise<HwSample> {
    const now = this.read()
    const wallUs = Math.max(1, (now.at - this.last.at) * 1000)
    const cpuUs = now.cpu.user - this.last.cpu.user + (now.cpu.system - this.last.cpu.system)
    const mem = process.memoryUsage()
    // the host now, over the same interval as the process counters (nvidia-smi may take a while)
    const host = this.opts.host?.read(now.at) ?? UNKNOWN_HOST
    const devices: DeviceSample[] = (await this.opts.gpu?.sample()) ?? []
    const sample: HwSample = {
      timestamp_us: Math.round((performance.timeOrigin + now.at) * 1000),
      ...this.opts.identity,
      interval_ms: Math.round(wallUs / 1000),
      process_cpu: cpuUs / wallUs,
      rss_bytes: mem.rss,
      heap_used_bytes: mem.heapUsed,
      event_loop_delay_p99_ms: this.loopDelay.percentile(99) / 1e6,
      gc_ms: now.gcMs - this.last.gcMs,
      queue_depth: this.opts.gauges.queueDepth(),
      in_flight: this.opts.gauges.inFlight(),
      arrivals: now.arrivals - this.last.arrivals,
      completions: now.completions - this.last.completions,
      executor_busy: Math.min(1, (now.busyUs - this.last.busyUs) / wallUs),
      devices:
        devices.length > 0
          ? devices
          : [
              {
                device: this.opts.cpuDevice ?? 'cpu',
                utilization: null,
                memory_used_bytes: null,
                memory_total_bytes: null,
                power_w: null,
                temperature_c: null,
              },
            ],
      run_id: this.opts.runId?.() ?? null,
      ...host,
    }
    this.loopDelay.reset()
    this.last = now
    this.opts.emit(sample)
    return sample
  }

  async stop(): Promise<void> {
    if (this.timer) clearInterval(this.timer)
    this.timer = undefined
    this.loopDelay.disable()
    this.gcObserver.disconnect()
  }
}
