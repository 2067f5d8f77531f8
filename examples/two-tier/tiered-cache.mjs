// Two cache tiers through cache-manager: this package as the per-host tier (every process of
// a host shares its directory) in front of a Redis-compatible server shared by all hosts.
//
// Each tier's Keyv carries its own default TTL, and calls pass none, so a value lives
// `localTtlMs` on a host and `sharedTtlMs` in Redis: a host serves a value another host has
// since changed for at most `localTtlMs` (the staleness bound), then reads Redis again.
// cache-manager's wrap() reads the local tier first, then Redis (copying a hit into the
// local tier), and computes on a miss in both; getOrSet on the local tier makes the compute
// single-flight per host (see README "More than one machine").
import KeyvRedis from '@keyv/redis'
import { KeyvLmdb } from '@promethean/lmdb-cache/keyv'
import { createCache } from 'cache-manager'
import Keyv from 'keyv'

/**
 * `dir`: this host's cache directory; `redisUrl`: the shared server; `namespace`: the
 * application's (both tiers); TTLs in milliseconds.
 */
export function createTieredCache({ dir, redisUrl, namespace = 'app', localTtlMs = 5_000, sharedTtlMs = 60_000 }) {
  const local = new Keyv({ store: new KeyvLmdb({ path: dir }), namespace, ttl: localTtlMs, serialize: undefined, deserialize: undefined })
  const shared = new Keyv({ store: new KeyvRedis(redisUrl), namespace, ttl: sharedTtlMs, throwOnErrors: true })
  const cache = createCache({ stores: [local, shared] })
  return { cache, local, shared }
}
