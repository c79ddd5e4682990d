/**
 * What the host does around the engine: CPU used by every process (/proc/stat), pressure-stall
 * information (/proc/pressure/{cpu,memory,io}, Linux ≥ 4.20 with PSI enabled) and the cgroup's CPU
 * limit and throttling (cgroup v2 `cpu.max`/`cpu.stat`, or v1 `cpu.cfs_*`/`cpu.stat`). It is what
 * tells a noisy neighbour or a CPU limit apart from a break in the engine (detectors/host-contention).
 * And what that costs this process: how long its threads were runnable but waited for a CPU
 * (/proc/self/task/<tid>/schedstat, the scheduler's run-queue delay) — measured directly, so a
 * neighbour that was there before the engine started is still seen, where a baseline would have
 * learned it as normal.
 *
 * Every reading is optional: where a file is missing (older kernels, macOS, containers without
 * cgroup access) its fields are null, and `available()` says which sources exist, so the detector
 * can say once that it is off instead of guessing.
 */
import { readdirSync, readFileSync } from 'node:fs'
import { availableParallelism } from 'node:os'
import { join } from 'node:path'
import type { HwSample } from '../../contract/records.ts'

export type HostFields = Pick<
  HwSample,
  | 'host_cpu'
  | 'host_cpus'
  | 'psi_cpu_some_avg10'
  | 'psi_cpu_some_total_us'
  | 'psi_cpu_full_avg10'
  | 'psi_cpu_full_total_us'
  | 'psi_memory_some_avg10'
  | 'psi_memory_some_total_us'
  | 'psi_memory_full_avg10'
  | 'psi_memory_full_total_us'
  | 'psi_io_some_avg10'
  | 'psi_io_some_total_us'
  | 'psi_io_full_avg10'
  | 'psi_io_full_total_us'
  | 'cgroup_cpu_limit'
  | 'cgroup_nr_throttled'
  | 'cgroup_throttled_us'
  | 'process_cpu_wait'
>

/** Every host field null: what a sample says where nothing about the host is known. */
export const UNKNOWN_HOST: Readonly<HostFields> = Object.freeze({
  host_cpu: null,
  host_cpus: null,
  psi_cpu_some_avg10: null,
  psi_cpu_some_total_us: null,
  psi_cpu_full_avg10: null,
  psi_cpu_full_total_us: null,
  psi_memory_some_avg10: null,
  psi_memory_some_total_us: null,
  psi_memory_full_avg10: null,
  psi_memory_full_total_us: null,
  psi_io_some_avg10: null,
  psi_io_some_total_us: null,
  psi_io_full_avg10: null,
  psi_io_full_total_us: null,
  cgroup_cpu_limit: null,
  cgroup_nr_throttled: null,
  cgroup_throttled_us: null,
  process_cpu_wait: null,
})

export interface HostProbeOptions {
  /** root of the filesystem to read (tests point it at a fixture tree). Default '/' */
  root?: string
  /** kernel clock ticks per second of /proc/stat (USER_HZ; 100 on every mainstream Linux) */
  ticksPerSecond?: number
}

interface CpuTicks {
  busy: number
  atMs: number
}

const PSI_RESOURCES = ['cpu', 'memory', 'io'] as const

export class HostProbe {
  private readonly root: string
  private readonly hz: number
  private lastCpu: CpuTicks | undefined
  /** each thread's cumulative time on a CPU and on a run queue (ns) at the previous reading */
  private lastSched = new Map<string, { runNs: number; waitNs: number }>()
  private lastWaitAtMs: number | undefined
  private readonly cgroupDir: { dir: string; v2: boolean } | undefined

  constructor(opts: HostProbeOptions = {}) {
    this.root = opts.root ?? '/'
    this.hz = opts.ticksPerSecond ?? 100
    this.cgroupDir = this.findCgroup()
  }

  /** Which sources this host has (read once; the detector reports a missing PSI once). */
  available(): { procStat: boolean; psi: boolean; cgroup: boolean; schedstat: boolean } {
    return {
      procStat: this.text('proc/stat') !== undefined,
      psi: this.text('proc/pressure/cpu') !== undefined,
      cgroup: this.cgroupDir !== undefined,
      schedstat: this.text('proc/self/schedstat') !== undefined,
    }
  }

  /** One reading; `host_cpu` is a rate since the previous call (null on the first). */
  read(nowMs: number = performance.now()): HostFields {
    const out: HostFields = {
      ...UNKNOWN_HOST,
      host_cpu: this.hostCpu(nowMs),
      host_cpus: availableParallelism(),
      process_cpu_wait: this.runQueueWait(nowMs),
    }
    for (const resource of PSI_RESOURCES) Object.assign(out, this.psi(resource))
    Object.assign(out, this.cgroup())
    return out
  }

  private text(path: string): string | undefined {
    try {
      return readFileSync(join(this.root, path), 'utf8')
    } catch {
      return undefined
    }
  }

  /** CPU seconds per wall second of the whole host: busy ticks (all but idle and iowait) / wall. */
  private hostCpu(nowMs: number): number | null {
    const line = this.text('proc/stat')?.split('\n', 1)[0]
    if (!line?.startsWith('cpu ')) return null
    const t = line.trim().split(/\s+/).slice(1).map(Number)
    if (t.length < 4 || t.some((n) => !Number.isFinite(n))) return null
    const total = t.slice(0, 8).reduce((a, b) => a + b, 0)
    const idle = (t[3] ?? 0) + (t[4] ?? 0)
    const now: CpuTicks = { busy: total - idle, atMs: nowMs }
    const last = this.lastCpu
    this.lastCpu = now
    if (!last || now.atMs <= last.atMs) return null
    return (now.busy - last.busy) / this.hz / ((now.atMs - last.atMs) / 1000)
  }

  /**
   * Seconds per wall second this process's threads waited on a run queue, since the previous call
   * (null on the first, or without schedstat: kernels built without CONFIG_SCHED_INFO, macOS, or
   * a kernel that reports zeros for every thread). A thread born in the interval counts all its
   * wait, and so does one whose counters went back (its id was reused); one that ended loses its
   * last interval's.
   */
  private runQueueWait(nowMs: number): number | null {
    let tids: string[]
    try {
      tids = readdirSync(join(this.root, 'proc/self/task'))
    } catch {
      return null
    }
    const now = new Map<string, { runNs: number; waitNs: number }>()
    let waitedNs = 0
    let ranNs = 0
    for (const tid of tids) {
      // schedstat: time on a CPU, time waiting on a run queue (both ns), timeslices run
      const [runNs, waitNs] = (this.text(`proc/self/task/${tid}/schedstat`) ?? '').split(' ').map(Number)
      if (!Number.isFinite(runNs) || !Number.isFinite(waitNs)) continue
      const t = { runNs: runNs!, waitNs: waitNs! }
      now.set(tid, t)
      ranNs += t.runNs
      const last = this.lastSched.get(tid)
      const same = last !== undefined && t.runNs >= last.runNs && t.waitNs >= last.waitNs
      waitedNs += same ? t.waitNs - last.waitNs : t.waitNs
    }
    const lastAt = this.lastWaitAtMs
    this.lastSched = now
    this.lastWaitAtMs = nowMs
    // a running process has spent time on a CPU: all zeros is a kernel that does not count
    if (ranNs === 0 || lastAt === undefined || nowMs <= lastAt) return null
    return waitedNs / 1e6 / (nowMs - lastAt)
  }

  private psi(resource: (typeof PSI_RESOURCES)[number]): Partial<HostFields> {
    const text = this.text(`proc/pressure/${resource}`)
    const out: Record<string, number | null> = {}
    for (const kind of ['some', 'full'] as const) {
      const m = text && new RegExp(`^${kind} avg10=([\\d.]+) .*total=(\\d+)`, 'm').exec(text)
      out[`psi_${resource}_${kind}_avg10`] = m ? Number(m[1]) : null
      out[`psi_${resource}_${kind}_total_us`] = m ? Number(m[2]) : null
    }
    return out as Partial<HostFields>
  }

  /** The process's own cgroup: the v2 unified path, or v1's cpu controller. */
  private findCgroup(): { dir: string; v2: boolean } | undefined {
    const lines = this.text('proc/self/cgroup')?.split('\n') ?? []
    const v2 = lines.find((l) => l.startsWith('0::'))
    if (v2) {
      const dir = join('sys/fs/cgroup', v2.slice(3))
      if (this.text(join(dir, 'cpu.stat')) !== undefined) return { dir, v2: true }
    }
    const v1 = lines.map((l) => l.split(':')).find((p) => p[1]?.split(',').includes('cpu'))
    if (v1) {
      for (const mount of ['sys/fs/cgroup/cpu', 'sys/fs/cgroup/cpu,cpuacct']) {
        const dir = join(mount, v1[2] ?? '/')
        if (this.text(join(dir, 'cpu.stat')) !== undefined) return { dir, v2: false }
      }
    }
    return undefined
  }

  private cgroup(): Partial<HostFields> {
    if (!this.cgroupDir) return {}
    const { dir, v2 } = this.cgroupDir
    const stat = this.text(join(dir, 'cpu.stat')) ?? ''
    const num = (key: string) => {
      const m = new RegExp(`^${key} (\\d+)$`, 'm').exec(stat)
      return m ? Number(m[1]) : null
    }
    let limit: number | null = null
    if (v2) {
      const [quota, period] = (this.text(join(dir, 'cpu.max')) ?? '').trim().split(/\s+/)
      if (quota && quota !== 'max' && Number(period) > 0) limit = Number(quota) / Number(period)
    } else {
      const quota = Number(this.text(join(dir, 'cpu.cfs_quota_us')))
      const period = Number(this.text(join(dir, 'cpu.cfs_period_us')))
      if (quota > 0 && period > 0) limit = quota / period
    }
    const throttledNs = v2 ? null : num('throttled_time')
    return {
      cgroup_cpu_limit: limit,
      cgroup_nr_throttled: num('nr_throttled'),
      cgroup_throttled_us: v2
        ? num('throttled_usec')
        : throttledNs === null
          ? null
          : Math.round(throttledNs / 1000),
    }
  }
}
