'use strict'
// Owns getOrSet(): single-flight across every process and thread sharing a directory. The
// caller that takes the key's lease (a record the writer thread writes in a write
// transaction, so LMDB's writer lock makes the take atomic across processes; src/lease.rs)
// runs compute; the others wait without spinning: they sleep with a growing backoff,
// re-reading the key and the lease (two cheap read transactions) until the value is there or
// the lease is gone. An owner that dies leaves a lease that lapses after lockTtlMs; an owner
// still computing renews it every lockTtlMs / 3. Callers in one process share one promise.

const { randomBytes } = require('node:crypto')
const { binding, L } = require('./native.cjs')
const { codedError, describe, checkOpen, checkKey } = require('./errors.cjs')
const { encodeValue, expiryFor, submit } = require('./write-queue.cjs')
const { LOOKUP_FOUND, LOOKUP_FOUND_LARGE, fullKeyBytes, lookup, foundValue } = require('./reads.cjs')

const { REQUEST_BATCH, OP_PUT, OP_LEASE_TAKE, OP_LEASE_DROP } = L
const DEFAULT_LOCK_TTL_MS = 30_000
// Waits between looks grow from FIRST_WAIT_MS to MAX_WAIT_MS (never past the lease's expiry).
const FIRST_WAIT_MS = 1
const MAX_WAIT_MS = 50

// One promise per key being got-or-set in this JS thread: "<directory>\0<full key>".
const inflight = new Map()

/** cache.getOrSet(key, compute, { ttlMs, lockTtlMs }). */
function getOrSet(view, key, compute, opts) {
  checkKey(key)
  checkOpen(view.handle)
  if (typeof compute !== 'function') {
    throw codedError(TypeError, 'ERR_INVALID_ARGUMENT', `getOrSet() takes a compute function, got ${describe(compute)}`)
  }
  const options = opts ?? {}
  const ttlMs = options.ttlMs ?? view.handle.defaultTtlMs
  expiryFor(ttlMs, 0) // checks it
  const lockTtlMs = options.lockTtlMs ?? DEFAULT_LOCK_TTL_MS
  if (typeof lockTtlMs !== 'number' || !(lockTtlMs > 0) || lockTtlMs === Infinity) {
    throw codedError(TypeError, 'ERR_INVALID_OPTIONS', `lockTtlMs must be a positive number of milliseconds, got ${describe(lockTtlMs)}`)
  }
  const status = lookup(view, key, true)
  if (status === LOOKUP_FOUND || status === LOOKUP_FOUND_LARGE) return Promise.resolve(foundValue(view.handle, status))
  const id = `${view.handle.dir}\0${view.prefix}${key}`
  let running = inflight.get(id)
  if (running === undefined) {
    running = waitOrCompute(view, key, compute, ttlMs, lockTtlMs).finally(() => inflight.delete(id))
    inflight.set(id, running)
  }
  return running
}

async function waitOrCompute(view, key, compute, ttlMs, lockTtlMs) {
  const { handle } = view
  const token = { bytes: randomBytes(8), msgpack: false }
  const fullKey = fullKeyBytes(view, key)
  let wait = FIRST_WAIT_MS
  for (;;) {
    checkOpen(handle)
    const status = lookup(view, key, true)
    if (status === LOOKUP_FOUND || status === LOOKUP_FOUND_LARGE) return foundValue(handle, status)
    const heldUntil = binding.leaseExpiry(handle.id, fullKey, Date.now())
    if (heldUntil === 0) {
      if (await takeLease(view, key, token, lockTtlMs)) return computeAndStore(view, key, compute, token, ttlMs, lockTtlMs)
      // Another caller took it first (or stored the value): look again at once.
      continue
    }
    await sleep(Math.max(1, Math.min(wait, heldUntil - Date.now() + 1)))
    wait = Math.min(wait * 2, MAX_WAIT_MS)
  }
}

async function takeLease(view, key, token, lockTtlMs) {
  const now = Date.now()
  const op = { kind: OP_LEASE_TAKE, key, value: token, expiry: now + lockTtlMs }
  return (await submit(REQUEST_BATCH, view, [op], now, true)) === 1
}

function dropLease(view, key, token) {
  const op = { kind: OP_LEASE_DROP, key, value: token, expiry: undefined }
  return submit(REQUEST_BATCH, view, [op], Date.now())
}

async function computeAndStore(view, key, compute, token, ttlMs, lockTtlMs) {
  // Renewed while compute runs, so a slow compute keeps it; a dead process stops renewing.
  const renew = setInterval(() => takeLease(view, key, token, lockTtlMs).catch(() => {}), lockTtlMs / 3)
  renew.unref()
  let value
  let encoded
  try {
    value = await compute()
    encoded = encodeValue(value)
  } catch (error) {
    clearInterval(renew)
    // Others may compute now; this call's callers get its error.
    await dropLease(view, key, token).catch(() => {})
    throw error
  }
  clearInterval(renew)
  // The value and the lease's end in one transaction: a waiter sees either the lease or the value.
  const put = { kind: OP_PUT, key, value: encoded, expiry: expiryFor(ttlMs, Date.now()) }
  const drop = { kind: OP_LEASE_DROP, key, value: token, expiry: undefined }
  await submit(REQUEST_BATCH, view, [put, drop], Date.now())
  return value
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

module.exports = { getOrSet }
