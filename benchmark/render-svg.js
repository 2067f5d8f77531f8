// Re-render the SVG chart from a saved result: node benchmark/render-svg.js [benchmark/results/latest.json]
// (bench.js writes it itself after every run; this is for re-styling without re-measuring.)

import { readFileSync, writeFileSync } from 'node:fs'
import { renderSvg } from './lib/report.js'

const file = process.argv[2] ?? new URL('./results/latest.json', import.meta.url).pathname
const { meta, workloads } = JSON.parse(readFileSync(file, 'utf8'))
const svg = renderSvg(workloads, {
  subtitle: `${meta.date.slice(0, 10)} · node ${meta.node} · ${meta.cpu} ×${meta.cpuCount} · ${meta.rounds} rounds, each run in a fresh process${meta.mode === 'quick' ? ' · quick run (few ops)' : ''}`,
})
if (!svg) {
  process.stderr.write('render-svg: no workload has a level-cache row\n')
  process.exit(1)
}
const out = file.replace(/\.json$/, '.svg')
writeFileSync(out, svg)
process.stderr.write(`render-svg: wrote ${out}\n`)
