/**
 * A Python virtual environment for tests that use a foreign official client as the oracle, created
 * under the git-ignored `.venv/` on first use (from PyPI, with pinned versions) and reused after.
 * Never the system Python's site-packages.
 */
import { execFile } from 'node:child_process'
import { existsSync } from 'node:fs'
import { join, resolve } from 'node:path'
import { promisify } from 'node:util'

const run = promisify(execFile)
const ROOT = resolve(import.meta.dirname, '../..')

/** Returns the venv's python, creating the venv and installing `packages` when an import fails. */
export async function pythonVenv(name: string, packages: string[], probeImport: string): Promise<string> {
  const dir = join(ROOT, '.venv', name)
  const python = join(dir, 'bin', 'python')
  const works = async () => {
    if (!existsSync(python)) return false
    try {
      await run(python, ['-c', `import ${probeImport}`], { timeout: 60_000 })
      return true
    } catch {
      return false
    }
  }
  if (await works()) return python
  if (!existsSync(python)) await run('python3', ['-m', 'venv', dir], { timeout: 120_000 })
  await run(python, ['-m', 'pip', 'install', '--quiet', '--disable-pip-version-check', ...packages], {
    timeout: 600_000,
  })
  if (!(await works())) throw new Error(`venv ${name}: "import ${probeImport}" still fails after installing`)
  return python
}

export async function runPython(python: string, script: string, args: string[], timeoutMs = 120_000) {
  const { stdout } = await run(python, [script, ...args], { timeout: timeoutMs, maxBuffer: 64 * 1024 * 1024 })
  return stdout
}
