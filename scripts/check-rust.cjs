#!/usr/bin/env node
// Run before every source build (`npm run build`, so also `npm ci`/`npm install` through
// `prepare`): without a Rust toolchain napi-rs fails minutes later with "cargo metadata
// failed to run". Fail at once instead, with one line that says what to install.
'use strict'
const { spawnSync } = require('node:child_process')
const fs = require('node:fs')
const path = require('node:path')

const cargoToml = fs.readFileSync(path.join(__dirname, '..', 'Cargo.toml'), 'utf8')
const minimum = /^rust-version\s*=\s*"([^"]+)"/m.exec(cargoToml)[1]
const advice = `lmdb-cache: building from source needs Rust >= ${minimum} (https://rustup.rs) — or install a prebuilt platform package`

const cargo = process.env.CARGO || 'cargo'
const result = spawnSync(cargo, ['--version'], { encoding: 'utf8' })
const found = result.status === 0 && /^cargo (\d+)\.(\d+)\.(\d+)/.exec(result.stdout)
if (!found) {
  console.error(advice)
  process.exit(1)
}
const have = found.slice(1, 4).map(Number)
const need = minimum.split('.').map(Number)
for (let i = 0; i < 3; i++) {
  const a = have[i]
  const b = need[i] || 0
  if (a > b) break
  if (a < b) {
    console.error(`${advice} (found ${found[0]})`)
    process.exit(1)
  }
}
