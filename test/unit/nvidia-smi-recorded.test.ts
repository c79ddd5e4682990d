import assert from 'node:assert/strict'
import { readFileSync } from 'node:fs'
import { test } from 'node:test'
import { NVIDIA_SMI_QUERY, parseNvidiaSmiCsv } from '../../engine/telemetry/nvidia-smi.ts'

test('parses nvidia-smi output recorded on a real H200 host (driver 580.159.04, CUDA 13.0)', () => {
  // recorded with: nvidia-smi <NVIDIA_SMI_QUERY> on an idle NVIDIA H200
  assert.deepEqual(NVIDIA_SMI_QUERY, [
    '--query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu',
    '--format=csv,noheader,nounits',
  ])
  const csv = readFileSync(new URL('../fixtures/nvidia-smi-h200-recorded.csv', import.meta.url), 'utf8')
  assert.deepEqual(parseNvidiaSmiCsv(csv), [
    {
      device: 'gpu0:NVIDIA H200',
      utilization: 0,
      memory_used_bytes: 0,
      memory_total_bytes: 143_771 * 1024 * 1024,
      power_w: 120.15,
      temperature_c: 40,
    },
  ])
})
