// @keyv/test-suite (vitest) against KeyvLmdb as shipped, run by __test__/keyv.test.js:
// api, values and namespace with Keyv's default serializer and with serialization off (the
// store then keeps Keyv's { value, expires } object as MessagePack, not JSON inside JSON;
// two buffer tests skipped there, see rawTest),
// and the iterator suite. Keyv 5.6 wires keyv.iterator only for dialects it knows (sqlite,
// postgres, mysql, mongo, redis, valkey, etcd), so the iterator suite's Keyv wires it itself
// through keyv.generateIterator(store.iterator), as a user of another dialect must.
import fs from 'node:fs'
import os from 'node:os'
import path from 'node:path'
import keyvTestSuite, { keyvIteratorTests } from '@keyv/test-suite'
import Keyv from 'keyv'
import * as test from 'vitest'
import { KeyvLmdb } from '../../keyv.js'

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'lmdb-cache-keyv-suite-'))
const stores = []
const store = () => {
  const s = new KeyvLmdb({ path: dir })
  stores.push(s)
  return s
}
test.afterAll(async () => {
  for (const s of stores) await s.disconnect()
  fs.rmSync(dir, { recursive: true, force: true })
})

// Serialization off unless a test brings its own serializer.
class RawKeyv extends Keyv {
  constructor(options) {
    super({ serialize: undefined, deserialize: undefined, ...options })
  }
}

// Without Keyv's serializer a value is this package's: JSON semantics, so a Buffer reads back
// as { type: 'Buffer', data }. These two tests (and only these) are left out of that run.
const JSON_SEMANTICS_DIFFER = new Set(['value can be a buffer', 'value can be an object containing a buffer'])
const rawTest = { ...test, it: (name, ...rest) => (JSON_SEMANTICS_DIFFER.has(name) ? test.it.skip : test.it)(name, ...rest) }

class KeyvWithIterator extends Keyv {
  constructor(options) {
    super(options)
    if (this.iterator === undefined) this.iterator = this.generateIterator(this.store.iterator.bind(this.store))
  }
}

test.describe('Keyv (default serializer) over KeyvLmdb', () => {
  keyvTestSuite(test, Keyv, store)
})

test.describe('Keyv with serialization off over KeyvLmdb', () => {
  keyvTestSuite(rawTest, RawKeyv, store)
})

test.describe('Keyv iterator over KeyvLmdb', () => {
  keyvIteratorTests(test, KeyvWithIterator, store)
})

test.it('keyv.iterator is not wired by Keyv itself for the lmdb-cache dialect (why the suite wires it)', () => {
  test.expect(new Keyv({ store: store() }).iterator).toBeUndefined()
})
