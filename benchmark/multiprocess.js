// Multi-process benchmark: `node benchmark/multiprocess.js` (`--help` lists the options).
//
// N processes (1, 2, 4) share one directory holding 100,000 keys of ~100-byte JSON values
// (benchmark/lib/data.js) and run, each for a fixed duration after a start barrier:
//   gets   random gets, awaited one by one
//   mixed  90% random gets / 10% sets of random existing keys, 16 operations in flight
// and the aggregate ops/s (sum over processes) is reported per N, for this package
// (`openLmdbCache`) and for the lmdb-js-based cache (benchmark/backends/lmdbjs-cache.js).
// The level-based cache (benchmark/backends/level-cache.js) is only tried: LevelDB locks its
// directory, so a second process cannot open it; the error is recorded.
//
// Method:
// - Each backend gets its own directory, populated (and spot-checked) by this process, which
//   then closes it. Four child processes per backend (this file with --child) open it once
//   and are reused for every measurement; the ones not taking part sit idle on IPC.
// - A measurement: the N children (each warmed up for 1 s once, after opening) warm up on the
//   workload and report ready; only then does each get the start signal. Each counts its
//   operations until its own deadline (plus the writes still in flight then) and reports ops,
//   elapsed time and its CPU time. Aggregate ops/s = the sum of the processes' ops / elapsed.
// - Rounds are interleaved (round r rotates the order of backends and of N), so the 1- and
//   2-process runs whose ratio is the scaling figure are measured next to each other; the
//   ratio is computed per round and reported as median and min-max over rounds. Then up to 3
//   extra 1p/2p pairs of lmdb-cache gets are measured while the time budget allows
//   (--extra-pairs, --budget). Which pool processes take part rotates between measurements.
// - Every get must find its key (all keys exist; sets rewrite keys with their own value), and
//   afterwards each directory is spot-checked again; any miss or error aborts the run.
// - The machine may be shared: for every measurement the CPU time the children used and the
//   CPUs the rest of the machine kept busy meanwhile (/proc/stat minus the children) are
//   recorded, and ops per CPU-second show whether a shortfall in scaling is the cache's or
//   missing CPU.

import { fork } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { busyCores, readCpuTicks, waitForIdle } from './lib/cpu.js'
import { DEFAULT_KEY_COUNT, createRng, keyOf, populate, randomKeys, randomIndices, smallValueOf, verify } from './lib/data.js'
import { fmtInt, fmtRatio, median, summarize } from './lib/report.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const self = fileURLToPath(import.meta.url)
const repoRoot = path.dirname(here)

const BACKENDS = {
  'lmdb-cache': {
    description: 'this package (`openLmdbCache` from index.js)',
    async open(dir, { nosync }) {
      const { openLmdbCache } = await import('../index.js')
      return openLmdbCache({ path: dir, ...(nosync ? { durability: 'nosync' } : {}) })
    },
  },
  'lmdb-js': {
    description: "level-cache's semantics over lmdb-js 3 (`lmdb`), encoding json (benchmark/backends/lmdbjs-cache.js)",
    async open(dir, { nosync }) {
      const { openLmdbJsBackedCache } = await import('./backends/lmdbjs-cache.js')
      return openLmdbJsBackedCache({ path: dir, ...(nosync ? { noSync: true } : {}) })
    },
  },
  'level-cache': {
    description: "level-cache's semantics over `level` 10 (benchmark/backends/level-cache.js)",
    async open(dir) {
      const { openLevelBackedCache } = await import('./backends/level-cache.js')
      return openLevelBackedCache({ path: dir })
    },
  },
}

const WORKLOADS = {
  gets: { title: 'random gets, awaited one by one' },
  mixed: { title: 'mixed: 90% random gets, 10% sets of random existing keys, 16 operations in flight per process' },
}

const KEY_POOL = 1 << 17 // random keys cycled through by each process (built untimed)
const WRITE_POOL = 1 << 12
const LANES = 16
const DISTURBED = 0.25 // other processes kept at least this many CPUs busy during a measurement

// ---- child process --------------------------------------------------------------------

async function child() {
  let cache = null
  let keys = null
  let writes = null
  let pending = null // the prepared workload, started by 'go'

  const commands = {
    async open({ backend, dir, nosync, seed, keyCount: n, warmupMs }) {
      cache = await BACKENDS[backend].open(dir, { nosync })
      keys = randomKeys(seed, KEY_POOL, n)
      writes = Array.from(randomIndices(seed ^ 0x5a5a5a5a, WRITE_POOL, n), (i) => [keyOf(i), smallValueOf(i)])
      // A first, longer warm-up (JIT, page tables of the map) so round 1 is not colder than the rest.
      const { misses } = await runGets(warmupMs, createRng(seed))
      if (misses > 0) throw new Error(`${misses} gets of stored keys returned undefined during the warm-up`)
      return { pid: process.pid }
    },
    // Opens and reports the error instead of failing: for the level-cache lock check.
    async tryOpen({ backend, dir }) {
      try {
        cache = await BACKENDS[backend].open(dir, {})
        return { opened: true }
      } catch (err) {
        return { opened: false, code: err.code, causeCode: err.cause?.code, message: err.message, causeMessage: err.cause?.message }
      }
    },
    async prepare({ workload, durationMs, warmupMs, seed }) {
      const run = workload === 'gets' ? runGets : runMixed
      const rng = createRng(seed)
      await run(warmupMs, rng) // untimed warm-up of the same code path
      pending = { run, durationMs, rng }
      return true
    },
    async go() {
      const { run, durationMs, rng } = pending
      pending = null
      const cpu0 = process.cpuUsage()
      const result = await run(durationMs, rng)
      const cpu = process.cpuUsage(cpu0)
      return { ...result, cpuMs: (cpu.user + cpu.system) / 1000 }
    },
    async close() {
      await cache?.close()
      cache = null
      return true
    },
  }

  // Random gets, one awaited after the other.
  async function runGets(durationMs, rng) {
    const mask = KEY_POOL - 1
    let i = rng() & mask
    let ops = 0
    let misses = 0
    const t0 = performance.now()
    const end = t0 + durationMs
    do {
      for (let n = 0; n < 256; n++) {
        if ((await cache.get(keys[i])) === undefined) misses++
        i = (i + 1) & mask
      }
      ops += 256
    } while (performance.now() < end)
    const elapsedMs = performance.now() - t0
    return { ops, reads: ops, writes: 0, misses, errors: [], elapsedMs }
  }

  // 90/10 gets/sets over LANES concurrent chains; a set writes a key's own dataset value, so
  // every get still finds exactly what populate wrote.
  async function runMixed(durationMs, rng) {
    const mask = KEY_POOL - 1
    const wmask = WRITE_POOL - 1
    let i = rng() & mask
    let w = rng() & wmask
    let reads = 0
    let writesDone = 0
    let misses = 0
    const errors = []
    const t0 = performance.now()
    const end = t0 + durationMs
    async function lane() {
      while (performance.now() < end) {
        for (let n = 0; n < 64; n++) {
          if (rng() % 10 === 0) {
            const [key, value] = writes[w]
            w = (w + 1) & wmask
            try {
              await cache.set(key, value)
              writesDone++
            } catch (err) {
              if (errors.length < 5) errors.push(`set ${key}: ${err.code ?? ''} ${err.message}`)
            }
          } else {
            const key = keys[i]
            i = (i + 1) & mask
            if ((await cache.get(key)) === undefined) misses++
            reads++
          }
        }
      }
    }
    await Promise.all(Array.from({ length: LANES }, lane))
    const elapsedMs = performance.now() - t0
    return { ops: reads + writesDone, reads, writes: writesDone, misses, errors, elapsedMs }
  }

  process.on('message', async ({ id, op, ...args }) => {
    let reply
    try {
      reply = { id, ok: true, result: await commands[op](args) }
    } catch (err) {
      reply = { id, ok: false, error: { message: err?.message ?? String(err), code: err?.code, stack: err?.stack } }
    }
    process.send(reply, () => {
      if (op === 'close') process.disconnect()
    })
  })
  process.on('disconnect', () => process.exit(0))
  process.send({ id: 0, ok: true, result: 'started' })
}

// ---- parent ---------------------------------------------------------------------------

function die(message) {
  process.stderr.write(`multiprocess: ${message}\n`)
  process.exit(2)
}

const USAGE = `usage: node benchmark/multiprocess.js [options]
  --procs a,b,c      process counts (default 1,2,4)
  --duration MS      timed run per process and measurement (default 1500)
  --warmup MS        untimed warm-up before each measurement (default 200)
  --rounds N         rounds of the gets workload (default 3)
  --mixed-rounds N   rounds of the mixed workload (default 2; 0 skips it)
  --backends a,b     lmdb-cache, lmdb-js (default both)
  --keys N           keys in the dataset (default ${DEFAULT_KEY_COUNT})
  --nosync           write without fsync: durability 'nosync' / lmdb-js noSync (default: each
                     backend's default durability)
  --wait-idle S      before each measurement wait up to S seconds for other processes to leave
                     the CPUs idle (default 1; 0 = don't wait), at most 10 s in all
  --extra-pairs N    after the rounds, up to N more pairs of lmdb-cache gets at 1 and 2
                     processes for the scaling figure, within --budget (default 3)
  --budget S         time the whole run may take, for those extra pairs (default 85)
  --tmp-dir DIR      where the databases go (default: the OS temp directory)
  --out PREFIX       write PREFIX.json and PREFIX.md (default benchmark/results/multiprocess;
                     - writes nothing)
  --help`

function parseCli() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        procs: { type: 'string', default: '1,2,4' },
        duration: { type: 'string', default: '1500' },
        warmup: { type: 'string', default: '200' },
        rounds: { type: 'string', default: '3' },
        'mixed-rounds': { type: 'string', default: '2' },
        backends: { type: 'string', default: 'lmdb-cache,lmdb-js' },
        keys: { type: 'string', default: String(DEFAULT_KEY_COUNT) },
        nosync: { type: 'boolean', default: false },
        'wait-idle': { type: 'string', default: '1' },
        'extra-pairs': { type: 'string', default: '3' },
        budget: { type: 'string', default: '85' },
        'tmp-dir': { type: 'string', default: os.tmpdir() },
        out: { type: 'string', default: path.join(here, 'results', 'multiprocess') },
        help: { type: 'boolean', default: false },
      },
    }))
  } catch (err) {
    die(`${err.message}\n${USAGE}`)
  }
  if (values.help) {
    process.stdout.write(`${USAGE}\n`)
    process.exit(0)
  }
  const int = (name, min) => {
    const x = Number(values[name])
    if (!Number.isInteger(x) || x < min) die(`--${name} must be an integer >= ${min}, got ${values[name]}`)
    return x
  }
  const procs = values.procs.split(',').map(Number)
  if (procs.some((n) => !Number.isInteger(n) || n < 1)) die(`--procs must list positive integers, got ${values.procs}`)
  const backends = values.backends
    .split(',')
    .map((s) => s.trim())
    .filter(Boolean)
  for (const b of backends) if (b !== 'lmdb-cache' && b !== 'lmdb-js') die(`unknown backend ${b} (lmdb-cache, lmdb-js)`)
  const waitIdleS = Number(values['wait-idle'])
  if (!(waitIdleS >= 0)) die(`--wait-idle must be >= 0, got ${values['wait-idle']}`)
  return {
    procs,
    durationMs: int('duration', 100),
    warmupMs: int('warmup', 0),
    rounds: int('rounds', 1),
    mixedRounds: int('mixed-rounds', 0),
    backends,
    keyCount: int('keys', 1),
    nosync: values.nosync,
    waitIdleMs: waitIdleS * 1000,
    extraPairs: int('extra-pairs', 0),
    budgetMs: int('budget', 1) * 1000,
    tmpDir: values['tmp-dir'],
    out: values.out,
  }
}

/** A child process with request/response calls over IPC. */
async function spawnChild(label) {
  const proc = fork(self, ['--child'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let nextId = 1
  let exitInfo = null
  const exited = new Promise((resolve) =>
    proc.on('exit', (code, signal) => {
      exitInfo = { code, signal }
      for (const { reject } of pending.values()) reject(new Error(`${label} exited (${JSON.stringify(exitInfo)})`))
      pending.clear()
      resolve(exitInfo)
    }),
  )
  proc.on('message', ({ id, ok, result, error }) => {
    const waiter = pending.get(id)
    if (!waiter) return
    pending.delete(id)
    if (ok) waiter.resolve(result)
    else waiter.reject(Object.assign(new Error(`${label}: ${error.message}`), { code: error.code, remoteStack: error.stack }))
  })
  const call = (op, args = {}, timeoutMs = 60_000) => {
    if (exitInfo) return Promise.reject(new Error(`${label} already exited`))
    const id = nextId++
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        pending.delete(id)
        reject(new Error(`${label}: ${op} timed out after ${timeoutMs} ms`))
      }, timeoutMs)
      pending.set(id, {
        resolve: (v) => {
          clearTimeout(timer)
          resolve(v)
        },
        reject: (e) => {
          clearTimeout(timer)
          reject(e)
        },
      })
      proc.send({ id, op, ...args })
    })
  }
  await new Promise((resolve, reject) => {
    pending.set(0, { resolve, reject })
  })
  return { label, proc, call, exited, kill: () => exitInfo || proc.kill('SIGKILL') }
}

function packageVersion(dir) {
  try {
    return JSON.parse(readFileSync(path.join(repoRoot, dir, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

const round2 = (x) => (x === null || x === undefined ? x : Math.round(x * 100) / 100)

async function main() {
  const opts = parseCli()
  const started = Date.now()
  const maxProcs = Math.max(...opts.procs)
  const cpus = os.cpus()
  const meta = {
    date: new Date().toISOString(),
    node: process.version,
    platform: `${os.platform()} ${os.release()} ${os.arch()}`,
    cpu: cpus[0]?.model?.trim() ?? 'unknown',
    cpuCount: cpus.length,
    loadAvgAtStart: os.loadavg().map(round2),
    versions: {
      '@promethean/lmdb-cache': packageVersion('.'),
      lmdb: packageVersion('node_modules/lmdb'),
      level: packageVersion('node_modules/level'),
      'classic-level': packageVersion('node_modules/classic-level'),
    },
    config: { ...opts, out: undefined, tmpDir: undefined, keyPool: KEY_POOL, lanesMixed: LANES },
    durability: opts.nosync
      ? "no fsync: lmdb-cache durability 'nosync', lmdb-js noSync"
      : "defaults: lmdb-cache durability 'durable' (a set resolves after its commit's fsync); lmdb-js overlappingSync (a put resolves at commit, the fsync follows)",
  }
  const log = (s) => process.stderr.write(`${s}\n`)
  log(
    `multiprocess: procs ${opts.procs.join(',')}, ${opts.durationMs} ms per run, ${opts.rounds} gets rounds + ${opts.mixedRounds} mixed rounds, backends ${opts.backends.join(', ')}; ${meta.cpu} x${meta.cpuCount}, load ${meta.loadAvgAtStart.join(' ')}`,
  )

  mkdirSync(opts.tmpDir, { recursive: true })
  const root = mkdtempSync(path.join(opts.tmpDir, 'lmdb-cache-multiprocess-'))
  const children = []
  let waitBudgetMs = 10_000
  const output = { meta, level: null, measurements: [], summary: {} }
  try {
    // -- level-cache: two processes on one directory ----------------------------------------
    {
      const dir = path.join(root, 'level-cache')
      const a = await spawnChild('level-cache process 1')
      const b = await spawnChild('level-cache process 2')
      children.push(a, b)
      const first = await a.call('tryOpen', { backend: 'level-cache', dir })
      const second = await b.call('tryOpen', { backend: 'level-cache', dir })
      output.level = { firstProcess: first, secondProcess: second }
      log(
        `level-cache: first process opened: ${first.opened}; second process: ${second.opened ? 'opened (unexpected)' : `${second.code}${second.causeCode ? ` (cause ${second.causeCode})` : ''}: ${second.causeMessage ?? second.message}`}`,
      )
      await Promise.all([a.call('close'), b.call('close')])
    }

    // -- populate, then 4 children per backend -----------------------------------------------
    const pools = {}
    for (const [bi, backend] of opts.backends.entries()) {
      const dir = path.join(root, backend)
      mkdirSync(dir, { recursive: true })
      const t0 = Date.now()
      const cache = await BACKENDS[backend].open(dir, { nosync: opts.nosync })
      await populate(cache, { keyCount: opts.keyCount })
      await verify(cache, { backend, keyCount: opts.keyCount })
      await cache.close()
      log(`${backend}: populated ${opts.keyCount.toLocaleString('en-US')} keys in ${Date.now() - t0} ms`)
      pools[backend] = []
      for (let c = 0; c < maxProcs; c++) {
        const ch = await spawnChild(`${backend} process ${c + 1}`)
        children.push(ch)
        pools[backend].push(ch)
      }
      await Promise.all(
        pools[backend].map((ch, c) =>
          ch.call('open', { backend, dir, nosync: opts.nosync, keyCount: opts.keyCount, seed: 0x1000 * (bi + 1) + c, warmupMs: 1000 }),
        ),
      )
    }

    // -- measurements ----------------------------------------------------------------------
    let seq = 0
    async function measure(workload, backend, n, round, waitMs = opts.waitIdleMs) {
      if (waitMs > 0 && waitBudgetMs > 0) {
        const t = Date.now()
        await waitForIdle({ maxMs: Math.min(waitMs, waitBudgetMs), threshold: 0.15 })
        waitBudgetMs -= Date.now() - t
      }
      // Which of the pool's processes take part rotates, so no one process is always the lone one.
      seq++
      const pool = pools[backend]
      const group = Array.from({ length: n }, (_, c) => pool[(seq + c) % pool.length])
      await Promise.all(group.map((ch, c) => ch.call('prepare', { workload, durationMs: opts.durationMs, warmupMs: opts.warmupMs, seed: seq * 131 + c })))
      const ticks0 = readCpuTicks()
      const t0 = performance.now()
      const results = await Promise.all(group.map((ch) => ch.call('go', {}, opts.durationMs + 60_000)))
      const wallMs = performance.now() - t0
      const machineBusy = busyCores(ticks0, readCpuTicks())
      for (const [c, r] of results.entries()) {
        if (r.misses > 0 || r.errors.length > 0) {
          throw new Error(`${backend} ${workload} process ${c + 1}: ${r.misses} gets of stored keys returned undefined; errors: ${r.errors.join('; ')}`)
        }
      }
      const opsPerSec = results.map((r) => (r.ops / r.elapsedMs) * 1000)
      const aggregate = opsPerSec.reduce((a, b) => a + b, 0)
      const cpuMs = results.reduce((a, r) => a + r.cpuMs, 0)
      const cpuCores = cpuMs / wallMs
      const m = {
        workload,
        backend,
        procs: n,
        round,
        aggregateOpsPerSec: Math.round(aggregate),
        perProcessOpsPerSec: opsPerSec.map(Math.round),
        reads: results.reduce((a, r) => a + r.reads, 0),
        writes: results.reduce((a, r) => a + r.writes, 0),
        cpuCores: round2(cpuCores),
        opsPerCpuSecond: Math.round(results.reduce((a, r) => a + r.ops, 0) / (cpuMs / 1000)),
        otherBusyCores: machineBusy === null ? null : round2(Math.max(0, machineBusy - cpuCores)),
        wallMs: Math.round(wallMs),
      }
      m.disturbed = m.otherBusyCores !== null && m.otherBusyCores >= DISTURBED
      output.measurements.push(m)
      log(
        `  round ${String(round).padEnd(2)} ${workload.padEnd(5)} ${backend.padEnd(10)} ${n}p: ${fmtInt(aggregate).padStart(11)} ops/s (per process ${m.perProcessOpsPerSec.map(fmtInt).join(', ')}; ${m.cpuCores} CPUs used, others ${m.otherBusyCores ?? '?'})`,
      )
      return m
    }

    const rotate = (xs, k) => xs.map((_, i) => xs[(i + k) % xs.length])
    const totalRounds = Math.max(opts.rounds, opts.mixedRounds)
    for (let round = 1; round <= totalRounds; round++) {
      for (const workload of ['gets', 'mixed']) {
        if (round > (workload === 'gets' ? opts.rounds : opts.mixedRounds)) continue
        for (const backend of rotate(opts.backends, round - 1)) {
          for (const n of rotate(opts.procs, round - 1)) await measure(workload, backend, n, round)
        }
      }
    }

    // Extra pairs for the scaling figure (lmdb-cache gets, 1 and 2 processes), as many as the
    // time budget allows: single pairs vary a lot on a shared VM.
    const pairMs = 2 * (opts.durationMs + opts.warmupMs + 2500)
    if (opts.backends.includes('lmdb-cache') && opts.procs.includes(1) && opts.procs.includes(2)) {
      for (let x = 1; x <= opts.extraPairs; x++) {
        if (Date.now() - started + pairMs + 5000 > opts.budgetMs) break
        const order = x % 2 ? [1, 2] : [2, 1]
        for (const n of order) await measure('gets', 'lmdb-cache', n, `x${x}`, 2000)
      }
    }

    // -- close, spot-check the data again ----------------------------------------------------
    await Promise.all(children.map((ch) => ch.call('close').catch(() => {})))
    await Promise.all(children.map((ch) => ch.exited))
    for (const backend of opts.backends) {
      const cache = await BACKENDS[backend].open(path.join(root, backend), {})
      try {
        await verify(cache, { backend, keyCount: opts.keyCount, seed: 0xc4ec })
      } finally {
        await cache.close()
      }
    }
  } catch (err) {
    process.stderr.write(`\nmultiprocess: ABORTED: ${err?.stack ?? err}\n`)
    for (const ch of children) ch.kill()
    rmSync(root, { recursive: true, force: true })
    process.exit(1)
  }
  rmSync(root, { recursive: true, force: true })

  // -- summary -------------------------------------------------------------------------------
  const stat = (xs) => (xs.length ? { median: median(xs), min: Math.min(...xs), max: Math.max(...xs), n: xs.length } : null)
  const rows = []
  for (const workload of ['gets', 'mixed']) {
    for (const backend of opts.backends) {
      const ms = output.measurements.filter((m) => m.workload === workload && m.backend === backend)
      if (ms.length === 0) continue
      const base = ms.filter((m) => m.procs === 1)
      for (const n of opts.procs) {
        const mn = ms.filter((m) => m.procs === n)
        // Against 1 process, per round: the two measurements were taken next to each other.
        const pairs = mn
          .map((m) => [m, base.find((b) => b.round === m.round)])
          .filter(([, b]) => b)
          .map(([m, b]) => ({
            round: m.round,
            ratio: m.aggregateOpsPerSec / b.aggregateOpsPerSec,
            cpuRatio: m.opsPerCpuSecond / b.opsPerCpuSecond,
            clean: !m.disturbed && !b.disturbed,
          }))
        rows.push({
          workload,
          backend,
          procs: n,
          ops: summarize(mn.map((m) => m.aggregateOpsPerSec)),
          ratio: stat(pairs.map((p) => p.ratio)),
          ratioClean: stat(pairs.filter((p) => p.clean).map((p) => p.ratio)),
          perCpuRatio: stat(pairs.map((p) => p.cpuRatio)),
          pairs: pairs.map((p) => ({ ...p, ratio: round2(p.ratio), cpuRatio: round2(p.cpuRatio) })),
          cpuCores: median(mn.map((m) => m.cpuCores)),
          opsPerCpuSecond: median(mn.map((m) => m.opsPerCpuSecond)),
          otherBusyMax: mn.some((m) => m.otherBusyCores !== null) ? Math.max(...mn.map((m) => m.otherBusyCores ?? 0)) : null,
          disturbedRuns: mn.filter((m) => m.disturbed).length,
        })
      }
    }
  }
  const roundStat = (st) => st && { median: round2(st.median), min: round2(st.min), max: round2(st.max), n: st.n }
  output.summary.rows = rows.map((r) => ({
    ...r,
    ops: { ...r.ops, median: Math.round(r.ops.median) },
    ratio: roundStat(r.ratio),
    ratioClean: roundStat(r.ratioClean),
    perCpuRatio: roundStat(r.perCpuRatio),
  }))
  output.summary.gets2pOver1p = {}
  for (const r of rows) {
    if (r.workload !== 'gets' || r.procs !== 2 || !r.ratio) continue
    output.summary.gets2pOver1p[r.backend] = {
      all: roundStat(r.ratio),
      undisturbed: roundStat(r.ratioClean),
      perCpuSecond: roundStat(r.perCpuRatio),
      pairs: r.pairs,
      target: 1.8,
      met: r.ratio.median >= 1.8,
    }
  }
  meta.durationS = Math.round((Date.now() - started) / 1000)
  meta.loadAvgAtEnd = os.loadavg().map(round2)

  // -- report ----------------------------------------------------------------------------------
  const range = (st) => (st.n > 1 ? ` (${fmtRatio(st.min)}–${fmtRatio(st.max)})` : '')
  const head = [
    'backend',
    'N',
    'runs',
    'median ops/s',
    'min–max',
    'vs 1 process, per round: median (min–max)',
    'CPUs used',
    'ops per CPU-s',
    'others busy (max)',
    'disturbed runs',
  ]
  const cellsOf = (r) => [
    r.backend,
    String(r.procs),
    String(r.ops.n),
    fmtInt(r.ops.median),
    `${fmtInt(r.ops.min)}–${fmtInt(r.ops.max)}`,
    r.procs === 1 ? '1.00x' : r.ratio ? `${fmtRatio(r.ratio.median)}${range(r.ratio)}` : '—',
    r.cpuCores.toFixed(2),
    fmtInt(r.opsPerCpuSecond),
    r.otherBusyMax === null ? '?' : r.otherBusyMax.toFixed(2),
    `${r.disturbedRuns}/${r.ops.n}`,
  ]
  const right = head.map((_, i) => i > 0)
  const textTable = (rs) => {
    const cells = [head, ...rs.map(cellsOf)]
    const widths = head.map((_, i) => Math.max(...cells.map((c) => c[i].length)))
    const line = (c) => c.map((x, i) => (right[i] ? x.padStart(widths[i]) : x.padEnd(widths[i]))).join('  ')
    return [line(head), widths.map((w) => '-'.repeat(w)).join('  '), ...rs.map((r) => line(cellsOf(r)))].join('\n')
  }
  const mdTable = (rs) =>
    [`| ${head.join(' | ')} |`, `|${right.map((r) => (r ? ' ---: ' : ' --- ')).join('|')}|`, ...rs.map((r) => `| ${cellsOf(r).join(' | ')} |`)].join('\n')

  const levelLine = (() => {
    const l = output.level
    if (!l) return 'level-cache: not tried'
    if (l.secondProcess.opened) return 'level-cache: a second process opened the directory (unexpected)'
    const code = l.secondProcess.causeCode ? `\`${l.secondProcess.code}\`, cause \`${l.secondProcess.causeCode}\`` : `\`${l.secondProcess.code}\``
    return `level-cache (\`openLevelBackedCache\`): the first process opened the directory; the second process's open failed with ${code}: "${l.secondProcess.causeMessage ?? l.secondProcess.message}". LevelDB locks its directory to one process, so it has no multi-process numbers.`
  })()
  const ratioLines = Object.entries(output.summary.gets2pOver1p).map(([backend, g]) => {
    const parts = [
      `${backend} random gets, 2 processes / 1 process: median ${fmtRatio(g.all.median)} over ${g.all.n} pairs${range(g.all)}`,
      g.undisturbed
        ? `undisturbed pairs (others < ${DISTURBED} CPU busy in both runs): median ${fmtRatio(g.undisturbed.median)} over ${g.undisturbed.n}${range(g.undisturbed)}`
        : `no pair was undisturbed by other processes`,
      `ops per CPU-second, 2p/1p: ${fmtRatio(g.perCpuSecond.median)}`,
    ]
    const above2 =
      g.all.median > 2.05
        ? ` Above 2x: the 2-process runs did more per CPU-second than the 1-process runs (${fmtRatio(g.perCpuSecond.median)}), e.g. because the scheduler moves a lone busy process between CPUs, so the ratio overstates the scaling by about that factor.`
        : ''
    return `${parts.join('; ')}. Target >= 1.8x: ${g.met ? 'met' : 'not met'}${backend === 'lmdb-cache' ? '' : ' (for reference)'}. Per pair: ${g.pairs.map((p) => `${p.round}: ${fmtRatio(p.ratio)}${p.clean ? '' : '*'}`).join(', ')} (* = disturbed).${above2}`
  })

  const text = []
  const md = [
    '# Multi-process benchmark',
    '',
    `- Date: ${meta.date}`,
    `- Node: ${meta.node}, ${meta.platform}; CPU: ${meta.cpu} ×${meta.cpuCount}`,
    `- Load average at start: ${meta.loadAvgAtStart.join(', ')}; at end: ${meta.loadAvgAtEnd.join(', ')}`,
    `- Data: ${opts.keyCount.toLocaleString('en-US')} keys (user:000000..), ~100-byte JSON values; every process reads random keys (its own seeded sequence); every get must find its key`,
    `- Each measurement: N processes on one directory (opened once per process, reused across measurements), warm-up ${opts.warmupMs} ms, then a start barrier and ${opts.durationMs} ms each; aggregate ops/s = sum over the processes. Interleaved rounds (gets ${opts.rounds}, mixed ${opts.mixedRounds}, plus up to ${opts.extraPairs} extra 1p/2p gets pairs for lmdb-cache, rounds x1..); the ratio to 1 process is taken per round, between adjacent runs`,
    `- Durability: ${meta.durability}`,
    `- "CPUs used": CPU time of the N processes / wall time. "others busy": CPUs the rest of the machine kept busy meanwhile (from /proc/stat), the worst run; a run with >= ${DISTURBED} is "disturbed". On a shared machine N processes cannot get N CPUs then; "ops per CPU-s" (2p/1p near 1.0) shows whether the processes slow each other down`,
    '',
    `Run: \`node benchmark/multiprocess.js\` (${meta.durationS} s).`,
    '',
  ]
  for (const workload of ['gets', 'mixed']) {
    const rs = rows.filter((r) => r.workload === workload)
    if (!rs.length) continue
    text.push(`${WORKLOADS[workload].title}`, textTable(rs), '')
    md.push(`## ${WORKLOADS[workload].title}`, '', mdTable(rs), '')
    if (workload === 'mixed' && !opts.nosync) {
      md.push(
        'With each backend\'s default durability the sets, not the CPUs, bound this workload ("CPUs used" stays well below N): a set resolves after its commit, and LMDB\'s writer lock lets one process commit at a time. lmdb-cache fsyncs each commit before resolving its sets; lmdb-js (overlappingSync) resolves them at commit and flushes afterwards, outside the lock. `--nosync` measures both without fsync.',
        '',
      )
    }
  }
  for (const line of ratioLines) {
    text.push(line)
    md.push(`**${line}**`, '')
  }
  text.push(levelLine.replace(/`/g, ''))
  md.push(levelLine, '')
  md.push(
    'Backends:',
    '',
    ...opts.backends.map((b) => `- \`${b}\`: ${BACKENDS[b].description}`),
    `- \`level-cache\`: ${BACKENDS['level-cache'].description}`,
    '',
  )
  md.push(
    `Versions: ${Object.entries(meta.versions)
      .map(([p, v]) => `${p} ${v ?? '?'}`)
      .join(', ')}.`,
    '',
  )

  process.stdout.write(`\n${text.join('\n')}\n`)
  log(`multiprocess: done in ${meta.durationS} s`)
  if (opts.out !== '-') {
    const outBase = path.resolve(opts.out)
    mkdirSync(path.dirname(outBase), { recursive: true })
    writeFileSync(`${outBase}.json`, `${JSON.stringify(output, null, 2)}\n`)
    writeFileSync(`${outBase}.md`, `${md.join('\n')}\n`)
    log(`multiprocess: wrote ${path.relative(process.cwd(), outBase)}.json and .md`)
  }
}

// Last, so that every module-level binding above is initialized first.
if (process.argv[2] === '--child') await child()
else await main()
