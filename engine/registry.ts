/**
 * The model repository: every (name, version) the engine serves, each with its own executor and
 * dynamic batcher, loaded and unloaded while requests flow (Triton's model-repository extension).
 *
 * Routing and draining go through leases: a request acquires a lease on one version before its first
 * await and releases it when answered. `unload` first stops routing new requests to the version
 * (state UNLOADING), then waits for its leases to reach zero and its batcher to empty, and only then
 * releases the onnxruntime session, so swapping versions under load drops nothing.
 */
import type { Logger } from 'pino'
import { BreakidError, InvalidInputError } from '../core/errors.ts'
import { type BatcherOptions, DynamicBatcher } from './batcher.ts'
import { type ExecutorOptions, ModelExecutor } from './executor.ts'
import { ensureModel, isModelName, MODEL_NAMES, type ModelMeta, type ModelOptions } from './models/zoo.ts'

export interface ModelSpec {
  name: string
  /** default 1 */
  version?: number
  options?: ModelOptions
}

export interface LoadedModel {
  meta: ModelMeta
  executor: ModelExecutor
  batcher: DynamicBatcher
}

/** Triton's model states in `POST /v2/repository/index`. */
export type ModelState = 'LOADING' | 'READY' | 'UNLOADING' | 'UNAVAILABLE'

export interface RepositoryIndexEntry {
  name: string
  version: string
  state: ModelState
  reason: string
}

/** A request's hold on one model version; `release` exactly once, when the request is answered. */
export interface ModelLease {
  readonly model: LoadedModel
  release(): void
}

export interface RegistryOptions {
  modelCacheDir: string
  logger: Logger
  /** batch ids name the instance */
  instance: string
  executor?: ExecutorOptions
  batching?: BatcherOptions
}

export class UnknownModelError extends BreakidError {
  constructor(name: string, known: string[]) {
    super(`unknown model "${name}"; serving: ${known.join(', ') || 'none'}`, {
      code: 'BREAKID_UNKNOWN_MODEL',
    })
  }
}

interface Entry {
  name: string
  version: number
  options?: ModelOptions
  state: ModelState
  reason: string
  model?: LoadedModel
  leases: number
  /** resolves the unload's wait when the last lease is released */
  onIdle?: () => void
  loading?: Promise<LoadedModel>
  unloading?: Promise<void>
}

const key = (name: string, version: number) => `${name}@${version}`

/** "2" → 2; anything but a positive integer → undefined */
export function parseVersion(v: string | number | undefined): number | undefined {
  if (v === undefined) return undefined
  const n = typeof v === 'number' ? v : /^\d+$/.test(v) ? Number(v) : Number.NaN
  return Number.isInteger(n) && n >= 1 ? n : undefined
}

export class ModelRegistry {
  private readonly entries = new Map<string, Entry>()
  /** executor time and batches of unloaded versions, so the engine's counters never go backwards */
  private retired = { busyUs: 0, batches: 0 }

  constructor(private readonly opts: RegistryOptions) {}

  /**
   * Loads a version (generating the model file if needed) and routes to it once ready. Loading a
   * version that is loading or ready returns it; one that is unloading is loaded again after the
   * unload finishes. Without options, a new version reuses those of a loaded version of the name.
   */
  async load(spec: ModelSpec): Promise<LoadedModel> {
    if (!isModelName(spec.name)) {
      throw new InvalidInputError(`model "${spec.name}" is not in the model zoo (${MODEL_NAMES.join(', ')})`)
    }
    const version = parseVersion(spec.version ?? 1)
    if (version === undefined) {
      throw new InvalidInputError(`model ${spec.name}: version must be an integer >= 1, got ${spec.version}`)
    }
    const k = key(spec.name, version)
    const existing = this.entries.get(k)
    if (existing?.state === 'READY' && existing.model) return existing.model
    if (existing?.state === 'LOADING' && existing.loading) return existing.loading
    if (existing?.state === 'UNLOADING' && existing.unloading) {
      await existing.unloading
      // another load may have started meanwhile: go through the checks again
      return this.load(spec)
    }

    const options = spec.options ?? this.byName(spec.name).find((e) => e.options)?.options
    const entry: Entry = { name: spec.name, version, options, state: 'LOADING', reason: '', leases: 0 }
    this.entries.set(k, entry)
    entry.loading = (async () => {
      try {
        const file = await ensureModel(spec.name, {
          cacheDir: this.opts.modelCacheDir,
          version,
          options,
        })
        const executor = await ModelExecutor.load(file.path, file.meta, this.opts.executor)
        const model: LoadedModel = {
          meta: file.meta,
          executor,
          batcher: new DynamicBatcher(executor, this.opts.instance, this.opts.batching),
        }
        entry.model = model
        entry.state = 'READY'
        this.opts.logger.info(
          { model: spec.name, version: file.meta.version, path: file.path },
          'model loaded',
        )
        return model
      } catch (err) {
        entry.state = 'UNAVAILABLE'
        entry.reason = `load failed: ${(err as Error).message}`
        throw err
      } finally {
        entry.loading = undefined
      }
    })()
    return entry.loading
  }

  /** The requested version if it is ready, else (no version given) the newest ready version. */
  get(name: string, version?: string | number): LoadedModel | undefined {
    return this.route(name, version)?.model
  }

  /** Like `get`, and holds the version until `release`: an unload waits for it. */
  acquire(name: string, version?: string | number): ModelLease | undefined {
    const entry = this.route(name, version)
    if (!entry?.model) return undefined
    entry.leases++
    let released = false
    return {
      model: entry.model,
      release: () => {
        if (released) return
        released = true
        entry.leases--
        if (entry.leases === 0) entry.onIdle?.()
      },
    }
  }

  private route(name: string, version?: string | number): Entry | undefined {
    if (version !== undefined) {
      const v = parseVersion(version)
      const e = v === undefined ? undefined : this.entries.get(key(name, v))
      return e?.state === 'READY' ? e : undefined
    }
    let newest: Entry | undefined
    for (const e of this.byName(name)) {
      if (e.state === 'READY' && (!newest || e.version > newest.version)) newest = e
    }
    return newest
  }

  private byName(name: string): Entry[] {
    return [...this.entries.values()].filter((e) => e.name === name)
  }

  /** Ready versions of a model, ascending ("1", "2", ...). */
  versions(name: string): string[] {
    return this.byName(name)
      .filter((e) => e.state === 'READY')
      .sort((a, b) => a.version - b.version)
      .map((e) => String(e.version))
  }

  /** Names with at least one ready version. */
  names(): string[] {
    return [...new Set([...this.entries.values()].filter((e) => e.state === 'READY').map((e) => e.name))]
  }

  /** The newest ready version of every model, by name (what `engine.models` shows). */
  newest(): Map<string, LoadedModel> {
    const out = new Map<string, LoadedModel>()
    for (const name of this.names()) out.set(name, this.get(name)!)
    return out
  }

  /** Every version holding a session: ready and unloading ones (queue depth, executor busy time). */
  live(): LoadedModel[] {
    return [...this.entries.values()].flatMap((e) => (e.model ? [e.model] : []))
  }

  /** Cumulative executor µs over every version ever loaded, unloaded ones included. */
  get executorBusyUs(): number {
    return this.live().reduce((n, m) => n + m.executor.busyUs, this.retired.busyUs)
  }

  /** Cumulative batches over every version ever loaded, unloaded ones included. */
  get executorBatches(): number {
    return this.live().reduce((n, m) => n + m.executor.batches, this.retired.batches)
  }

  index(): RepositoryIndexEntry[] {
    return [...this.entries.values()]
      .sort((a, b) => a.name.localeCompare(b.name) || a.version - b.version)
      .map((e) => ({ name: e.name, version: String(e.version), state: e.state, reason: e.reason }))
  }

  /**
   * Unloads one version, or every loaded version of the model when none is given, draining each:
   * new requests stop routing to it at once; the call resolves when the requests it already took are
   * answered and its session is released. Returns the versions unloaded.
   */
  async unload(name: string, version?: string | number): Promise<string[]> {
    let targets: Entry[]
    if (version === undefined) {
      targets = this.byName(name).filter((e) => e.state === 'READY' || e.state === 'LOADING')
    } else {
      const v = parseVersion(version)
      const e = v === undefined ? undefined : this.entries.get(key(name, v))
      targets = e && (e.state === 'READY' || e.state === 'LOADING') ? [e] : []
    }
    if (targets.length === 0) {
      const what = version === undefined ? name : `${name} version ${version}`
      throw new UnknownModelError(
        what,
        this.index()
          .filter((e) => e.state === 'READY')
          .map((e) => `${e.name}@${e.version}`),
      )
    }
    await Promise.all(targets.map((e) => this.drainEntry(e)))
    return targets.map((e) => String(e.version))
  }

  private drainEntry(entry: Entry): Promise<void> {
    if (entry.unloading) return entry.unloading
    entry.unloading = (async () => {
      // a load still in flight finishes first, so its session is released rather than leaked
      if (entry.loading) await entry.loading.catch(() => {})
      entry.state = 'UNLOADING'
      const model = entry.model
      if (model) {
        if (entry.leases > 0) await new Promise<void>((resolve) => (entry.onIdle = resolve))
        await model.batcher.drain()
        await model.executor.close()
        this.retired.busyUs += model.executor.busyUs
        this.retired.batches += model.executor.batches
      }
      entry.model = undefined
      entry.onIdle = undefined
      entry.state = 'UNAVAILABLE'
      entry.reason = 'unloaded'
      entry.unloading = undefined
      this.opts.logger.info({ model: entry.name, version: String(entry.version) }, 'model unloaded')
    })()
    return entry.unloading
  }

  /** Answers what every batcher holds (shutdown), without releasing sessions. */
  async drainAll(): Promise<void> {
    for (const m of this.live()) await m.batcher.drain()
  }

  /** Releases every session; call after `drainAll` and after the last request. */
  async close(): Promise<void> {
    for (const e of this.entries.values()) {
      if (e.loading) await e.loading.catch(() => {})
      if (e.model) {
        await e.model.executor.close()
        this.retired.busyUs += e.model.executor.busyUs
        this.retired.batches += e.model.executor.batches
      }
    }
    this.entries.clear()
  }
}
