import assert from 'node:assert/strict'
import { test } from 'node:test'
import { AlertLifecycle, type AlertEvidence } from '../../detectors/lifecycle.ts'
import { makeAlert } from '../../contract/synthetic.ts'

const evidence: AlertEvidence = (({ id, status, starts_at_us, ends_at_us, updated_at_us, ...rest }) => rest)(
  makeAlert(),
)

test('inactive → pending → firing → resolved, one record per transition', () => {
  const lc = new AlertLifecycle({ pendingSamples: 2, resolveSamples: 2 })
  //            t:   0      1     2     3     4      5      6      7
  const cond = [false, true, true, true, false, true, false, false]
  const states: string[] = []
  const out = cond.map((c, t) => {
    const a = lc.observe(t * 1_000_000, c, c ? evidence : undefined)
    states.push(lc.state)
    return a
  })
  assert.deepEqual(states, [
    'inactive',
    'pending',
    'firing',
    'firing',
    'firing',
    'firing',
    'firing',
    'inactive',
  ])
  const emitted = out.filter((a) => a !== undefined)
  assert.equal(emitted.length, 2)
  const [firing, resolved] = emitted
  assert.equal(firing!.status, 'firing')
  assert.equal(firing!.starts_at_us, 1_000_000, 'starts when the condition first held, not when it fired')
  assert.equal(resolved!.status, 'resolved')
  assert.equal(resolved!.id, firing!.id)
  assert.equal(resolved!.ends_at_us, 7_000_000)
})

test('a blip shorter than the hold time never fires', () => {
  const lc = new AlertLifecycle({ pendingSamples: 3 })
  const out = [true, true, false, true, false].map((c, t) => lc.observe(t, c, c ? evidence : undefined))
  assert.deepEqual(out, [undefined, undefined, undefined, undefined, undefined])
  assert.equal(lc.state, 'inactive')
})

test('the same onset gives the same alert id (replays and redeliveries dedupe)', () => {
  const ids = [0, 1].map(() => {
    const lc = new AlertLifecycle({ pendingSamples: 1 })
    return lc.observe(42, true, evidence)!.id
  })
  assert.equal(ids[0], ids[1])
})
