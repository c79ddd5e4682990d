/**
 * GPU counters from `nvidia-smi` (NVML's command-line face), present on GPU hosts. Queried as CSV so
 * the parser does not depend on the human-readable layout; "[N/A]" and "[Not Supported]" become null.
 */
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import type { DeviceSample } from '../../contract/records.ts'

const run = promisify(execFile)

export const NVIDIA_SMI_QUERY = [
  '--query-gpu=index,name,utilization.gpu,memory.used,memory.total,power.draw,temperature.gpu',
  '--format=csv,noheader,nounits',
]

const MIB = 1024 * 1024

function num(field: string | undefined): number | null {
  if (field === undefined) return null
  const v = Number.parseFloat(field.trim())
  return Number.isFinite(v) ? v : null
}

export function parseNvidiaSmiCsv(stdout: string): DeviceSample[] {
  return stdout
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l.length > 0)
    .map((line) => {
      const [index, name, util, memUsed, memTotal, power, temp] = line.split(',').map((f) => f.trim())
      const u = num(util)
      const used = num(memUsed)
      const total = num(memTotal)
      return {
        device: `gpu${index}:${name}`,
        utilization: u === null ? null : u / 100,
        memory_used_bytes: used === null ? null : Math.round(used * MIB),
        memory_total_bytes: total === null ? null : Math.round(total * MIB),
        power_w: num(power),
        temperature_c: num(temp),
      }
    })
}

/** Returns [] on hosts without nvidia-smi, and remembers that so it is not retried every second. */
export class NvidiaSmi {
  private available: boolean | undefined

  constructor(private readonly binary = 'nvidia-smi') {}

  async sample(): Promise<DeviceSample[]> {
    if (this.available === false) return []
    try {
      const { stdout } = await run(this.binary, NVIDIA_SMI_QUERY, { timeout: 2_000 })
      this.available = true
      return parseNvidiaSmiCsv(stdout)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') this.available = false
      return []
    }
  }
}
