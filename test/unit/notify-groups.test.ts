import assert from 'node:assert/strict'
import { test } from 'node:test'
import { FleetGroups } from '../../notify/groups.ts'
import { jsonBody, slackBody } from '../../notify/bodies.ts'
import { makeAlert } from '../../contract/synthetic.ts'

const T0 = 1_767_225_600_000_000

test('fleet groups: the same break on several instances is one group until the last one resolves', () => {
  const groups = new FleetGroups()
  const a = makeAlert({
    type: 'queue_growth',
    fleet: 'eu-1',
    instance: 'i0',
    stage: 'queue_wait',
    starts_at_us: T0,
  })
  const b = { ...a, instance: 'i1', starts_at_us: T0 + 5e6 }
  const other = { ...a, fleet: 'us-1', instance: 'i9' }
  assert.deepEqual(groups.observe(a), {
    key: 'queue_growth/eu-1/queue_wait',
    firing_instances: ['i0'],
    first_started_at_us: T0,
  })
  assert.deepEqual(groups.observe(b).firing_instances, ['i0', 'i1'])
  assert.deepEqual(groups.observe(other).firing_instances, ['i9'], 'another fleet is another group')
  const aResolved = groups.observe({ ...a, status: 'resolved', ends_at_us: T0 + 9e6 })
  assert.deepEqual(aResolved.firing_instances, ['i1'])
  assert.equal(aResolved.first_started_at_us, T0, 'its own start while it is the earliest')
  const bResolved = groups.observe({ ...b, status: 'resolved', ends_at_us: T0 + 9e6 })
  assert.deepEqual(bResolved.firing_instances, [])
  assert.deepEqual(groups.observe(a).firing_instances, ['i0'], 'an emptied group starts over')
})

test('webhook bodies carry the group: JSON as a field, Slack as a note when others fire too', () => {
  const alert = makeAlert({ fleet: 'eu-1', instance: 'i0' })
  const alone = { key: 'k', firing_instances: ['i0'], first_started_at_us: alert.starts_at_us }
  const three = { ...alone, firing_instances: ['i0', 'i1', 'i2'] }
  assert.deepEqual(jsonBody(alert, { group: three }).group, three)
  assert.equal(jsonBody(alert).group, undefined, 'no group, no field')
  const context = (g?: typeof alone) => JSON.stringify(slackBody(alert, { group: g }).blocks.at(-1))
  assert.match(context(three), /also firing on 2 other instances of eu-1/)
  assert.doesNotMatch(context(alone), /also firing/)
})
