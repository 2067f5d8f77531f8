// System-wide CPU use from /proc/stat (Linux; elsewhere these return null / do nothing),
// to notice other processes competing with a measurement on a shared machine.

import { readFileSync } from 'node:fs'
import os from 'node:os'
import { setTimeout as sleep } from 'node:timers/promises'

/** Cumulative ticks of all CPUs: { busy, total }, or null if /proc/stat is unreadable. */
export function readCpuTicks() {
  try {
    const line = readFileSync('/proc/stat', 'utf8').split('\n', 1)[0]
    const f = line.trim().split(/\s+/).slice(1).map(Number)
    // user nice system idle iowait irq softirq steal (guest* are included in user/nice)
    const idle = f[3] + (f[4] || 0)
    const total = f.slice(0, 8).reduce((a, b) => a + (b || 0), 0)
    return { busy: total - idle, total }
  } catch {
    return null
  }
}

/** Busy CPUs (0..cpu count) between two readCpuTicks() results, or null. */
export function busyCores(before, after) {
  if (!before || !after) return null
  const total = after.total - before.total
  if (total <= 0) return null
  return ((after.busy - before.busy) / total) * os.cpus().length
}

/**
 * Wait until the machine looks idle: busy below `threshold` CPUs over a `windowMs` sample.
 * Gives up after `maxMs`. Returns the last busy figure (null when unmeasurable).
 */
export async function waitForIdle({ maxMs, threshold = 0.15, windowMs = 300 }) {
  const deadline = Date.now() + maxMs
  let busy = null
  do {
    const a = readCpuTicks()
    await sleep(windowMs)
    busy = busyCores(a, readCpuTicks())
    if (busy === null || busy < threshold) return busy
  } while (Date.now() < deadline)
  return busy
}
