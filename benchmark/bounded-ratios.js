// Reads a bench.js JSON result that ran lmdb-cache and lmdb-cache-bounded and prints, per
// workload, the median of the per-round throughput ratios (bounded / unbounded) and of the
// CPU time per operation (unbounded / bounded; all threads of the process).
// Usage: node benchmark/bounded-ratios.js benchmark/results/latest.json
import fs from 'node:fs'

const result = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'))
const median = (values) => values.sort((a, b) => a - b)[values.length >> 1]
for (const workload of result.workloads) {
  const plain = new Map((workload.raw['lmdb-cache'] ?? []).map((run) => [run.round, run]))
  const throughput = []
  const cpu = []
  for (const run of workload.raw['lmdb-cache-bounded'] ?? []) {
    const base = plain.get(run.round)
    if (!base) continue
    throughput.push(run.value / base.value)
    cpu.push(base.measureCpuMs / base.ops / (run.measureCpuMs / run.ops))
  }
  if (throughput.length === 0) continue
  console.log(
    `${workload.name}: throughput bounded/unbounded ${median(throughput).toFixed(3)}, CPU per op unbounded/bounded ${median(cpu).toFixed(3)} (${throughput.length} rounds)`,
  )
}
