// One measurement in a process of its own:
//
//   node benchmark/run-backend.js --backend NAME --workload NAME --dir DIR [--quick] [--round N]
//   node benchmark/run-backend.js --backend NAME --probe
//
// Opens the backend on DIR (created fresh, removed afterwards), populates it with the
// workload's dataset through the Cache API's `batch`, checks a sample of it, runs the
// workload's warm-up, then times its measured part. Prints exactly one JSON line on stdout;
// anything else goes to stderr. Exits non-zero on any failure.

import { mkdirSync, readdirSync, rmSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { BACKENDS } from './lib/backends.js'
import { busyCores, readCpuTicks } from './lib/cpu.js'
import { populate, verify } from './lib/data.js'
import { DATASETS, WORKLOADS, setLargeKeyCount } from './lib/workloads.js'

const { values: args } = parseArgs({
  options: {
    backend: { type: 'string' },
    workload: { type: 'string' },
    dir: { type: 'string' },
    round: { type: 'string', default: '0' },
    quick: { type: 'boolean', default: false },
    probe: { type: 'boolean', default: false },
    'large-keys': { type: 'string' },
  },
})

function fail(message) {
  process.stderr.write(`run-backend: ${message}\n`)
  process.exit(1)
}

const backend = BACKENDS[args.backend]
if (!backend) fail(`unknown backend ${JSON.stringify(args.backend)}; known: ${Object.keys(BACKENDS).join(', ')}`)

if (args.probe) {
  try {
    await backend.probe()
  } catch (err) {
    fail(`backend ${args.backend} is not available: ${err?.message ?? err}`)
  }
  process.stdout.write(`${JSON.stringify({ backend: args.backend, ok: true })}\n`)
  process.exit(0)
}

const workload = WORKLOADS[args.workload]
if (!workload) fail(`unknown workload ${JSON.stringify(args.workload)}; known: ${Object.keys(WORKLOADS).join(', ')}`)
if (backend.stateful && !args.dir) fail('--dir is required')

if (args['large-keys'] !== undefined) {
  try {
    setLargeKeyCount(Number(args['large-keys']))
  } catch (err) {
    fail(err.message)
  }
}
const mode = args.quick ? 'quick' : 'full'
const dataset = DATASETS[workload.dataset]
const ops = workload.ops[mode]
const warmup = workload.warmup[mode]
const ms = (t0) => Number(process.hrtime.bigint() - t0) / 1e6
// Phase markers on stderr: bench.js hides them, but names the last one if this process
// has to be killed (a hang), so the report says where it stuck.
const phase = (name) => process.stderr.write(`@phase ${name}\n`)

const result = {
  backend: args.backend,
  workload: args.workload,
  round: Number(args.round),
  mode,
}

/** Bytes the files under `dir` take on disk (allocated blocks), lock files left out. */
function diskBytes(dir) {
  let total = 0
  for (const entry of readdirSync(dir, { withFileTypes: true, recursive: true })) {
    if (!entry.isFile() || /lock/i.test(entry.name)) continue
    total += statSync(join(entry.parentPath ?? entry.path, entry.name)).blocks * 512
  }
  return total
}

let cache
try {
  if (backend.stateful) mkdirSync(args.dir, { recursive: true })
  phase('open')
  let t = process.hrtime.bigint()
  cache = await backend.open({ path: args.dir, options: workload.backendOptions ?? {}, dataset })
  result.openMs = ms(t)

  if (backend.stateful) {
    phase('populate')
    t = process.hrtime.bigint()
    await populate(cache, dataset)
    result.populateMs = ms(t)
    phase('verify')
    result.verified = await verify(cache, { ...dataset, backend: args.backend, mayMiss: backend.evicts === true })
    result.diskBytes = diskBytes(args.dir)
  }

  phase('prepare')
  const run = await workload.prepare({
    cache,
    backend: args.backend,
    stateful: backend.stateful,
    evicts: backend.evicts === true,
    dataset,
    ops,
    warmup,
    seed: workload.seed,
  })
  phase('warmup')
  await run.warmup()
  globalThis.gc?.()
  phase('measure')
  const ticks0 = readCpuTicks()
  const cpu0 = process.cpuUsage()
  t = process.hrtime.bigint()
  const measured = await run.measure()
  const elapsedMs = ms(t)
  const cpu = process.cpuUsage(cpu0)
  const machineBusy = busyCores(ticks0, readCpuTicks())
  // CPU time of this process (all its threads) during the timed part, and how many CPUs
  // everything else on the machine kept busy meanwhile (other processes competing with us).
  result.measureCpuMs = (cpu.user + cpu.system) / 1000
  if (machineBusy !== null && elapsedMs >= 200) {
    // /proc/stat counts in 10 ms ticks
    result.otherBusyCores = Math.max(0, Math.round((machineBusy - result.measureCpuMs / elapsedMs) * 100) / 100)
  }
  phase('check')
  await run.check?.()

  result.ops = measured.ops
  result.elapsedMs = elapsedMs
  result.value = (measured.ops / elapsedMs) * 1000 // ops/s
  if (measured.extra) result.extra = measured.extra
} catch (err) {
  process.stderr.write(`run-backend: ${args.backend} / ${args.workload}: ${err?.stack ?? err}\n`)
  process.exitCode = 1
} finally {
  phase('close')
  try {
    await cache?.close()
  } catch (err) {
    process.stderr.write(`run-backend: close failed: ${err?.message ?? err}\n`)
    process.exitCode = 1
  }
  if (backend.stateful) rmSync(args.dir, { recursive: true, force: true })
}

phase('exit')
if (!process.exitCode) {
  result.maxRssKb = process.resourceUsage().maxRSS
  process.stdout.write(`${JSON.stringify(result)}\n`)
}
// Some backends keep handles (thread pools, timers) alive after close; don't wait for them.
// (stdout to a pipe is synchronous on Linux, so the line above is already written.)
process.exit()
