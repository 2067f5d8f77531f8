// The benchmark's ratio estimator: per-round ratios when both backends ran every round.
import assert from 'node:assert/strict'
import { test } from 'node:test'
import { pairedRatio, workloadRows } from '../benchmark/lib/report.js'

const run = (round, value) => ({ round, value })

test('pairedRatio takes the median of per-round ratios, so a slow round cancels out', () => {
  // The baseline's round 1 ran in a slow spell: per round 4, 1, 2.2; the ratio of medians
  // (200 / 100 = 2) would mix rounds.
  const skewed = [run(1, 200), run(2, 100), run(3, 220)]
  const base = [run(1, 50), run(2, 100), run(3, 100)]
  assert.equal(pairedRatio(skewed, base), 2.2) // per round: 4, 1, 2.2; ratio of medians 2
})

test('pairedRatio falls back to the ratio of medians when rounds do not line up', () => {
  const ours = [run(1, 100), run(2, 300)]
  const theirs = [run(1, 100), run(2, 100), run(3, 100)]
  assert.equal(pairedRatio(ours, theirs), 200 / 100)
  assert.equal(pairedRatio([{ value: 10 }], [{ value: 5 }]), 2)
})

test('workloadRows reports paired ratios against each baseline present', () => {
  const rows = workloadRows({ a: [run(1, 10), run(2, 40)], b: [run(1, 5), run(2, 10)] }, ['b'])
  const a = rows.find((r) => r.backend === 'a')
  assert.equal(a.ratios.b, 3) // per round 2 and 4
  assert.equal(a.summary.median, 25)
})
