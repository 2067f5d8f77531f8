// Benchmark harness: `npm run bench` (= node benchmark/bench.js). `--help` lists the options.
//
// Every (workload, backend, round) runs in a child process of its own
// (benchmark/run-backend.js), so backends never share a heap, a thread pool or a memory map,
// and each reports its own peak RSS. Rounds are interleaved with a rotating order
// (round 1: A,B,C; round 2: B,C,A; ...) so slow drifts of a shared machine hit every backend;
// the report gives the median over rounds with the min-max spread. Because the machine is
// shared, each run starts only once the other processes leave the CPUs (nearly) idle, or
// after --wait-idle seconds, and a run during which other processes measurably used CPU is
// repeated (--retries); both are judged from /proc/stat, never from the result itself.

import { spawn, spawnSync } from 'node:child_process'
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { BACKENDS, BASELINES, DEFAULT_BACKENDS, backendSupports } from './lib/backends.js'
import { busyCores, readCpuTicks, waitForIdle } from './lib/cpu.js'
import { renderMarkdown, renderSvg, renderText, tableColumns, workloadRows } from './lib/report.js'
import { DATASETS, DEFAULT_LARGE_KEY_COUNT, DEFAULT_WORKLOADS, WORKLOADS, setLargeKeyCount } from './lib/workloads.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const runner = path.join(here, 'run-backend.js')
const repoRoot = path.dirname(here)

const USAGE = `usage: node benchmark/bench.js [options]
  --rounds N         rounds per backend and workload (default 3, with --full 5)
  --full             more rounds (5), for numbers to publish; the default run stays ~4 min
  --quick            few operations per round (CI smoke test); writes benchmark/results/quick.*
  --backends a,b     backends to run (default: ${DEFAULT_BACKENDS.join(',')}); known: ${Object.keys(BACKENDS).join(', ')}
  --workloads a,b    workloads to run (default: ${DEFAULT_WORKLOADS.join(',')})
  --out PREFIX       write PREFIX.json and PREFIX.md (default benchmark/results/latest, or .../quick
                     with --quick); --out - writes nothing
  --large-keys N     keys in the ~10 KB dataset of the *-10k workloads (default ${DEFAULT_LARGE_KEY_COUNT.toLocaleString('en-US')};
                     the issue's full size is 100000: 1 GB per populate, ~10x longer runs)
  --tmp-dir DIR      where the temporary databases go (default: the OS temp directory)
  --wait-idle S      before each run, wait up to S seconds for other processes to leave the
                     CPUs idle (default 5, with --quick 0; 0 = don't wait)
  --wait-budget S    total seconds all those waits may take in one invocation (default 30, with --full 60)
  --retries N        repeat a run during which other processes kept >= 0.25 CPU busy, up to
                     N times, if the machine is idle again (default 2, with --quick 0; at
                     most a quarter of the runs in all)
  --help
Then, unless --backends or --workloads is given, the Keyv stores' benchmark (benchmark/keyv.js:
Keyv over this store, @keyv/sqlite and @keyv/redis) with the same --rounds, --quick and --out
(its files get the suffix -keyv).`

function die(message) {
  process.stderr.write(`bench: ${message}\n`)
  process.exit(2)
}

function parseCli() {
  let values
  try {
    ;({ values } = parseArgs({
      options: {
        rounds: { type: 'string' },
        full: { type: 'boolean', default: false },
        quick: { type: 'boolean', default: false },
        backends: { type: 'string' },
        workloads: { type: 'string' },
        out: { type: 'string' },
        'tmp-dir': { type: 'string' },
        'large-keys': { type: 'string' },
        'wait-idle': { type: 'string' },
        retries: { type: 'string' },
        'wait-budget': { type: 'string' },
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
  const rounds = Number(values.rounds ?? (values.full ? 5 : 3))
  if (!Number.isInteger(rounds) || rounds < 1) die(`--rounds must be a positive integer, got ${values.rounds}`)
  const list = (s) =>
    s
      .split(',')
      .map((x) => x.trim())
      .filter(Boolean)
  const backends = values.backends ? list(values.backends) : null
  for (const b of backends ?? []) if (!BACKENDS[b]) die(`unknown backend ${b}; known: ${Object.keys(BACKENDS).join(', ')}`)
  const workloads = values.workloads ? list(values.workloads) : DEFAULT_WORKLOADS
  for (const w of workloads) if (!WORKLOADS[w]) die(`unknown workload ${w}; known: ${Object.keys(WORKLOADS).join(', ')}`)
  const waitIdleS = Number(values['wait-idle'] ?? (values.quick ? 0 : 5))
  if (!(waitIdleS >= 0)) die(`--wait-idle must be a number of seconds >= 0, got ${values['wait-idle']}`)
  const retries = Number(values.retries ?? (values.quick ? 0 : 2))
  if (!Number.isInteger(retries) || retries < 0) die(`--retries must be an integer >= 0, got ${values.retries}`)
  const waitBudgetS = Number(values['wait-budget'] ?? (values.full ? 60 : 30))
  if (!(waitBudgetS >= 0)) die(`--wait-budget must be a number of seconds >= 0, got ${values['wait-budget']}`)
  const largeKeys = values['large-keys'] === undefined ? DEFAULT_LARGE_KEY_COUNT : Number(values['large-keys'])
  try {
    setLargeKeyCount(largeKeys)
  } catch (err) {
    die(`--large-keys: ${err.message}`)
  }
  const out = values.out ?? path.join(here, 'results', values.quick ? 'quick' : 'latest')
  const keyv = values.backends === undefined && values.workloads === undefined
  return { keyv, largeKeys, rounds, quick: values.quick, backends, workloads, out, waitIdleS, waitBudgetS, retries, tmpDir: values['tmp-dir'] ?? os.tmpdir() }
}

// ---- child processes ---------------------------------------------------------------------

const activeChildren = new Set()
// A run is "contended" when the rest of the machine kept this many CPUs busy meanwhile;
// "idle" (good enough to start a run) is below IDLE_THRESHOLD.
const CONTENDED = 0.25
const IDLE_THRESHOLD = 0.15

function runChild(args, { timeoutMs }) {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--expose-gc', runner, ...args], {
      cwd: repoRoot,
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    activeChildren.add(child)
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d))
    const timer = setTimeout(() => {
      const phases = stderr.match(/^@phase (\S+)$/gm)
      const at = phases ? ` during ${phases.pop().slice('@phase '.length)}` : ''
      stderr += `\n(killed after ${timeoutMs / 1000} s${at})`
      child.kill('SIGKILL')
    }, timeoutMs)
    child.on('error', (err) => {
      clearTimeout(timer)
      activeChildren.delete(child)
      reject(err)
    })
    child.on('close', (code, signal) => {
      clearTimeout(timer)
      activeChildren.delete(child)
      stderr = stderr.replace(/^@phase \S+\n/gm, '')
      const lastLine = stdout.trim().split('\n').pop()
      if (code === 0 && lastLine) {
        try {
          resolve({ result: JSON.parse(lastLine), stderr })
          return
        } catch {
          // fall through
        }
      }
      const err = new Error(`child exited with ${signal ?? `code ${code}`}: ${stderr.trim() || stdout.trim() || '(no output)'}`)
      err.stderr = stderr
      reject(err)
    })
  })
}

async function probeBackends(names) {
  const settled = await Promise.allSettled(names.map((name) => runChild(['--backend', name, '--probe'], { timeoutMs: 60_000 })))
  const available = []
  const missing = []
  settled.forEach((s, i) => {
    if (s.status === 'fulfilled') available.push(names[i])
    else missing.push({ name: names[i], reason: s.reason.message.replace(/^child exited with code \d+: /, '') })
  })
  return { available, missing }
}

// ---- main -------------------------------------------------------------------------------

const opts = parseCli()
const mode = opts.quick ? 'quick' : 'full'

let tmpRoot
function cleanup() {
  for (const child of activeChildren) child.kill('SIGKILL')
  if (tmpRoot) rmSync(tmpRoot, { recursive: true, force: true })
  tmpRoot = undefined
}
process.on('exit', cleanup) // also after an uncaught error (e.g. EPIPE when piped into head)
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    process.stderr.write(`\nbench: ${sig}, cleaning up\n`)
    cleanup()
    process.exit(130)
  })
}

const requested = opts.backends ?? DEFAULT_BACKENDS
const { available, missing } = await probeBackends(requested)
for (const m of missing) process.stderr.write(`bench: skipping backend ${m.name}: ${m.reason.split('\n')[0]}\n`)
if (opts.backends && missing.length) die('a backend named with --backends is not available (see above)')
if (!available.length) die('no backend available')

function packageVersion(dir) {
  try {
    return JSON.parse(readFileSync(path.join(repoRoot, dir, 'package.json'), 'utf8')).version
  } catch {
    return undefined
  }
}

const cpus = os.cpus()
const meta = {
  date: new Date().toISOString(),
  node: process.version,
  v8: process.versions.v8,
  platform: `${os.platform()} ${os.release()} ${os.arch()}`,
  cpu: cpus[0]?.model?.trim() ?? 'unknown',
  cpuCount: cpus.length,
  totalMemMb: Math.round(os.totalmem() / 2 ** 20),
  mode,
  rounds: opts.rounds,
  loadAvgAtStart: os.loadavg().map((x) => Math.round(x * 100) / 100),
  backends: Object.fromEntries(available.map((b) => [b, BACKENDS[b].description])),
  versions: {
    '@promethean/lmdb-cache': packageVersion('.'),
    level: packageVersion('node_modules/level'),
    'classic-level': packageVersion('node_modules/classic-level'),
    lmdb: packageVersion('node_modules/lmdb'),
  },
  skippedBackends: missing.map((m) => m.name),
  note: 'Shared, noisy machine: differences within the min-max spread are not significant.',
}

process.stderr.write(`bench: ${mode} run, ${opts.rounds} rounds, backends ${available.join(', ')}; node ${meta.node}, ${meta.cpu} x${meta.cpuCount}\n`)
{
  const a = readCpuTicks()
  await sleep(500)
  meta.busyCpusAtStart = busyCores(a, readCpuTicks())
  if (meta.busyCpusAtStart !== null) meta.busyCpusAtStart = Math.round(meta.busyCpusAtStart * 100) / 100
  if (meta.busyCpusAtStart >= IDLE_THRESHOLD) {
    process.stderr.write(`bench: warning: other processes are using ${meta.busyCpusAtStart} CPUs; expect noisy numbers\n`)
  }
}

// Waiting for an idle machine is bounded per run (--wait-idle) and in total (--wait-budget),
// so a machine that stays busy costs at most that much extra time.
let waitBudgetMs = opts.waitBudgetS * 1000
async function waitIdleWithinBudget() {
  const maxMs = Math.min(opts.waitIdleS * 1000, waitBudgetMs)
  if (maxMs <= 0) return null
  const t0 = Date.now()
  const busy = await waitForIdle({ maxMs, threshold: IDLE_THRESHOLD, windowMs: 200 })
  waitBudgetMs = Math.max(0, waitBudgetMs - (Date.now() - t0))
  if (waitBudgetMs === 0) process.stderr.write('  (waiting budget used up: no more waiting for an idle machine)\n')
  return busy
}
async function machineBusyNow() {
  const a = readCpuTicks()
  await sleep(300)
  const busy = busyCores(a, readCpuTicks())
  return busy !== null && busy >= IDLE_THRESHOLD
}

const output = { meta, workloads: [] }
const started = Date.now()
try {
  mkdirSync(opts.tmpDir, { recursive: true })
  tmpRoot = mkdtempSync(path.join(opts.tmpDir, 'lmdb-cache-bench-'))

  for (const workloadName of opts.workloads) {
    const w = WORKLOADS[workloadName]
    const backends = available.filter((b) => backendSupports(b, w.uses))
    const results = Object.fromEntries(backends.map((b) => [b, []]))
    const discarded = []
    // Retry budget per workload: at most a quarter of its runs.
    let retriesLeft = Math.ceil((backends.length * opts.rounds) / 4)
    process.stderr.write(
      `\n[${workloadName}] ${w.title}: ${w.ops[mode].toLocaleString('en-US')} ops after ${w.warmup[mode].toLocaleString('en-US')} warm-up; ${DATASETS[w.dataset].description}\n`,
    )
    for (let round = 0; round < opts.rounds; round++) {
      const order = backends.map((_, i) => backends[(i + round) % backends.length])
      for (const backend of order) {
        const dir = path.join(tmpRoot, `${workloadName}-${backend}-r${round + 1}`)
        const args = ['--backend', backend, '--workload', workloadName, '--round', String(round + 1), '--dir', dir]
        if (opts.quick) args.push('--quick')
        if (w.dataset === 'large') args.push('--large-keys', String(opts.largeKeys))
        // A run that other processes disturbed (measured, not guessed from its result) is
        // repeated once the machine is idle again, within the retry and waiting budgets.
        for (let attempt = 0; ; attempt++) {
          const busy = await waitIdleWithinBudget()
          if (busy !== null && busy >= IDLE_THRESHOLD && opts.waitIdleS > 0) {
            process.stderr.write(`  (machine busy: others use ${busy.toFixed(2)} CPUs; measuring anyway)\n`)
          }
          let run
          try {
            run = await runChild(args, { timeoutMs: (opts.quick ? 2 : opts.largeKeys > DEFAULT_LARGE_KEY_COUNT ? 15 : 5) * 60_000 })
          } catch (err) {
            throw new Error(`[${workloadName}] round ${round + 1}, backend ${backend}: ${err.message}`)
          }
          if (run.stderr.trim()) process.stderr.write(`${run.stderr.replace(/^/gm, `  ${backend}| `).trimEnd()}\n`)
          const r = run.result
          const isContended = r.otherBusyCores >= CONTENDED
          let retry = isContended && attempt < opts.retries && retriesLeft > 0
          // Repeating is only worth it if the machine is quiet again now.
          if (retry) retry = !(await machineBusyNow())
          const populate = r.populateMs !== undefined ? `, populate ${(r.populateMs / 1000).toFixed(2)} s` : ''
          const note = isContended ? `  [others used ${r.otherBusyCores} CPUs${retry ? '; discarded, retrying' : ''}]` : ''
          process.stderr.write(
            `  round ${round + 1}/${opts.rounds}  ${backend.padEnd(12)} ${Math.round(r.value).toLocaleString('en-US').padStart(11)} ${w.metric}${populate}${note}\n`,
          )
          if (retry) {
            retriesLeft--
            discarded.push(r)
            continue
          }
          r.attempts = attempt + 1
          results[backend].push(r)
          break
        }
      }
    }
    const all = Object.values(results).flat()
    const contendedRuns = all.filter((r) => r.otherBusyCores >= CONTENDED).length
    const baselines = BASELINES.filter((b) => results[b])
    const rows = workloadRows(results, baselines)
    output.workloads.push({
      name: workloadName,
      title: w.title,
      metric: w.metric,
      ops: w.ops[mode],
      warmup: w.warmup[mode],
      dataset: DATASETS[w.dataset].description,
      baselines,
      contendedRuns,
      totalRuns: all.length,
      discardedRuns: discarded.length,
      discarded,
      rows: rows.map((r) => ({ ...r, samples: results[r.backend].map((s) => s.value) })),
      raw: results,
    })
  }
} catch (err) {
  process.stderr.write(`\nbench: ABORTED: ${err.message}\n`)
  cleanup()
  process.exit(1)
}
cleanup()
meta.durationS = Math.round((Date.now() - started) / 1000)
meta.loadAvgAtEnd = os.loadavg().map((x) => Math.round(x * 100) / 100)

// ---- report -----------------------------------------------------------------------------

const text = []
const md = [
  '# Benchmark results',
  '',
  `- Date: ${meta.date}`,
  `- Node: ${meta.node} (V8 ${meta.v8}), ${meta.platform}`,
  `- CPU: ${meta.cpu} ×${meta.cpuCount}, ${meta.totalMemMb.toLocaleString('en-US')} MB RAM`,
  `- Machine load before the run: ${meta.busyCpusAtStart ?? '?'} CPUs busy (load average ${meta.loadAvgAtStart.join(', ')})`,
  `- Mode: ${mode === 'quick' ? 'quick (few operations)' : 'default'}, ${meta.rounds} rounds per backend (interleaved, each run in a fresh process); medians with min–max over rounds; ratios are medians of per-round ratios`,
  `- Note: ${meta.note}`,
  '',
]
for (const w of output.workloads) {
  const columns = tableColumns(w.metric, w.baselines)
  const heading = `${w.title} — ${w.ops.toLocaleString('en-US')} ops after ${w.warmup.toLocaleString('en-US')} warm-up; ${w.dataset}`
  const notes = []
  if (w.discardedRuns) notes.push(`${w.discardedRuns} disturbed runs were discarded and repeated`)
  if (w.contendedRuns) notes.push(`${w.contendedRuns} of the ${w.totalRuns} runs kept still had other processes using >= ${CONTENDED} CPU`)
  const warning = notes.length ? `(${notes.join('; ')})` : null
  text.push(heading, renderText(w.rows, columns), ...(warning ? [warning] : []), '')
  md.push(`## ${heading}`, '', renderMarkdown(w.rows, columns), '', ...(warning ? [warning, ''] : []))
}
md.push('Backends:', '', ...Object.entries(meta.backends).map(([b, d]) => `- \`${b}\`: ${d}`), '')
md.push(
  `Versions: ${Object.entries(meta.versions)
    .map(([p, v]) => `${p} ${v ?? '?'}`)
    .join(', ')}.`,
  '',
)
if (meta.skippedBackends.length) md.push(`Not available in this run: ${meta.skippedBackends.join(', ')}.`, '')

process.stdout.write(`\n${text.join('\n')}`)
process.stderr.write(`bench: done in ${meta.durationS} s\n`)

if (opts.out !== '-') {
  const outBase = path.resolve(opts.out)
  mkdirSync(path.dirname(outBase), { recursive: true })
  writeFileSync(`${outBase}.json`, `${JSON.stringify(output, null, 2)}\n`)
  const svg = renderSvg(output.workloads, {
    subtitle: `${meta.date.slice(0, 10)} · node ${meta.node} · ${meta.cpu} ×${meta.cpuCount} · ${meta.rounds} rounds, each run in a fresh process${meta.mode === 'quick' ? ' · quick run (few ops)' : ''}`,
  })
  if (svg) {
    writeFileSync(`${outBase}.svg`, svg)
    md.splice(md.indexOf('') + 1, 0, `![throughput relative to level-cache](${path.basename(outBase)}.svg)`, '')
  }
  writeFileSync(`${outBase}.md`, `${md.join('\n')}\n`)
  process.stderr.write(`bench: wrote ${path.relative(process.cwd(), outBase)}.json, .md${svg ? ' and .svg' : ''}\n`)
}

// ---- Keyv stores --------------------------------------------------------------------------

if (opts.keyv) {
  const args = [path.join(here, 'keyv.js'), '--rounds', String(opts.rounds), '--out', opts.out === '-' ? '-' : `${path.resolve(opts.out)}-keyv`]
  if (opts.quick) args.push('--quick')
  const keyvRun = spawnSync(process.execPath, args, { stdio: 'inherit' })
  if (keyvRun.status !== 0) {
    process.stderr.write('bench: the Keyv stores benchmark failed (see above)\n')
    process.exit(1)
  }
}
