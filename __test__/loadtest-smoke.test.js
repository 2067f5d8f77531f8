// The chat example's load test (npm run bench:messages) at a tiny size: it must run end to
// end on both stores, lose nothing, and get history round trips from its readers' process.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import path from 'node:path'
import { test } from 'node:test'
import { fileURLToPath } from 'node:url'

const ROOT = path.dirname(path.dirname(fileURLToPath(import.meta.url)))
const LOADTEST = path.join(ROOT, 'examples', 'socketio-chat', 'loadtest.js')

test('the load test runs both stores end to end, loses nothing and measures history round trips', () => {
  const args = [
    '--clients',
    '4',
    '--messages',
    '10',
    '--sessions',
    '2',
    '--readers',
    '2',
    '--rounds',
    '1',
    '--concurrency',
    '4',
    '--time-limit',
    '60',
    '--no-write',
  ]
  const run = spawnSync(process.execPath, [LOADTEST, ...args], { encoding: 'utf8', timeout: 90_000 })
  assert.equal(run.status, 0, `exit ${run.status} ${run.signal ?? ''}\n${run.stdout}\n${run.stderr}`)
  const row = (label) => {
    const line = run.stdout.split('\n').find((l) => l.startsWith(`| ${label}`))
    assert.ok(line, `no "${label}" row in\n${run.stdout}`)
    return line
      .split('|')
      .slice(2, 4)
      .map((cell) => cell.trim())
  }
  // All runs of a store count: 40 messages at the store level, then the other durability
  // setting (LMDB 'nosync': 40 again; SQLite FULL: a twentieth, at least one per caller: 4),
  // then 40 end to end. All acked, none lost, no failed check.
  assert.deepEqual(row('acked / lost / other failed checks'), ['120 / 0 / 0', '84 / 0 / 0'])
  assert.deepEqual(row('create-then-get by uuid'), ['0 / 120', '0 / 84'])
  // The readers' process measured round trips under load for both stores ("-" = no samples).
  for (const cell of row('history page of 50, socket.io round trip under load')) {
    assert.match(cell, /^\d+(\.\d+)? \/ \d+(\.\d+)?$/, `round trips under load: ${cell}`)
  }
})
