// Harness self-test backend (`--backends memory`): the Cache API over a Map, values kept as
// JSON strings so reads pay a parse like the real backends. Not a competitor; no TTL sweep.

const NS_SEP = '\u241F'

export async function openMemoryCache() {
  const map = new Map()
  function makeView(ns) {
    const prefix = ns ? ns + NS_SEP : ''
    const view = Object.freeze({
      async get(key) {
        const s = map.get(prefix + key)
        return s === undefined ? undefined : JSON.parse(s).v
      },
      async has(key) {
        return (await view.get(key)) !== undefined
      },
      async set(key, value) {
        map.set(prefix + key, JSON.stringify({ v: value }))
      },
      async del(key) {
        map.delete(prefix + key)
      },
      async batch(ops) {
        for (const op of ops) {
          if (op.type === 'put') map.set(prefix + op.key, JSON.stringify({ v: op.value }))
          else map.delete(prefix + op.key)
        }
      },
      async *entries(opts) {
        const limit = opts?.limit ?? Infinity
        let n = 0
        for (const k of [...map.keys()].filter((k) => k.startsWith(prefix)).sort()) {
          if (n++ >= limit) return
          yield [k.slice(prefix.length), JSON.parse(map.get(k)).v]
        }
      },
      async sweepExpired() {
        return 0
      },
      withNamespace(child) {
        return child ? makeView(ns ? `${ns}/${child}` : child) : view
      },
      async close() {},
    })
    return view
  }
  return makeView('')
}
