/**
 * `breakid up` that cannot start prints the error and exits non-zero, after stopping what already
 * started (the store, the bus, the receiver, the pipeline, the engine): it used to hang on the open
 * servers when the engine failed to start.
 */
import assert from 'node:assert/strict'
import { spawn } from 'node:child_process'
import { existsSync, mkdtempSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'
import { upStatePath } from '../../app/store.ts'

const ROOT = fileURLToPath(new URL('../..', import.meta.url))

/** Runs `breakid up` to its exit (killed after 120 s: a hang fails the test). */
function up(args: string[], env: Record<string, string> = {}) {
  const dataDir = join(mkdtempSync(join(tmpdir(), 'breakid-up-fail-')), 'data')
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/breakid.mjs'),
      'up',
      '--data-dir',
      dataDir,
      '--log-level',
      'silent',
      '--no-collect',
      '--model',
      'mlp',
      '--duration',
      '2s',
      ...args,
    ],
    // the embedded bus: this is about `up` itself, not the broker
    { cwd: ROOT, env: { ...process.env, KAFKA_BROKERS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] },
  )
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d) => (stdout += d))
  child.stderr.on('data', (d) => (stderr += d))
  const killer = setTimeout(() => child.kill('SIGKILL'), 120_000)
  return new Promise<{
    code: number | null
    signal: string | null
    stdout: string
    stderr: string
    dataDir: string
  }>((resolve) =>
    child.once('exit', (code, signal) => {
      clearTimeout(killer)
      resolve({ code, signal, stdout, stderr, dataDir })
    }),
  )
}

test('an engine that cannot load its model: up prints why and exits 1', { timeout: 150_000 }, async () => {
  // a model cache under a file: the model cannot be written, so engine.start throws
  const run = await up([], { BREAKID_MODEL_CACHE: '/dev/null/models' })
  assert.equal(run.signal, null, `up hung and was killed; stdout:\n${run.stdout}`)
  assert.equal(run.code, 1, run.stderr)
  assert.match(run.stderr, /^breakid up: .*\/dev\/null\/models/m)
  assert.ok(!existsSync(join(run.dataDir, 'api-token')), 'the generated token was removed')
  assert.ok(!existsSync(upStatePath(run.dataDir)), 'no state file left for a run that never served')
})

test('a port already taken: the started engine is stopped again and up exits 1', {
  timeout: 150_000,
}, async () => {
  const taken: Server = createServer()
  await new Promise<void>((r) => taken.listen(0, '127.0.0.1', r))
  const port = (taken.address() as { port: number }).port
  try {
    const run = await up(['--port', String(port)])
    assert.equal(run.signal, null, `up hung and was killed; stdout:\n${run.stdout}`)
    assert.equal(run.code, 1, run.stderr)
    assert.match(run.stderr, /^breakid up: .*EADDRINUSE/m)
    assert.ok(!existsSync(join(run.dataDir, 'api-token')), 'the generated token was removed')
  } finally {
    taken.close()
  }
})
