/**
 * The telemetry code of another commit, next to this checkout's, so a benchmark can run old and new
 * side by side in one run: `git archive` of the folders the engine, the emitter and the producer
 * thread load (bus, contract, core, engine, package.json) into a temporary folder whose node_modules
 * is this checkout's. The default baseline is where this branch left main (`git merge-base HEAD main`);
 * TELEMETRY_BENCH_BASELINE names another commit.
 */
import { execFileSync } from 'node:child_process'
import { existsSync, mkdirSync, realpathSync, renameSync, rmSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'

const REPO = fileURLToPath(new URL('..', import.meta.url))
const PATHS = ['package.json', 'bus', 'contract', 'core', 'engine']

export interface CodeRoot {
  /** what the results call it: `baseline` or `current` */
  name: string
  /** the folder whose bus/, contract/, engine/telemetry/ a benchmark child imports */
  root: string
  /** the commit (current: HEAD, plus `+dirty` when the working tree differs) */
  commit: string
}

const git = (...args: string[]) => execFileSync('git', args, { cwd: REPO, encoding: 'utf8' }).trim()

/** This checkout. */
export function currentRoot(): CodeRoot {
  const dirty = git('status', '--porcelain', '--', ...PATHS, 'bench').length > 0
  return {
    name: 'current',
    root: REPO,
    commit: git('rev-parse', '--short=12', 'HEAD') + (dirty ? '+dirty' : ''),
  }
}

/** The baseline commit's telemetry code, extracted once per commit. */
export function baselineRoot(ref = process.env.TELEMETRY_BENCH_BASELINE): CodeRoot {
  const sha = git('rev-parse', ref ?? git('merge-base', 'HEAD', 'main'))
  const root = join(tmpdir(), `breakid-baseline-${sha.slice(0, 12)}`)
  if (!existsSync(join(root, 'engine', 'engine.ts'))) {
    rmSync(root, { recursive: true, force: true })
    const staging = `${root}.${process.pid}`
    rmSync(staging, { recursive: true, force: true })
    mkdirSync(staging, { recursive: true })
    const archive = execFileSync('git', ['archive', sha, ...PATHS], { cwd: REPO, maxBuffer: 1 << 28 })
    execFileSync('tar', ['-x', '-C', staging], { input: archive })
    symlinkSync(realpathSync(join(REPO, 'node_modules')), join(staging, 'node_modules'))
    renameSync(staging, root)
  }
  return { name: 'baseline', root, commit: sha.slice(0, 12) }
}
