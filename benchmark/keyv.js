// Keyv over this store vs Keyv over @keyv/sqlite and @keyv/redis (a local redis-server this
// script starts; skipped with the reason printed when none is installed): gets and sets,
// awaited one at a time and 64 in flight. Run by `npm run bench` (benchmark/bench.js) after
// its own workloads, or alone: node benchmark/keyv.js [--quick] [--rounds N] [--out PREFIX|-].
//
// Each (backend, round) runs in a child process of its own (this script with --child), rounds
// interleaved with a rotating order; every Keyv uses its default serializer (one row also
// with it off, this store keeping Keyv's { value, expires } object as MessagePack). Each child
// populates 10,000 keys of ~100-byte objects, checks that every key reads back its value,
// then times each workload for a fixed time; sets are checked after their timing (each key
// written holds one of the values written to it).

import { spawn } from 'node:child_process'
import { deepStrictEqual } from 'node:assert/strict'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import { findRedisServer, startRedisServer } from '../examples/two-tier/redis-server.mjs'
import { keyOf, randomKeys, smallValueOf } from './lib/data.js'
import { fmtInt, fmtRatio, pairedRatio, summarize } from './lib/report.js'

const here = path.dirname(fileURLToPath(import.meta.url))
const KEYS = 10_000
const IN_FLIGHT = 64
const WORKLOADS = ['get awaited', `get ${IN_FLIGHT} in flight`, 'set awaited', `set ${IN_FLIGHT} in flight`]
const BACKENDS = {
  'keyv-lmdb-cache': 'Keyv 5 over KeyvLmdb (this package, durability "durable"), default serializer',
  'keyv-lmdb-cache-raw': 'the same with Keyv serialize/deserialize off (values kept as MessagePack)',
  'keyv-sqlite': 'Keyv 5 over @keyv/sqlite (sqlite3, its defaults), default serializer',
  'keyv-redis': 'Keyv 5 over @keyv/redis and a local redis-server (no persistence), default serializer',
}
const BASELINES = ['keyv-sqlite', 'keyv-redis']

async function makeKeyv(backend, dir, redisUrl) {
  const { default: Keyv } = await import('keyv')
  const namespace = `bench${process.pid}`
  if (backend.startsWith('keyv-lmdb-cache')) {
    const { KeyvLmdb } = await import('../keyv.js')
    const raw = backend.endsWith('-raw') ? { serialize: undefined, deserialize: undefined } : {}
    return new Keyv({ store: new KeyvLmdb({ path: path.join(dir, 'lmdb') }), namespace, ...raw })
  }
  if (backend === 'keyv-sqlite') {
    const { default: KeyvSqlite } = await import('@keyv/sqlite')
    return new Keyv({ store: new KeyvSqlite({ uri: `sqlite://${path.join(dir, 'db.sqlite')}` }), namespace })
  }
  const { default: KeyvRedis } = await import('@keyv/redis')
  return new Keyv({ store: new KeyvRedis(redisUrl), namespace })
}

/** Runs `op(i)` from `lanes` concurrent loops for `ms`; returns ops per second. */
async function timed(ms, lanes, op) {
  let done = 0
  const end = performance.now() + ms
  const lane = async (start) => {
    for (let i = start; ; i += lanes) {
      await op(i)
      done++
      if ((done & 127) === 0 && performance.now() > end) return
    }
  }
  const t0 = performance.now()
  await Promise.all(Array.from({ length: lanes }, (_, l) => lane(l)))
  return done / ((performance.now() - t0) / 1000)
}

async function child(backend, dir, redisUrl, ms) {
  const keyv = await makeKeyv(backend, dir, redisUrl)
  const values = Array.from({ length: KEYS }, (_, i) => smallValueOf(i))
  for (let i = 0; i < KEYS; i += 500) {
    await Promise.all(values.slice(i, i + 500).map((v, j) => keyv.set(keyOf(i + j), v)))
  }
  // Checked before anything is timed: every key reads back its value.
  for (let i = 0; i < KEYS; i++) deepStrictEqual(await keyv.get(keyOf(i)), values[i], `${backend}: ${keyOf(i)}`)
  const reads = randomKeys(7, 1 << 16, KEYS)
  const mask = reads.length - 1
  const result = {}
  result[WORKLOADS[0]] = await timed(ms, 1, (i) => keyv.get(reads[i & mask]))
  result[WORKLOADS[1]] = await timed(ms, IN_FLIGHT, (i) => keyv.get(reads[i & mask]))
  const fresh = (i) => ({ ...values[i % KEYS], score: i })
  // Sets in flight together may land in any order (a store owes no order to concurrent
  // writes), so a key must hold one of the values written to it.
  const written = new Map()
  const set = (i) => {
    const key = reads[i & mask]
    if (!written.has(key)) written.set(key, [])
    written.get(key).push(i)
    return keyv.set(key, fresh(i))
  }
  result[WORKLOADS[2]] = await timed(ms, 1, set)
  result[WORKLOADS[3]] = await timed(ms, IN_FLIGHT, set)
  // Checked after: every key written holds one of the values written to it.
  for (const [key, indices] of written) {
    const value = await keyv.get(key)
    const i = indices.includes(value?.score) ? value.score : indices.at(-1)
    deepStrictEqual(value, fresh(i), `${backend}: ${key} after the sets`)
  }
  await keyv.disconnect()
  return result
}

function runChild(args) {
  return new Promise((resolve, reject) => {
    const p = spawn(process.execPath, [fileURLToPath(import.meta.url), ...args], { stdio: ['ignore', 'pipe', 'inherit'] })
    let out = ''
    p.stdout.on('data', (d) => {
      out += d
    })
    p.on('exit', (code) => (code === 0 ? resolve(JSON.parse(out.trim().split('\n').pop())) : reject(new Error(`${args[1]} exited with ${code}`))))
  })
}

async function main() {
  const { values } = parseArgs({
    options: {
      child: { type: 'string' },
      dir: { type: 'string' },
      redis: { type: 'string' },
      ms: { type: 'string' },
      quick: { type: 'boolean', default: false },
      rounds: { type: 'string' },
      out: { type: 'string' },
    },
  })
  if (values.child) {
    process.stdout.write(`${JSON.stringify(await child(values.child, values.dir, values.redis, Number(values.ms)))}\n`)
    return
  }
  const rounds = Number(values.rounds ?? (values.quick ? 1 : 3))
  const ms = values.quick ? 200 : 1500
  const backends = Object.keys(BACKENDS)
  let server = null
  if (findRedisServer() === null) {
    process.stderr.write('bench keyv: skipping keyv-redis: redis-server is not installed (apt-get install -y redis-server)\n')
    backends.splice(backends.indexOf('keyv-redis'), 1)
  } else {
    server = await startRedisServer()
  }
  const samples = Object.fromEntries(backends.map((b) => [b, []]))
  try {
    for (let round = 1; round <= rounds; round++) {
      const order = backends.map((_, i) => backends[(i + round - 1) % backends.length])
      for (const backend of order) {
        const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-bench-keyv-'))
        try {
          process.stderr.write(`bench keyv: round ${round}/${rounds} ${backend}\n`)
          const result = await runChild(['--child', backend, '--dir', dir, '--redis', server?.url ?? '', '--ms', String(ms)])
          samples[backend].push({ round, result })
        } finally {
          fs.rmSync(dir, { recursive: true, force: true })
        }
      }
    }
  } finally {
    await server?.stop()
  }
  report(samples, backends, rounds, values.quick, values.out ?? path.join(here, 'results', values.quick ? 'quick-keyv' : 'latest-keyv'))
}

function report(samples, backends, rounds, quick, out) {
  const baselines = BASELINES.filter((b) => backends.includes(b))
  const header = ['workload', 'backend', 'ops/s (median)', 'min–max', ...baselines.map((b) => `vs ${b}`)]
  const rows = []
  const json = { date: new Date().toISOString(), node: process.version, rounds, quick, backends: BACKENDS, workloads: {} }
  for (const w of WORKLOADS) {
    json.workloads[w] = {}
    const of = (b) => samples[b].map((s) => ({ round: s.round, value: s.result[w] }))
    for (const b of backends) {
      const s = summarize(of(b).map((x) => x.value))
      const ratios = Object.fromEntries(baselines.map((base) => [base, pairedRatio(of(b), of(base))]))
      json.workloads[w][b] = { ...s, ratios, samples: of(b).map((x) => x.value) }
      rows.push([w, b, fmtInt(s.median), `${fmtInt(s.min)}–${fmtInt(s.max)}`, ...baselines.map((base) => fmtRatio(ratios[base]))])
    }
  }
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)))
  const line = (r) => r.map((c, i) => c.padEnd(widths[i])).join('  ')
  process.stdout.write(`\nKeyv stores, ${rounds} round(s) of ${quick ? 'quick' : 'full'} runs\n${[header, ...rows].map(line).join('\n')}\n`)
  if (out === '-') return
  const md = [
    '# Keyv stores',
    '',
    `- ${json.date}, Node ${json.node}, ${os.cpus()[0]?.model} ×${os.cpus().length}; ${rounds} round(s), each backend in a fresh process; ratios are medians of per-round ratios.`,
    ...(backends.includes('keyv-redis') ? [] : ['- keyv-redis skipped: redis-server is not installed.']),
    '',
    `| ${header.join(' | ')} |`,
    `| ${header.map(() => '---').join(' | ')} |`,
    ...rows.map((r) => `| ${r.join(' | ')} |`),
    '',
    ...Object.entries(BACKENDS).map(([b, d]) => `- \`${b}\`: ${d}`),
    '',
  ]
  fs.mkdirSync(path.dirname(out), { recursive: true })
  fs.writeFileSync(`${out}.json`, `${JSON.stringify(json, null, 2)}\n`)
  fs.writeFileSync(`${out}.md`, md.join('\n'))
  process.stderr.write(`bench keyv: wrote ${path.relative(process.cwd(), out)}.json and .md\n`)
}

await main()
