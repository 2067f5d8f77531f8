'use strict'
// JS values to the MessagePack this package stores, with JSON.stringify's semantics: what a
// read returns is exactly JSON.parse(JSON.stringify(value)). Encoding here rather than
// running JSON.stringify costs a third as much for string-heavy values (an 8.7 KB string:
// ~15 µs through JSON.stringify's escaping, ~1 µs as UTF-8 bytes) and spares the writer
// thread the transcode. The subset is the one src/codec.rs writes and lib/codec.cjs reads.
//
// What the subset cannot carry is refused (`CannotCarry`), and the caller stores
// JSON.stringify's text instead: a lone surrogate (not UTF-8), an own "__proto__" key
// (msgpackr would rename it), nesting deeper than MAX_DEPTH (which also stops a cycle, for
// JSON.stringify to report), a BigInt, a boxed primitive or anything else unusual.

const { constants: BUFFER_LIMITS } = require('node:buffer')
const { isBoxedPrimitive } = require('node:util').types

const MAX_DEPTH = 128
const INT32_MIN = -(2 ** 31)
const UINT32_MAX = 2 ** 32 - 1

class CannotCarry extends Error {}

let buf = Buffer.allocUnsafeSlow(64 * 1024)
let pos = 0
let depth = 0
// True while a value is being encoded: user code it runs (toJSON, getters) may encode another.
let encoding = false

const hasWellFormed = typeof ''.isWellFormed === 'function'
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/

function ensure(n) {
  if (pos + n <= buf.length) return
  const needed = pos + n
  if (needed > BUFFER_LIMITS.MAX_LENGTH) throw new CannotCarry('too large')
  const bigger = Buffer.allocUnsafeSlow(Math.min(Math.max(needed, buf.length * 2), BUFFER_LIMITS.MAX_LENGTH))
  buf.copy(bigger, 0, 0, pos)
  buf = bigger
}

/**
 * The MessagePack bytes of `value`, `undefined` where JSON.stringify gives undefined, or
 * `null` where only JSON text can carry the value. A toJSON or getter that throws throws
 * here, as it would in JSON.stringify. The bytes are a fresh Buffer, or with `transient` a
 * view of the encoder's own buffer, valid only until the next call: for a caller that copies
 * them at once (a single set: a 10 KB value then costs no allocation and one copy fewer).
 */
function encodeMsgpack(value, transient = false) {
  if (encoding) return encodeNested(value)
  shrink()
  pos = 0
  depth = 0
  encoding = true
  let wrote
  try {
    wrote = writeValue(value, '')
  } catch (error) {
    if (error instanceof CannotCarry) return null
    throw error
  } finally {
    encoding = false
  }
  if (!wrote) return undefined
  if (transient) return buf.subarray(0, pos)
  const out = Buffer.allocUnsafe(pos)
  buf.copy(out, 0, 0, pos)
  return out
}

/**
 * An encode started from inside another (a toJSON or getter that writes to a cache): it gets
 * a buffer of its own, and the outer encode's buffer and position are put back after it.
 */
function encodeNested(value) {
  const outer = { buf, pos, depth }
  buf = Buffer.allocUnsafeSlow(64 * 1024)
  encoding = false
  try {
    return encodeMsgpack(value, false)
  } finally {
    buf = outer.buf
    pos = outer.pos
    depth = outer.depth
    encoding = true
  }
}

/** Keeps no huge buffer from one write to the next. */
function shrink() {
  if (buf.length > 4 * 1024 * 1024) buf = Buffer.allocUnsafeSlow(64 * 1024)
}

/** Writes `value` as JSON.stringify would serialise it under `key`; false: it is left out. */
function writeValue(value, key) {
  if (value !== null && typeof value === 'object' && typeof value.toJSON === 'function') {
    value = value.toJSON(String(key))
  }
  switch (typeof value) {
    case 'string':
      writeString(value)
      return true
    case 'number':
      writeNumber(value)
      return true
    case 'boolean':
      ensure(1)
      buf[pos++] = value ? 0xc3 : 0xc2
      return true
    case 'object':
      if (value === null) {
        ensure(1)
        buf[pos++] = 0xc0
        return true
      }
      if (++depth > MAX_DEPTH) throw new CannotCarry('nesting')
      if (Array.isArray(value)) writeArray(value)
      else writeObject(value)
      depth--
      return true
    case 'bigint':
      throw new CannotCarry('bigint') // JSON.stringify throws its own TypeError
    default:
      return false // undefined, functions, symbols
  }
}

function writeNumber(x) {
  ensure(9)
  if (!Number.isFinite(x)) {
    buf[pos++] = 0xc0 // JSON: null
  } else if (Number.isInteger(x) && x >= INT32_MIN && x <= UINT32_MAX) {
    // -0 is written as 0, as JSON.stringify writes it.
    if (x >= 0) {
      if (x < 0x80) buf[pos++] = x
      else if (x < 0x100) {
        buf[pos++] = 0xcc
        buf[pos++] = x
      } else if (x < 0x10000) {
        buf[pos++] = 0xcd
        pos = buf.writeUInt16BE(x, pos)
      } else {
        buf[pos++] = 0xce
        pos = buf.writeUInt32BE(x, pos)
      }
    } else if (x >= -32) {
      buf[pos++] = x & 0xff
    } else if (x >= -128) {
      buf[pos++] = 0xd0
      pos = buf.writeInt8(x, pos)
    } else if (x >= -32768) {
      buf[pos++] = 0xd1
      pos = buf.writeInt16BE(x, pos)
    } else {
      buf[pos++] = 0xd2
      pos = buf.writeInt32BE(x, pos)
    }
  } else {
    buf[pos++] = 0xcb
    pos = buf.writeDoubleBE(x, pos)
  }
}

function writeString(s) {
  const n = s.length
  if (n < 32) {
    // Short ASCII strings (most keys and small values) by a loop: cheaper than the encoder.
    ensure(1 + n)
    let i = 0
    for (; i < n; i++) {
      const c = s.charCodeAt(i)
      if (c >= 0x80) break
      buf[pos + 1 + i] = c
    }
    if (i === n) {
      buf[pos] = 0xa0 | n
      pos += 1 + n
      return
    }
  }
  const max = n * 3
  const headerLen = max < 0x100 ? 2 : max < 0x10000 ? 3 : 5
  ensure(headerLen + max)
  const start = pos + headerLen
  const written = buf.utf8Write(s, start, max)
  // utf8Write turns a lone surrogate into U+FFFD; only a non-ASCII string can hold one.
  if (written !== n && (hasWellFormed ? !s.isWellFormed() : LONE_SURROGATE.test(s))) {
    throw new CannotCarry('lone surrogate')
  }
  const fit = written < 32 ? 1 : written < 0x100 ? 2 : written < 0x10000 ? 3 : 5
  if (fit !== headerLen) buf.copyWithin(pos + fit, start, start + written)
  if (fit === 1) buf[pos] = 0xa0 | written
  else if (fit === 2) {
    buf[pos] = 0xd9
    buf[pos + 1] = written
  } else if (fit === 3) {
    buf[pos] = 0xda
    buf.writeUInt16BE(written, pos + 1)
  } else {
    buf[pos] = 0xdb
    buf.writeUInt32BE(written, pos + 1)
  }
  pos += fit + written
}

/** A container header for `count` items at `at`, where 5 bytes were reserved. */
function finishHeader(at, count, fix, h16, h32) {
  if (count < 16) {
    buf.copyWithin(at + 1, at + 5, pos)
    buf[at] = fix | count
    pos -= 4
  } else if (count < 0x10000) {
    buf.copyWithin(at + 3, at + 5, pos)
    buf[at] = h16
    buf.writeUInt16BE(count, at + 1)
    pos -= 2
  } else {
    buf[at] = h32
    buf.writeUInt32BE(count, at + 1)
  }
}

function writeArray(array) {
  const n = array.length
  ensure(5)
  const at = pos
  pos += 5
  for (let i = 0; i < n; i++) {
    if (!writeValue(array[i], i)) {
      ensure(1)
      buf[pos++] = 0xc0 // JSON: null for undefined, functions, symbols and holes
    }
  }
  finishHeader(at, n, 0x90, 0xdc, 0xdd)
}

function writeObject(object) {
  const proto = Object.getPrototypeOf(object)
  // Boxed primitives (which JSON.stringify unwraps) go through JSON text.
  if (proto !== Object.prototype && proto !== null && isBoxedPrimitive(object)) throw new CannotCarry('boxed primitive')
  const keys = Object.keys(object)
  ensure(5)
  const at = pos
  pos += 5
  let count = 0
  for (let i = 0; i < keys.length; i++) {
    const key = keys[i]
    if (key === '__proto__') throw new CannotCarry('"__proto__" key')
    const keyAt = pos
    writeString(key)
    if (writeValue(object[key], key)) count++
    else pos = keyAt // left out, as JSON.stringify leaves it out
  }
  finishHeader(at, count, 0x80, 0xde, 0xdf)
}

module.exports = { encodeMsgpack }
