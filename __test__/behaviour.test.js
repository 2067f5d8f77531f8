// The shared behaviour suite run against @promethean/lmdb-cache under each
// durability setting, with the improvements enabled.

import { test } from 'node:test'
import assert from 'node:assert/strict'

import { openLmdbCache, openLevelCache } from '../index.js'
import { defineBehaviourSuite } from './support/behaviour-suite.js'

test('openLevelCache is the same function as openLmdbCache', () => {
  assert.equal(typeof openLmdbCache, 'function')
  assert.equal(openLevelCache, openLmdbCache)
})

for (const [label, options] of [
  ['lmdb-cache, default durability', {}],
  ['lmdb-cache, durability: nosync', { durability: 'nosync' }],
  ['lmdb-cache, durability: strict', { durability: 'strict' }],
]) {
  defineBehaviourSuite({ label, open: openLmdbCache, options, improved: true })
}
