/**
 * A detector consumer restarted mid-stream resumes with its baselines and open alerts from
 * ClickHouse (chDB) instead of relearning. Each scenario runs twice: with the state store, and as a
 * control without it — the control must behave differently (warm-up, an alert that never resolves),
 * or the check proves nothing.
 */
import assert from 'node:assert/strict'
import { mkdtemp, rm } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { after, before, test } from 'node:test'
import { DetectorConsumer } from '../../detectors/consumer.ts'
import { StarvationDetector } from '../../detectors/starvation/detector.ts'
import { ClickHouseStateStore, MemoryStateStore } from '../../detectors/state-store.ts'
import { type ClickHouse, openClickHouse } from '../../store/client.ts'
import { migrate } from '../../store/migrations.ts'
import type { Alert } from '../../contract/records.ts'
import { codecs, TOPICS } from '../../contract/topics.ts'
import { createLogger } from '../../core/logger.ts'
import { EmbeddedBus } from '../../bus/embedded-bus.ts'
import { makeHwSample } from '../../contract/synthetic.ts'
import { series } from '../helpers/series.ts'
import { waitFor } from '../helpers/wait.ts'

const logger = createLogger('silent')
const GROUP = 'breakid-detect'
const T0_US = 1_767_225_600_000_000

let dataDir = ''
let ch: ClickHouse
let dbSeq = 0
before(async () => {
  dataDir = await mkdtemp(join(tmpdir(), 'breakid-restart-'))
  ch = openClickHouse({ dataDir, database: 'restart_0' })
})
after(async () => {
  await ch.close()
  await rm(dataDir, { recursive: true, force: true })
})

/** a fresh migrated database on the file's one chDB session */
async function freshStore(): Promise<{ db: ClickHouse; store: ClickHouseStateStore }> {
  const db = openClickHouse({ dataDir, database: `restart_${++dbSeq}` })
  await migrate(db)
  return { db, store: new ClickHouseStateStore(db) }
}

/** busy / in-flight / queued per step, as in starvation.test.ts */
function phase(busy: string, inFlight: string, queued: string) {
  const b = series(busy)
  const f = series(inFlight)
  const q = series(queued)
  assert.equal(new Set([b.length, f.length, q.length]).size, 1, 'series lengths differ')
  return b.map((v, i) => ({ busy: v, inFlight: f[i]!, queued: q[i]! }))
}

interface Run {
  bus: EmbeddedBus
  alerts: (Alert & { step: number })[]
  step: number
  /** publishes samples from the current step on and waits until the running consumer committed them */
  feed(steps: ReturnType<typeof phase>, instance?: string): Promise<void>
  consumer(
    store?: ClickHouseStateStore | MemoryStateStore,
    everyRecords?: number,
    more?: { resolveOnStop?: boolean; staleAfterUs?: number },
  ): DetectorConsumer
}

function newRun(): Run {
  const bus = new EmbeddedBus({ retryDelayMs: 10 })
  const producer = bus.producer()
  const run: Run = {
    bus,
    alerts: [],
    step: 0,
    async feed(steps, instance = 'engine-0') {
      for (const s of steps) {
        const i = run.step++
        const sample = makeHwSample(i, {
          instance,
          timestamp_us: T0_US + i * 1_000_000,
          executor_busy: s.busy,
          in_flight: s.inFlight,
          queue_depth: s.queued,
        })
        await producer.send(TOPICS.hw, [{ key: sample.instance, value: codecs.hw.encode(sample) }])
      }
      await bus.drained(TOPICS.hw, GROUP)
    },
    consumer(store, everyRecords, more = {}) {
      return new DetectorConsumer({
        transport: bus,
        detectors: [new StarvationDetector()],
        logger,
        stateStore: store,
        ...more,
        checkpoint: everyRecords ? { everyRecords } : undefined,
        onAlert: (a) => run.alerts.push({ ...a, step: (a.updated_at_us - T0_US) / 1_000_000 }),
      })
    },
  }
  return run
}

const steady = () => phase('0.5x20', '3x20', '1x20') // past the 10-sample warm-up
const starved = () => phase('0.25x4', '60x4', '0x4')
const recovered = () => phase('0.5x5', '3x5', '1x5')

/** steady → restart → break → recovery; returns the alerts with the step each was raised at */
async function breakAfterRestart(withStore: boolean) {
  const { db, store } = await freshStore()
  const run = newRun()
  const first = run.consumer(withStore ? store : undefined)
  await first.start()
  await run.feed(steady())
  await first.stop()
  const second = run.consumer(withStore ? store : undefined) // a fresh StarvationDetector
  await second.start()
  await run.feed([...starved(), ...recovered()])
  await second.stop()
  await db.close()
  return run.alerts.map((a) => [a.status, a.step])
}

test('restart with the store: a break right after the restart is detected without a new warm-up', async () => {
  assert.deepEqual(await breakAfterRestart(true), [
    ['firing', 21], // starved from step 20 (the first sample after the restart), held 2 samples
    ['resolved', 26], // clear from step 24, 3 samples
  ])
})

test('control: restarted without the store, the detector is in warm-up and misses the same break', async () => {
  assert.deepEqual(await breakAfterRestart(false), [])
})

/** steady → break (fires) → stop and restart while firing → recovery */
async function firingAcrossRestart(withStore: boolean, resolveOnStop = true) {
  const { db, store } = await freshStore()
  const run = newRun()
  const first = run.consumer(withStore ? store : undefined, undefined, { resolveOnStop })
  await first.start()
  await run.feed([...steady(), ...starved()])
  await first.stop()
  const second = run.consumer(withStore ? store : undefined, undefined, { resolveOnStop })
  await second.start()
  await run.feed([...recovered(), ...steady()])
  await second.stop()
  await db.close()
  return run.alerts
}

test('an alert firing at the stop resolves then (reason shutdown), and nothing of it comes back after the restart', async () => {
  const alerts = await firingAcrossRestart(true)
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step, a.resolve_reason ?? null]),
    [
      ['firing', 21, null],
      ['resolved', 23, 'shutdown'], // at the newest event time the consumer saw (step 23)
    ],
  )
  assert.equal(alerts[1]!.id, alerts[0]!.id, 'the resolved record closes the alert it raised')
  assert.equal(alerts[1]!.starts_at_us, alerts[0]!.starts_at_us)
})

test('a break that goes on after a restart with restored state pages again once, not from stale state', async () => {
  const { db, store } = await freshStore()
  const run = newRun()
  const first = run.consumer(store)
  await first.start()
  await run.feed([...steady(), ...starved()])
  await first.stop()
  const second = run.consumer(store)
  await second.start()
  // still starved: judged against the restored baseline (no warm-up), a new episode held 2 samples
  await run.feed([...starved(), ...recovered()])
  await second.stop()
  await db.close()
  assert.deepEqual(
    run.alerts.map((a) => [a.status, a.step, a.resolve_reason ?? null]),
    [
      ['firing', 21, null],
      ['resolved', 23, 'shutdown'],
      ['firing', 25, null],
      ['resolved', 30, 'cleared'],
    ],
  )
  assert.notEqual(run.alerts[2]!.id, run.alerts[0]!.id, 'a new episode, a new id')
})

test('control (the old behaviour): without resolving on stop the alert stays open, and the next run resolves a page of the previous one', async () => {
  const alerts = await firingAcrossRestart(true, false)
  assert.deepEqual(
    alerts.map((a) => [a.status, a.step]),
    [
      ['firing', 21],
      ['resolved', 26], // delivered by the next run, for an alert of the previous one
    ],
  )
})

test('an alert of a key nothing evaluates any more resolves as stale', async () => {
  const store = new MemoryStateStore()
  const run = newRun()
  // a crash: the alert stays open in the stored state
  const first = run.consumer(store, undefined, { resolveOnStop: false })
  await first.start()
  await run.feed([...steady(), ...starved()])
  await first.stop()
  // the next run only ever sees engine-1: engine-0's alert is resolved stale 5 s of event time later
  const second = run.consumer(store, undefined, { staleAfterUs: 5_000_000 })
  await second.start()
  await run.feed(phase('0.5x20', '3x20', '1x20'), 'engine-1')
  await second.stop()
  assert.deepEqual(
    run.alerts.map((a) => [a.status, a.instance, a.resolve_reason ?? null]),
    [
      ['firing', 'engine-0', null],
      ['resolved', 'engine-0', 'stale'],
    ],
  )
  assert.equal(run.alerts[1]!.id, run.alerts[0]!.id)
  assert.ok(run.alerts[1]!.ends_at_us! <= T0_US + 24e6, 'ended when it was last evaluated')
})

test('state is checkpointed periodically while consuming, one row per instance, newest wins', async () => {
  const { db, store } = await freshStore()
  const run = newRun()
  const c = run.consumer(store, 5) // every 5 records
  await c.start()
  await run.feed(steady())
  const stored = async () => {
    const rs = await db.client.query({
      query: `SELECT detector_type, key, count() AS n FROM ${db.database}.detector_state GROUP BY detector_type, key`,
      format: 'JSONEachRow',
    })
    return rs.json<{ detector_type: string; key: string; n: string }>()
  }
  // before stop: only the periodic checkpoints can have written
  await waitFor(async () => (await stored()).length > 0, { message: 'a periodic checkpoint' })
  const rows = await stored()
  assert.deepEqual(
    rows.map((r) => [r.detector_type, r.key]),
    [['accelerator_starved', 'engine-0']],
  )
  assert.ok(Number(rows[0]!.n) >= 2, 'several checkpoints over 20 records')
  await c.stop()
  const loaded = await store.load(GROUP)
  assert.equal(loaded.length, 1)
  const state = JSON.parse(loaded[0]!.state) as { busy: { seen: number } }
  assert.equal(state.busy.seen, 20, 'the newest checkpoint (taken on stop) wins')
  await db.close()
})

test('unchanged keys are not rewritten, so a member does not overwrite state it no longer owns', async () => {
  const store = new MemoryStateStore()
  const run = newRun()
  const c = run.consumer(store)
  await c.start()
  await run.feed(steady())
  await c.stop()
  const key = `${GROUP}\u0000accelerator_starved\u0000engine-0`
  const again = run.consumer(store)
  await again.start() // restores engine-0
  // meanwhile the member that now owns engine-0 checkpoints newer state
  store.rows.set(key, { ...store.rows.get(key)!, state: '{"newer":true}' })
  await again.stop() // this member saw no engine-0 record since its restore
  assert.equal(store.rows.get(key)!.state, '{"newer":true}', 'the untouched key was not written back')
})
