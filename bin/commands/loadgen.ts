/** `breakid loadgen`: open-loop load against an Open Inference Protocol endpoint. */
import { isLoopback, runLoad } from '../../engine/loadgen.ts'
import { getModel, isModelName, MODEL_NAMES, toKServeInputs } from '../../engine/models/zoo.ts'
import { InvalidInputError } from '../../ingest/errors.ts'
import { parseDurationMs, parsePositive } from '../args.ts'
import type { Command } from '../cli.ts'
import { parseModelFlag } from './serve.ts'

export const loadgen: Command = {
  summary: 'send open-loop load to a KServe v2 endpoint and report latency percentiles',
  usage: 'breakid loadgen --url http://127.0.0.1:8000 --model mlp [--rate 100] [--duration 30s]',
  options: {
    url: { type: 'string', default: 'http://127.0.0.1:8000' },
    model: { type: 'string', default: 'mlp' },
    rate: { type: 'string', default: '100' },
    duration: { type: 'string', default: '30s' },
    arrival: { type: 'string', default: 'constant' },
    'allow-remote': { type: 'boolean', default: false },
  },
  help: {
    url: 'engine base URL (default http://127.0.0.1:8000)',
    model: `model to load: ${MODEL_NAMES.join(', ')} (with :w=…,r=… as served)`,
    rate: 'requests per second (default 100)',
    duration: 'how long to send (default 30s)',
    arrival: 'constant | poisson (default constant)',
    'allow-remote': 'allow a non-loopback target (off by default: load tests stay on this machine)',
  },
  async run({ values }) {
    const base = String(values.url).replace(/\/$/, '')
    if (!values['allow-remote'] && !isLoopback(base)) {
      throw new InvalidInputError(
        `--url ${base} is not a loopback address; pass --allow-remote to load another host`,
      )
    }
    const spec = parseModelFlag(String(values.model))
    if (!isModelName(spec.name)) throw new InvalidInputError(`unknown model ${spec.name}`)
    const arrival = String(values.arrival)
    if (arrival !== 'constant' && arrival !== 'poisson')
      throw new InvalidInputError('--arrival: constant | poisson')
    const bodies = Array.from({ length: 16 }, (_, seed) =>
      JSON.stringify({ inputs: toKServeInputs(getModel(spec.name).inputGenerator(seed, 1, spec.options)) }),
    )
    const report = await runLoad({
      url: `${base}/v2/models/${spec.name}/infer`,
      bodies,
      ratePerSec: parsePositive(values.rate, 'rate'),
      durationMs: parseDurationMs(values.duration, 'duration'),
      arrival,
    })
    console.log(JSON.stringify(report, null, 2))
    return report.ok > 0 ? 0 : 1
  },
}
