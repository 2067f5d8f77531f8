// ESM entry of @promethean/lmdb-cache/keyv. The implementation lives in lib/keyv.cjs so that
// ESM and CommonJS users share one module instance (and one native thread state) per thread.
import implementation from './lib/keyv.cjs'

export const KeyvLmdb = implementation.KeyvLmdb
export default KeyvLmdb
