import { assertFields } from '../helpers/assert-fields.ts'
import assert from 'node:assert/strict'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { HostProbe } from '../../engine/telemetry/host-probe.ts'

const FIXTURES = join(import.meta.dirname, '../fixtures/host')

test('cgroup v2 host: PSI of cpu, memory and io, the CPU limit and throttling', () => {
  const probe = new HostProbe({ root: join(FIXTURES, 'v2') })
  assert.deepEqual(probe.available(), { procStat: true, psi: true, cgroup: true, schedstat: true })
  const r = probe.read(1_000)
  assertFields(r, {
    psi_cpu_some_avg10: 22.01,
    psi_cpu_some_total_us: 101_806_303,
    psi_cpu_full_avg10: 3.5,
    psi_memory_full_total_us: 7,
    psi_io_some_avg10: 1.25,
    psi_io_full_total_us: 456_789,
    cgroup_cpu_limit: 1.5,
    cgroup_nr_throttled: 42,
    cgroup_throttled_us: 1_234_567,
  })
  assert.equal(r.host_cpu, null, 'the first reading has no interval yet')
  assert.equal(r.process_cpu_wait, null, 'nor the run-queue wait')
})

test("run-queue wait: every thread's schedstat delay since the last reading, per wall second", () => {
  const root = mkdtempSync(join(tmpdir(), 'host-probe-'))
  cpSync(join(FIXTURES, 'v2'), root, { recursive: true })
  const probe = new HostProbe({ root })
  probe.read(10_000)
  const task = (tid: string, runNs: number, waitNs: number) => {
    mkdirSync(join(root, 'proc/self/task', tid), { recursive: true })
    writeFileSync(join(root, 'proc/self/task', tid, 'schedstat'), `${runNs} ${waitNs} 10\n`)
  }
  // over 2 s: thread 100 waited +0.6 s, 101 +0.2 s, and 102 was born and waited 0.2 s → 1 s / 2 s
  task('100', 6e9, 8e8)
  task('101', 2e9, 2.5e8)
  task('102', 1e8, 2e8)
  assert.equal(probe.read(12_000).process_cpu_wait, 0.5)
  // thread 102 ended; the others did not wait
  rmSync(join(root, 'proc/self/task/102'), { recursive: true })
  assert.equal(probe.read(13_000).process_cpu_wait, 0)
  // thread 101's id was reused by a new thread (its counters went back): all its 0.1 s counts
  task('101', 5e7, 1e8)
  assert.equal(probe.read(14_000).process_cpu_wait, 0.1)
  // a kernel that reports zeros for every thread does not count: unknown, not "no wait"
  task('100', 0, 0)
  task('101', 0, 0)
  assert.equal(probe.read(15_000).process_cpu_wait, null)
})

test('host CPU is busy ticks (all but idle and iowait) per wall second since the last reading', () => {
  const root = mkdtempSync(join(tmpdir(), 'host-probe-'))
  cpSync(join(FIXTURES, 'v2'), root, { recursive: true })
  const probe = new HostProbe({ root })
  probe.read(10_000)
  // +150 user, +50 system, +100 idle, +20 iowait ticks over 2 s at 100 ticks/s → 1.0 CPU
  writeFileSync(join(root, 'proc/stat'), 'cpu  1150 0 550 8100 120 0 0 0 0 0\n')
  assert.equal(probe.read(12_000).host_cpu, 1)
})

test('cgroup v1: quota/period and throttled_time (ns) in microseconds', () => {
  const r = new HostProbe({ root: join(FIXTURES, 'v1') }).read()
  assert.equal(r.cgroup_cpu_limit, 2)
  assert.equal(r.cgroup_nr_throttled, 3)
  assert.equal(r.cgroup_throttled_us, 5_000)
  assert.equal(r.psi_cpu_some_avg10, null, 'no /proc/pressure: PSI fields are null')
})

test('a host without any of the files degrades to nulls and says so', () => {
  const probe = new HostProbe({ root: join(FIXTURES, 'bare') })
  assert.deepEqual(probe.available(), { procStat: false, psi: false, cgroup: false, schedstat: false })
  const r = probe.read()
  assert.equal(r.host_cpu, null)
  assert.equal(r.psi_cpu_some_avg10, null)
  assert.equal(r.cgroup_cpu_limit, null)
  assert.equal(r.process_cpu_wait, null)
  assert.ok((r.host_cpus ?? 0) >= 1)
})

test('this machine: reading the real /proc never throws', () => {
  const probe = new HostProbe()
  probe.read()
  const r = probe.read(performance.now() + 1000)
  assert.equal(typeof r.host_cpus, 'number')
  if (probe.available().schedstat) assert.ok((r.process_cpu_wait ?? -1) >= 0, 'a run-queue wait')
})
