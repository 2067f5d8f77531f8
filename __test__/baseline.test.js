// Runs the shared behaviour suite against benchmark/backends/level-cache.js, a
// re-implementation of @promethean/level-cache over `level`. Passing here shows
// the suite pins the original's semantics (improved = false).

import { openLevelBackedCache } from '../benchmark/backends/level-cache.js'
import { defineBehaviourSuite } from './support/behaviour-suite.js'

defineBehaviourSuite({
  label: 'baseline: level-cache over level',
  open: openLevelBackedCache,
  options: {},
  improved: false,
})
