#!/usr/bin/env node
// lmdb-cache: the command-line tool of @promethean/lmdb-cache (migrate, stats, sweep, dump,
// load, compact, verify). A shell over lib/: this file parses the arguments (node:util
// parseArgs) and prints; each command's work is in lib/cli/*.cjs, lib/compact.cjs and
// lib/migrate.cjs.
import { createRequire } from 'node:module'
import { parseArgs } from 'node:util'

const require = createRequire(import.meta.url)
const { compactCache } = require('../lib/compact.cjs')
const { PROGRAM, HELP } = require('../lib/cli/help.cjs')
const { UsageError, CommandError } = require('../lib/cli/errors.cjs')
const { existingCacheDir, lmdbCache, withCache } = require('../lib/cli/dirs.cjs')
const { int, bytes, Progress, migrateSummaryText, statsText } = require('../lib/cli/format.cjs')
const { dumpEntries, dumpToFile, loadDump } = require('../lib/cli/dump.cjs')
const { cacheFigures } = require('../lib/cli/stats.cjs')
const { verifyCache } = require('../lib/cli/verify.cjs')

const print = (text) => process.stdout.write(`${text}\n`)

/** The parsed `{ values, positionals }` of a command, or null when it printed its --help. */
function parse(command, args, options, positionalNames) {
  let parsed
  try {
    parsed = parseArgs({
      args,
      options: { help: { type: 'boolean', short: 'h' }, ...options },
      allowPositionals: true,
      strict: true,
    })
  } catch (error) {
    // parseArgs messages go on with advice about '--'; the first sentence says it.
    throw new UsageError(String(error.message).split(/\.\s/)[0].replace(/\.$/, ''))
  }
  if (parsed.values.help) {
    print(HELP[command])
    return null
  }
  const { positionals } = parsed
  if (positionals.length < positionalNames.length) {
    throw new UsageError(`missing <${positionalNames[positionals.length]}> argument`)
  }
  if (positionals.length > positionalNames.length) {
    throw new UsageError(`unexpected argument '${positionals[positionalNames.length]}'`)
  }
  for (const [name, value] of Object.entries(parsed.values)) {
    if (value === '' || (Array.isArray(value) && value.includes('') && name !== 'namespace')) {
      throw new UsageError(`--${name} needs a value`)
    }
  }
  return { values: parsed.values, positionals }
}

async function cmdMigrate(args) {
  const parsed = parse(
    'migrate',
    args,
    {
      from: { type: 'string' },
      to: { type: 'string' },
      namespace: { type: 'string', multiple: true },
      verify: { type: 'boolean' },
      json: { type: 'boolean' },
    },
    [],
  )
  if (parsed === null) return 0
  const { values } = parsed
  if (values.from === undefined) throw new UsageError('missing --from <level-cache dir>')
  if (values.to === undefined) throw new UsageError('missing --to <dir>')
  const { migrateFromLevel } = lmdbCache()
  const progress = values.json ? null : new Progress(process.stderr)
  const controller = new AbortController()
  const onSignal = () => controller.abort()
  process.once('SIGINT', onSignal)
  process.once('SIGTERM', onSignal)
  let summary
  try {
    summary = await migrateFromLevel({
      from: values.from,
      to: values.to,
      namespace: values.namespace,
      verify: Boolean(values.verify),
      signal: controller.signal,
      onProgress: progress === null ? undefined : (p) => progress.update(p),
    })
  } catch (error) {
    progress?.finishLine()
    if (error.code === 'ABORT_ERR') throw new CommandError(error.message, 130)
    throw error
  } finally {
    process.off('SIGINT', onSignal)
    process.off('SIGTERM', onSignal)
  }
  progress?.finishLine()
  print(values.json ? JSON.stringify(summary, null, 2) : migrateSummaryText(summary))
  return summary.verify && !summary.verify.ok ? 1 : 0
}

async function cmdStats(args) {
  const parsed = parse('stats', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const figures = await cacheFigures(dir)
  if (parsed.values.json) {
    print(JSON.stringify({ directory: dir, ...figures.stats, namespaces: Object.fromEntries(figures.namespaces) }, null, 2))
  } else {
    print(statsText(dir, figures))
  }
  return 0
}

async function cmdSweep(args) {
  const parsed = parse('sweep', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const swept = await withCache(dir, (cache) => cache.sweepExpired())
  print(parsed.values.json ? JSON.stringify({ swept }) : `swept ${int(swept)} expired entries`)
  return 0
}

async function cmdDump(args) {
  const parsed = parse('dump', args, { namespace: { type: 'string', multiple: true }, out: { type: 'string' }, force: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const namespaces = parsed.values.namespace ?? []
  const outFile = parsed.values.out
  const force = Boolean(parsed.values.force)
  if (force && outFile === undefined) throw new UsageError('--force needs --out <file>')
  if (outFile === undefined) {
    await dumpEntries(dir, namespaces, process.stdout)
  } else {
    const count = await dumpToFile(dir, namespaces, outFile, force)
    print(`dumped ${int(count)} entries to ${outFile}`)
  }
  return 0
}

async function cmdLoad(args) {
  const parsed = parse('load', args, {}, ['dir', 'file'])
  if (parsed === null) return 0
  const [dirArg, file] = parsed.positionals
  const { loaded, expired } = await loadDump(dirArg, file)
  print(`loaded ${int(loaded)} entries into ${dirArg}${expired > 0 ? ` (${int(expired)} already expired, skipped)` : ''}`)
  return 0
}

async function cmdCompact(args) {
  const parsed = parse('compact', args, { force: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dirArg = parsed.positionals[0]
  const dir = existingCacheDir(dirArg)
  const result = await compactCache(dir, { label: dirArg, force: Boolean(parsed.values.force) })
  print(`compacted ${dirArg}: data.mdb ${bytes(result.fileSizeBefore)} -> ${bytes(result.fileSizeAfter)} (${int(result.entries)} entries)`)
  return 0
}

async function cmdVerify(args) {
  const parsed = parse('verify', args, { json: { type: 'boolean' } }, ['dir'])
  if (parsed === null) return 0
  const dir = existingCacheDir(parsed.positionals[0])
  const { text, ...outcome } = await verifyCache(dir)
  if (parsed.values.json) {
    print(JSON.stringify({ directory: dir, ...outcome, message: text }))
  } else {
    print(text)
    if (!outcome.ok) print(`See the README's "Damaged files": restore a backup, or '${PROGRAM} dump' what is readable.`)
  }
  return outcome.ok ? 0 : 1
}

// ---------------------------------------------------------------------------------------

const COMMANDS = { migrate: cmdMigrate, stats: cmdStats, sweep: cmdSweep, dump: cmdDump, load: cmdLoad, compact: cmdCompact, verify: cmdVerify }

async function main(argv) {
  const [command, ...rest] = argv
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    const topic = command === 'help' ? rest[0] : undefined
    if (topic !== undefined && !Object.hasOwn(HELP, topic)) throw new UsageError(`unknown command '${topic}'`)
    // Without a command, the help is the error message.
    const stream = command === undefined ? process.stderr : process.stdout
    stream.write(`${topic === undefined ? HELP.main : HELP[topic]}\n`)
    return command === undefined ? 2 : 0
  }
  if (command === '--version' || command === '-v') {
    process.stdout.write(`${require('../package.json').version}\n`)
    return 0
  }
  if (!Object.hasOwn(COMMANDS, command)) throw new UsageError(`unknown command '${command}'`)
  return COMMANDS[command](rest)
}

const [command] = process.argv.slice(2)
const label = Object.hasOwn(COMMANDS, command ?? '') ? `${PROGRAM} ${command}` : PROGRAM

process.stdout.on('error', (error) => {
  // A closed pipe (`lmdb-cache dump dir | head`) ends the command quietly; any other failure
  // to write the output (a full disk) is one line on stderr.
  if (error.code === 'EPIPE') process.exit(0)
  process.stderr.write(`${label}: cannot write to standard output: ${error.message}\n`)
  process.exit(1)
})

try {
  process.exitCode = await main(process.argv.slice(2))
} catch (error) {
  if (process.env.LMDB_CACHE_DEBUG) console.error(error)
  if (error instanceof UsageError) {
    process.stderr.write(`${label}: ${error.message} (see '${label} --help')\n`)
    process.exitCode = 2
  } else {
    // The native binary's error says on its next lines what to install and what was tried.
    const text = String(error?.message ?? error)
    const message = error?.code === 'ERR_NATIVE_BINARY_MISSING' ? text : text.split('\n')[0]
    const code = typeof error?.code === 'string' && error.code.startsWith('ERR_') ? ` [${error.code}]` : ''
    process.stderr.write(`${label}: ${message}${code}\n`)
    process.exitCode = error instanceof CommandError ? error.exitCode : 1
  }
}
