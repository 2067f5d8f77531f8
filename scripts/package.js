#!/usr/bin/env node
// `npm run package` (after `npm run build`) and the release workflow (after `napi artifacts`):
// writes installable tarballs into dist/:
//   - the main package, as published: package.json without the development fields
//     (scripts — so no `prepare` source build when a user installs it —, devDependencies,
//     overrides) and with optionalDependencies on every platform package of
//     package.json "napi.targets", named as `napi pre-publish` names them;
//   - each platform package (npm/<platform>/) whose binary is at hand: npm/<platform>/ (where
//     `napi artifacts` puts it) or the repository root (where `napi build --platform` puts it).
// `--out-dir <dir>` writes them there instead of dist/ (the package test does).
// Prints the tarballs' paths, one a line. Exits 1 when no platform binary exists.
import { execFileSync } from 'node:child_process'
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import { fileURLToPath } from 'node:url'
import { parseTriple } from '@napi-rs/cli'

const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..')
const outDirFlag = process.argv.indexOf('--out-dir')
const DIST = outDirFlag === -1 ? path.join(ROOT, 'dist') : path.resolve(process.argv[outDirFlag + 1])
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
const DEV_ONLY_FIELDS = ['scripts', 'devDependencies', 'overrides', 'allowScripts']

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))
const { binaryName, packageName, targets } = pkg.napi

function fail(message) {
  console.error(`lmdb-cache package: ${message}`)
  process.exit(1)
}

/** npm pack of dir into DIST; returns the tarball's path. */
function pack(dir) {
  const out = execFileSync(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', DIST], {
    cwd: dir,
    encoding: 'utf8',
    shell: process.platform === 'win32',
  })
  return path.join(DIST, JSON.parse(out)[0].filename)
}

function copy(from, to) {
  fs.mkdirSync(path.dirname(to), { recursive: true })
  fs.cpSync(from, to, { recursive: true })
}

const platforms = targets.map((triple) => parseTriple(triple).platformArchABI)
const optionalDependencies = Object.fromEntries(platforms.map((p) => [`${packageName}-${p}`, pkg.version]))
if (pkg.optionalDependencies) {
  // `napi pre-publish` (release workflow) wrote them: they must be the same.
  for (const [name, version] of Object.entries(optionalDependencies)) {
    if (pkg.optionalDependencies[name] !== version) fail(`package.json optionalDependencies lacks ${name}@${version}`)
  }
}

fs.mkdirSync(DIST, { recursive: true })
for (const old of fs.readdirSync(DIST)) if (old.endsWith('.tgz')) fs.rmSync(path.join(DIST, old))
const stage = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-package-'))
const tarballs = []
try {
  for (const platform of platforms) {
    const dir = path.join(ROOT, 'npm', platform)
    const binary = `${binaryName}.${platform}.node`
    const found = [path.join(dir, binary), path.join(ROOT, binary)].find((f) => fs.existsSync(f))
    if (!found) continue
    const platformPkg = JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8'))
    if (platformPkg.version !== pkg.version) fail(`npm/${platform} is at ${platformPkg.version}, not ${pkg.version}: run napi version`)
    const staged = path.join(stage, platform)
    copy(dir, staged)
    fs.copyFileSync(found, path.join(staged, binary))
    tarballs.push(pack(staged))
  }
  if (tarballs.length === 0) fail(`no platform binary (${binaryName}.<platform>.node) found: run npm run build first`)

  const manifest = { ...pkg, optionalDependencies }
  for (const field of DEV_ONLY_FIELDS) delete manifest[field]
  const main = path.join(stage, 'main')
  fs.mkdirSync(main)
  fs.writeFileSync(path.join(main, 'package.json'), `${JSON.stringify(manifest, null, 2)}\n`)
  for (const entry of pkg.files) {
    const from = path.join(ROOT, entry)
    if (!fs.existsSync(from)) fail(`${entry} (package.json "files") is missing: run npm run build first`)
    copy(from, path.join(main, entry))
  }
  tarballs.unshift(pack(main))
} finally {
  fs.rmSync(stage, { recursive: true, force: true })
}
for (const tarball of tarballs) console.log(path.relative(process.cwd(), tarball))
