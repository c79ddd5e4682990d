/**
 * NVIDIA's own client as the oracle: `tritonclient[http]` (Python, a venv under .venv/, pinned) against
 * a real `breakid serve` process — server and model metadata, repository index, load and unload (the
 * client sends those bodies without a Content-Type), model configuration, inference with binary and
 * JSON outputs and gzip/deflate request bodies, and the statistics extension, with the API token as a
 * header where the server requires it (the model repository). tritonclient raises on
 * any HTTP error, so the script finishing is the first check; its answers are the second.
 */
import assert from 'node:assert/strict'
import { type ChildProcess, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { after, before, test } from 'node:test'
import { pythonVenv, runPython } from '../helpers/python-venv.ts'

const ROOT = resolve(import.meta.dirname, '../..')
let python = ''
let dir = ''
let serve: ChildProcess | undefined

before(async () => {
  python = await pythonVenv('triton', ['tritonclient[http]==2.73.0'], 'tritonclient.http')
  dir = mkdtempSync(join(tmpdir(), 'breakid-tritonclient-'))
})

after(() => {
  if (serve && serve.exitCode === null) serve.kill('SIGKILL')
  if (dir) rmSync(dir, { recursive: true, force: true })
})

/** `breakid serve` on a free port, embedded (no Kafka); resolves with its address. */
function startServe(): Promise<string> {
  const env: NodeJS.ProcessEnv = { ...process.env, BREAKID_LOG_LEVEL: 'info' }
  for (const k of ['KAFKA_BROKERS', 'CLICKHOUSE_URL', 'BREAKID_CONFIG', 'OTEL_EXPORTER_OTLP_ENDPOINT'])
    delete env[k]
  const child = spawn(
    process.execPath,
    [
      join(ROOT, 'bin/breakid.mjs'),
      'serve',
      '--port',
      '0',
      '--models',
      'mlp',
      '--data-dir',
      join(dir, 'data'),
    ],
    { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] },
  )
  serve = child
  return new Promise((resolvePromise, reject) => {
    let buffered = ''
    child.stderr!.on('data', (chunk: Buffer) => {
      buffered += chunk.toString()
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl)
        buffered = buffered.slice(nl + 1)
        try {
          const entry = JSON.parse(line) as { msg?: string; address?: string }
          if (entry.msg?.startsWith('serving')) resolvePromise(entry.address!)
        } catch {
          // not a log line
        }
      }
    })
    child.once('exit', (code) => reject(new Error(`breakid serve exited ${code}`)))
  })
}

interface DurationStat {
  count: number
  ns: number
}
interface Seen {
  live: boolean
  ready: boolean
  extensions: string[]
  index_before: string[]
  loaded_ready: boolean
  unloaded_ready: boolean
  config: {
    name: string
    platform: string
    max_batch_size: number
    input: { name: string; data_type: string; dims: number[] }[]
    output: { name: string; data_type: string; dims: number[] }[]
    dynamic_batching?: { max_queue_delay_microseconds: number }
  }
  config_versioned_equal: boolean
  infer: { shape: number[]; first: number; id: string }[]
  stats_all: string[]
  stats: {
    name: string
    version: string
    inference_count: number
    execution_count: number
    last_inference: number
    inference_stats: Record<string, DurationStat>
    batch_stats: { batch_size: number; compute_infer: DurationStat }[]
  }[]
  stats_version: unknown[]
}

test('tritonclient runs metadata, load/unload, config, inference and statistics against breakid serve', {
  timeout: 600_000,
}, async () => {
  const address = await startServe()
  const url = address.replace(/^http:\/\//, '')
  // the model repository takes the API token serve generated into its data directory; tritonclient
  // sends it as a header, as a Triton user sends any header their deployment needs
  const token = readFileSync(join(dir, 'data', 'api-token'), 'utf8').trim()
  assert.equal((await fetch(`${address}/v2/repository/index`, { method: 'POST' })).status, 401)
  const seen = JSON.parse(
    await runPython(python, join(import.meta.dirname, 'tritonclient/client.py'), [
      url,
      'mlp',
      'cnn',
      `Authorization=Bearer ${token}`,
    ]),
  ) as Seen

  assert.deepEqual([seen.live, seen.ready], [true, true])
  for (const ext of ['model_repository', 'model_configuration', 'statistics', 'binary_tensor_data']) {
    assert.ok(seen.extensions.includes(ext), ext)
  }
  assert.deepEqual(seen.index_before, ['mlp'])
  assert.deepEqual([seen.loaded_ready, seen.unloaded_ready], [true, false], 'load, then unload, took effect')

  const c = seen.config
  assert.deepEqual([c.name, c.platform, c.max_batch_size], ['mlp', 'onnxruntime_onnx', 8])
  assert.deepEqual(
    c.input,
    [{ name: 'features', data_type: 'TYPE_FP32', dims: [16] }],
    'dims without the batch',
  )
  assert.deepEqual(c.output, [{ name: 'scores', data_type: 'TYPE_FP32', dims: [4] }])
  assert.equal(c.dynamic_batching?.max_queue_delay_microseconds, 2000)
  assert.ok(seen.config_versioned_equal)

  // five requests of 3 rows: the same input gives the same output however the body travelled
  assert.equal(seen.infer.length, 5)
  assert.deepEqual(
    seen.infer.map((r) => [r.id, r.shape]),
    seen.infer.map((_, i) => [`tc-${i}`, [3, 4]]),
  )
  assert.equal(new Set(seen.infer.map((r) => r.first)).size, 1)

  assert.deepEqual(seen.stats_all, ['mlp'])
  const [s] = seen.stats
  assert.ok(s)
  assert.deepEqual([s.name, s.version, s.inference_count], ['mlp', '1', 15])
  assert.equal(s.inference_stats.success!.count, 5)
  assert.equal(s.inference_stats.fail!.count, 0)
  assert.ok(s.inference_stats.compute_infer!.ns > 0)
  assert.ok(s.execution_count >= 1 && s.execution_count <= 5)
  assert.equal(
    s.batch_stats.reduce((n, b) => n + b.compute_infer.count, 0),
    s.execution_count,
    'every execution in one batch size',
  )
  assert.ok(Math.abs(s.last_inference - Date.now()) < 600_000, 'last inference: epoch ms')
  assert.deepEqual(seen.stats_version, seen.stats)

  const exited = new Promise<number | null>((r) => serve!.once('exit', (code) => r(code)))
  serve!.kill('SIGTERM')
  assert.equal(await exited, 0)
})
