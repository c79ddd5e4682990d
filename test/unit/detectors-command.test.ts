import assert from 'node:assert/strict'
import { execFile } from 'node:child_process'
import { join } from 'node:path'
import { test } from 'node:test'
import { promisify } from 'node:util'
import { ALERT_TYPE_NAMES } from '../../contract/vocabulary.ts'

const CLI = join(import.meta.dirname, '../../bin/breakid.mjs')

async function capture(argv: string[]): Promise<{ code: number; out: string }> {
  const { stdout } = await promisify(execFile)(process.execPath, [CLI, ...argv], { env: { ...process.env } })
  return { code: 0, out: stdout }
}

test('breakid detectors lists every detector with its effective settings and what it reads', async () => {
  const { code, out } = await capture([
    'detectors',
    '--json',
    '--detectors',
    'slo_p99_breach.sloP99MsByModel.resnet50=250,anomaly.enabled=false',
  ])
  assert.equal(code, 0)
  const doc = JSON.parse(out) as {
    detectors: {
      type: string
      enabled: boolean
      reads: { spans: string[]; hw: string[] }
      settings: Record<string, { value: unknown; default: unknown; doc: string }>
    }[]
  }
  assert.deepEqual(
    new Set(doc.detectors.map((d) => d.type)),
    new Set(ALERT_TYPE_NAMES),
    'every alert type has its detector',
  )
  const slo = doc.detectors.find((d) => d.type === 'slo_p99_breach')!
  assert.deepEqual(slo.settings.sloP99MsByModel, {
    value: { resnet50: 250 },
    default: {},
    doc: slo.settings.sloP99MsByModel!.doc,
  } as never)
  assert.ok(slo.reads.spans.includes('total_us'))
  const hc = doc.detectors.find((d) => d.type === 'host_contention')!
  assert.ok(hc.reads.hw.includes('psi_cpu_some_total_us') && hc.reads.spans.includes('compute_us'))
  assert.equal(doc.detectors.find((d) => d.type === 'anomaly')!.enabled, false)
  const text = await capture(['detectors'])
  assert.match(text.out, /^host_contention {2}on — /m)
  assert.match(text.out, /sloP99Ms +500 — /)
})
