// Datasets and workloads. Adding a workload = adding an entry to WORKLOADS (and, if it needs
// different data, to DATASETS); bench.js and run-backend.js pick it up by name.
//
// A workload entry:
//   title         heading in the report
//   metric        what `measure()` reports; today 'ops/s' (higher is better)
//   uses          Cache methods it calls (stateless backends like `floor` run it only if
//                 they implement all of them)
//   dataset       a DATASETS key: what every stateful backend holds before timing
//   backendOptions  extra options for the backend's open function (e.g. { noSync: true })
//   ops, warmup   operation counts: { full, quick }
//   seed          PRNG seed; the same key sequence for every backend and round
//   prepare(ctx)  runs in the child after populate + verify, untimed; may write more data.
//                 ctx = { cache, backend, stateful, dataset, ops, warmup, seed }.
//                 Returns { warmup(): Promise, measure(): Promise<{ ops, extra? }>, check?() }.
//                 Only measure() is timed; check() runs afterwards and throws on a wrong result.

import { DEFAULT_KEY_COUNT, keyOf, randomKeys, smallValueOf } from './data.js';

export const DATASETS = {
  small: {
    description: `${DEFAULT_KEY_COUNT.toLocaleString('en-US')} keys (user:000000..), ~100-byte JSON values`,
    keyCount: DEFAULT_KEY_COUNT,
    valueFn: smallValueOf,
    keyFn: keyOf,
  },
};

export const WORKLOADS = {
  'get-awaited': {
    title: 'get, awaited one by one',
    metric: 'ops/s',
    uses: ['get'],
    dataset: 'small',
    ops: { full: 200_000, quick: 5_000 },
    warmup: { full: 20_000, quick: 1_000 },
    seed: 0x0a11ce,
    prepare({ cache, stateful, dataset, ops, warmup, seed }) {
      const keys = randomKeys(seed, warmup + ops, dataset.keyCount, dataset.keyFn);
      let misses = 0;
      async function loop(from, to) {
        for (let i = from; i < to; i++) {
          if ((await cache.get(keys[i])) === undefined) misses++;
        }
      }
      return {
        warmup: () => loop(0, warmup),
        async measure() {
          await loop(warmup, warmup + ops);
          return { ops };
        },
        check() {
          if (stateful && misses > 0) {
            throw new Error(`get returned undefined for ${misses} stored keys during the run`);
          }
        },
      };
    },
  },
};

export const DEFAULT_WORKLOADS = Object.keys(WORKLOADS);
