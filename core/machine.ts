/** The machine a benchmark ran on, recorded next to its results. */
import os from 'node:os'

export function machineInfo() {
  const cpus = os.cpus()
  return {
    date: new Date().toISOString(),
    cpu: cpus[0]?.model ?? 'unknown',
    cores: cpus.length,
    memory_gib: Math.round(os.totalmem() / 2 ** 30),
    node: process.version,
    platform: `${os.platform()} ${os.release()}`,
  }
}
