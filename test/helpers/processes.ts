/**
 * `breakid` commands as child processes, for tests that kill and restart them: their combined output,
 * a wait for a line, signals, and the exit.
 */
import { type ChildProcess, spawn } from 'node:child_process'
import { join } from 'node:path'

const CLI = join(import.meta.dirname, '..', '..', 'bin', 'breakid.mjs')

export interface BreakidProcess {
  readonly child: ChildProcess
  output(): string
  /** resolves when the output matches, rejects after `timeoutMs` or when the process exits first */
  waitForOutput(pattern: RegExp, timeoutMs?: number): Promise<void>
  kill(signal: NodeJS.Signals): Promise<number | null>
}

export function startBreakid(args: string[], env: Record<string, string>): BreakidProcess {
  const child = spawn(process.execPath, [CLI, ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
  })
  let out = ''
  const listeners = new Set<() => void>()
  const onData = (d: Buffer) => {
    out += d.toString()
    for (const l of listeners) l()
  }
  child.stdout!.on('data', onData)
  child.stderr!.on('data', onData)
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)))
  return {
    child,
    output: () => out,
    waitForOutput: (pattern, timeoutMs = 60_000) =>
      new Promise<void>((resolve, reject) => {
        const check = () => {
          if (pattern.test(out)) done(resolve)
        }
        const timer = setTimeout(
          () => done(() => reject(new Error(`no ${pattern} in ${timeoutMs} ms:\n${out.slice(-2000)}`))),
          timeoutMs,
        )
        const done = (f: () => void) => {
          clearTimeout(timer)
          listeners.delete(check)
          f()
        }
        listeners.add(check)
        void exited.then((code) =>
          done(() =>
            pattern.test(out)
              ? resolve()
              : reject(new Error(`exited ${code} before ${pattern}:\n${out.slice(-2000)}`)),
          ),
        )
        check()
      }),
    kill: async (signal) => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal)
      return exited
    },
  }
}
