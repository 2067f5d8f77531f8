// Aggregation and rendering: medians with min-max spread, ratios, text and Markdown tables.

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

export function summarize(samples) {
  return { median: median(samples), min: Math.min(...samples), max: Math.max(...samples), n: samples.length };
}

const int = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });

export function fmtInt(x) {
  return int.format(Math.round(x));
}

export function fmtRatio(x) {
  if (x === undefined || !Number.isFinite(x)) return '—';
  return `${x >= 10 ? x.toFixed(1) : x.toFixed(2)}x`;
}

export function fmtMb(kb) {
  return kb === undefined ? '—' : `${Math.round(kb / 1024)} MB`;
}

/**
 * Rows for one workload: [{ backend, summary, ratios: { [baseline]: x }, rss }].
 * `results` = { [backend]: [sample, ...] } with sample = run-backend's JSON line.
 */
export function workloadRows(results, baselines) {
  const summaries = {};
  for (const [backend, samples] of Object.entries(results)) {
    summaries[backend] = summarize(samples.map((s) => s.value));
  }
  return Object.entries(results).map(([backend, samples]) => {
    const summary = summaries[backend];
    const ratios = {};
    for (const b of baselines) ratios[b] = summaries[b] ? summary.median / summaries[b].median : undefined;
    const rss = samples.map((s) => s.maxRssKb).filter((x) => x !== undefined);
    const populate = samples.map((s) => s.populateMs).filter((x) => x !== undefined);
    return {
      backend,
      summary,
      ratios,
      peakRssKb: rss.length ? Math.max(...rss) : undefined,
      populateMsMedian: populate.length ? median(populate) : undefined,
    };
  });
}

export function tableColumns(metric, baselines) {
  return [
    { head: 'backend', align: 'left', cell: (r) => r.backend },
    { head: `median ${metric}`, cell: (r) => fmtInt(r.summary.median) },
    { head: 'min–max', cell: (r) => `${fmtInt(r.summary.min)}–${fmtInt(r.summary.max)}` },
    ...baselines.map((b) => ({ head: `vs ${b}`, cell: (r) => fmtRatio(r.ratios[b]) })),
    { head: 'peak RSS', cell: (r) => fmtMb(r.peakRssKb) },
  ];
}

export function renderText(rows, columns) {
  const cells = [columns.map((c) => c.head), ...rows.map((r) => columns.map((c) => c.cell(r)))];
  const widths = columns.map((_, i) => Math.max(...cells.map((row) => row[i].length)));
  const line = (row) =>
    row.map((cell, i) => (columns[i].align === 'left' ? cell.padEnd(widths[i]) : cell.padStart(widths[i]))).join('  ');
  return [line(cells[0]), widths.map((w) => '-'.repeat(w)).join('  '), ...cells.slice(1).map(line)].join('\n');
}

export function renderMarkdown(rows, columns) {
  const esc = (s) => s.replace(/\|/g, '\\|');
  const head = `| ${columns.map((c) => esc(c.head)).join(' | ')} |`;
  const sep = `|${columns.map((c) => (c.align === 'left' ? ' --- ' : ' ---: ')).join('|')}|`;
  const body = rows.map((r) => `| ${columns.map((c) => esc(c.cell(r))).join(' | ')} |`);
  return [head, sep, ...body].join('\n');
}
