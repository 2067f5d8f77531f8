// Aggregation and rendering: medians with min-max spread, ratios, text and Markdown tables.

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2
}

export function summarize(samples) {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), n: samples.length }
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 })

export function fmtInt(x) {
  return int.format(Math.round(x))
}

export function fmtRatio(x) {
  if (x === undefined || !Number.isFinite(x)) return '—'
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x`
}

export function fmtMb(kb) {
  return kb === undefined ? '—' : `${Math.round(kb / 1024)} MB`
}

/**
 * The ratio of `samples` to `baseline`: the median of the per-round ratios when both ran every
 * round (each round runs all backends back to back, so a slow spell of a shared machine hits
 * neighbours alike and cancels out of their ratio), else the ratio of the medians.
 */
export function pairedRatio(samples, baseline) {
  const ok = (xs) => xs.every((s) => s.round !== undefined)
  if (samples.length === baseline.length && samples.length > 0 && ok(samples) && ok(baseline)) {
    const byRound = new Map(baseline.map((s) => [s.round, s.value]))
    const ratios = samples.filter((s) => byRound.has(s.round)).map((s) => s.value / byRound.get(s.round))
    if (ratios.length === samples.length) return median(ratios)
  }
  return median(samples.map((s) => s.value)) / median(baseline.map((s) => s.value))
}

/**
 * Rows for one workload: [{ backend, summary, ratios: { [baseline]: x }, rss }].
 * `results` = { [backend]: [sample, ...] } with sample = run-backend's JSON line.
 */
export function workloadRows(results, baselines) {
  const summaries = {}
  for (const [backend, samples] of Object.entries(results)) {
    summaries[backend] = summarize(samples.map((s) => s.value))
  }
  return Object.entries(results).map(([backend, samples]) => {
    const summary = summaries[backend]
    const ratios = {}
    for (const b of baselines) ratios[b] = summaries[b] ? pairedRatio(samples, results[b]) : undefined
    const rss = samples.map((s) => s.maxRssKb).filter((x) => x !== undefined)
    const populate = samples.map((s) => s.populateMs).filter((x) => x !== undefined)
    const disk = samples.map((s) => s.diskBytes).filter((x) => x !== undefined)
    return {
      backend,
      summary,
      ratios,
      peakRssKb: rss.length ? Math.max(...rss) : undefined,
      populateMsMedian: populate.length ? median(populate) : undefined,
      diskBytesMedian: disk.length ? median(disk) : undefined,
    }
  })
}

export function tableColumns(metric, baselines) {
  return [
    { head: 'backend', align: 'left', cell: (r) => r.backend },
    { head: `median ${metric}`, cell: (r) => fmtInt(r.summary.median) },
    { head: 'min–max', cell: (r) => `${fmtInt(r.summary.min)}–${fmtInt(r.summary.max)}` },
    ...baselines.map((b) => ({ head: `vs ${b}`, cell: (r) => fmtRatio(r.ratios[b]) })),
    { head: 'peak RSS', cell: (r) => fmtMb(r.peakRssKb) },
    { head: 'data on disk', cell: (r) => (r.diskBytesMedian === undefined ? '—' : `${(r.diskBytesMedian / 1e6).toFixed(1)} MB`) },
  ]
}

export function renderText(rows, columns) {
  const cells = [columns.map((c) => c.head), ...rows.map((r) => columns.map((c) => c.cell(r)))]
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)))
  const line = (row) => row.map((cell, i) => (columns[i].align === 'left' ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ')
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n')
}

export function renderMarkdown(rows, columns) {
  const esc = (s) => s.replace(/\|/g, '\\|')
  const head = `| ${columns.map((c) => esc(c.head)).join(' | ')} |`
  const sep = `|${columns.map((c) => (c.align === 'left' ? ' --- ' : ' ---: ')).join('|')}|`
  const body = rows.map((r) => `| ${columns.map((c) => esc(c.cell(r))).join(' | ')} |`)
  return [head, sep, ...body].join('\n')
}

// ---- SVG chart ---------------------------------------------------------------------------

const COLORS = {
  'lmdb-cache': '#d9480f',
  'lmdb-cache-nosync': '#f59f00',
  'level-cache': '#868e96',
  'lmdb-js': '#1c7ed6',
  'lmdb-js-nosync': '#74c0fc',
  sqlite: '#2b8a3e',
  floor: '#ced4da',
}
const FALLBACK_COLORS = ['#ae3ec9', '#0ca678', '#e64980', '#5c940d']

function xmlEscape(s) {
  return String(s).replace(/[&<>"]/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;' })[c])
}

/**
 * A horizontal grouped bar chart (hand-written SVG, no dependencies) of each backend's median
 * throughput relative to `baseline`, one group per workload, on a log scale (1x marked).
 * `workloads` = bench.js output.workloads. Returns the SVG text, or null if no workload has
 * the baseline.
 */
export function renderSvg(workloads, { baseline = 'level-cache', title, subtitle } = {}) {
  const groups = workloads
    .filter((w) => w.rows.some((r) => r.backend === baseline))
    .map((w) => {
      const base = w.rows.find((r) => r.backend === baseline).summary.median
      return {
        title: w.title,
        bars: w.rows.map((r) => ({
          backend: r.backend,
          ratio: r.ratios?.[baseline] ?? r.summary.median / base,
          lo: r.summary.min / base,
          hi: r.summary.max / base,
        })),
      }
    })
  if (!groups.length) return null
  const backends = [...new Set(groups.flatMap((g) => g.bars.map((b) => b.backend)))]
  const color = (b) => COLORS[b] ?? FALLBACK_COLORS[backends.indexOf(b) % FALLBACK_COLORS.length]

  const all = groups.flatMap((g) => g.bars.flatMap((b) => [b.lo, b.hi, b.ratio])).filter((x) => x > 0 && Number.isFinite(x))
  const minDecade = Math.floor(Math.log10(Math.min(0.5, ...all)))
  const maxDecade = Math.ceil(Math.log10(Math.max(2, ...all)))
  const W = 900
  const left = 150 // bar labels
  const right = 70 // value labels
  const plotW = W - left - right
  const barH = 13
  const barGap = 3
  const groupGap = 30
  const top = 70
  const x = (v) => left + ((Math.log10(Math.max(v, 10 ** minDecade)) - minDecade) / (maxDecade - minDecade)) * plotW

  const out = []
  let y = top
  for (const g of groups) {
    out.push(`<text x="${left}" y="${y - 8}" class="g">${xmlEscape(g.title)}</text>`)
    for (const b of g.bars) {
      // Bars grow from the 1x line: right = faster than the baseline, left = slower.
      const x1 = x(b.ratio)
      const x0 = Math.min(x(1), x1)
      const width = Math.max(1.5, Math.abs(x1 - x(1)))
      out.push(
        `<text x="${left - 6}" y="${y + barH - 3}" class="l">${xmlEscape(b.backend)}</text>`,
        `<rect x="${x0.toFixed(1)}" y="${y}" width="${width.toFixed(1)}" height="${barH}" fill="${color(b.backend)}"><title>${xmlEscape(`${b.backend}: ${fmtRatio(b.ratio)} ${baseline} (min–max ${fmtRatio(b.lo)}–${fmtRatio(b.hi)})`)}</title></rect>`,
        `<line x1="${x(b.lo).toFixed(1)}" x2="${x(b.hi).toFixed(1)}" y1="${y + barH / 2}" y2="${y + barH / 2}" class="s"/>`,
        `<text x="${(Math.max(x(1), x1, x(b.hi)) + 4).toFixed(1)}" y="${y + barH - 3}" class="v">${fmtRatio(b.ratio)}</text>`,
      )
      y += barH + barGap
    }
    y += groupGap
  }
  const bottom = y - groupGap + 10
  const H = bottom + 40
  const grid = []
  for (let d = minDecade; d <= maxDecade; d++) {
    for (const m of d === maxDecade ? [1] : [1, 2, 5]) {
      const v = m * 10 ** d
      const gx = x(v).toFixed(1)
      grid.push(`<line x1="${gx}" x2="${gx}" y1="${top - 20}" y2="${bottom}" class="${v === 1 ? 'one' : m === 1 ? 'grid' : 'minor'}"/>`)
      if (m === 1 || m === 5 || v === 2) grid.push(`<text x="${gx}" y="${bottom + 16}" class="t">${v >= 1 ? v : Number(v.toPrecision(1))}x</text>`)
    }
  }
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="system-ui, -apple-system, 'Segoe UI', sans-serif">`,
    '<style>',
    '.h{font-size:16px;font-weight:600;fill:#212529}.sub{font-size:11px;fill:#495057}',
    '.g{font-size:12px;font-weight:600;fill:#343a40}.l{font-size:11px;fill:#343a40;text-anchor:end}',
    '.v{font-size:10px;fill:#212529}.t{font-size:10px;fill:#495057;text-anchor:middle}',
    '.grid{stroke:#dee2e6;stroke-width:1}.minor{stroke:#f1f3f5;stroke-width:1}.one{stroke:#212529;stroke-width:1.2;stroke-dasharray:4 3}',
    '.s{stroke:#212529;stroke-width:1;opacity:.55}',
    '</style>',
    `<rect width="${W}" height="${H}" fill="#fff"/>`,
    `<text x="12" y="22" class="h">${xmlEscape(title ?? `Throughput relative to ${baseline}: median over rounds, log scale, whisker = min–max`)}</text>`,
    subtitle ? `<text x="12" y="40" class="sub">${xmlEscape(subtitle)}</text>` : '',
    ...grid,
    ...out,
    `<text x="${left + plotW / 2}" y="${bottom + 32}" class="t">× ${xmlEscape(baseline)} (higher is better)</text>`,
    '</svg>',
    '',
  ].join('\n')
}
