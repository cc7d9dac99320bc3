/**
 * `ipckit bench --html FILE`: one self-contained page (no script, no stylesheet or font to
 * fetch: it opens offline) with one chart per metric, drawn as plain inline SVG. Each chart
 * has a group of horizontal bars per mechanism and size: ours, the C reference and the Node
 * baselines of that size, on a log scale, with each bar's spread over the rounds as a
 * whisker and the targets as red ticks. The machine is named at the top.
 */
import type { Metric } from './harness.js';
import { distanceLine } from './distance.js';
import { cReference, fmtValue, machineLine, sizeLabel, type BenchReport, type ReportFigure } from './report.js';

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

const COLORS: Record<string, string> = { ipckit: '#2b6cb0', c: '#555555', node: '#d69e2e' };
const ROW = 16;
const GROUP_GAP = 10;
const LABEL_W = 420;
const PLOT_W = 560;

interface Bar {
  label: string;
  figure: ReportFigure;
}

interface Group {
  title: string;
  bars: Bar[];
  /** Target values on this group's scale (µs or msg/s), with their text. */
  targets: Array<{ value: number; text: string }>;
}

function groups(report: BenchReport, metric: Metric): Group[] {
  const figs = report.figures.filter((f) => f.metric === metric);
  const out: Group[] = [];
  const seen = new Set<string>();
  for (const f of figs.filter((x) => x.role === 'ipckit')) {
    const key = `${f.mechanism}|${f.size}`;
    if (seen.has(key)) continue;
    seen.add(key);
    const ours = figs.filter((x) => x.role === 'ipckit' && x.mechanism === f.mechanism && x.size === f.size);
    const bars: Bar[] = ours.map((o) => ({ label: o.variant, figure: o }));
    const c = cReference(report.figures, f);
    if (c) bars.push({ label: c.variant, figure: c });
    for (const n of figs.filter((x) => x.role === 'node' && x.size === f.size && x.mechanism === 'node')) bars.push({ label: n.variant, figure: n });
    const targets: Group['targets'] = [];
    for (const t of report.targets.filter((t) => t.mechanism === f.mechanism && t.metric === metric && (t.size === undefined || t.size === f.size))) {
      if (t.maxP50Us !== undefined) targets.push({ value: t.maxP50Us, text: t.text });
      else if (t.minMsgsPerSec !== undefined) targets.push({ value: t.minMsgsPerSec, text: t.text });
      else if (t.minMBPerSec !== undefined && f.size > 0) targets.push({ value: (t.minMBPerSec * 1e6) / f.size, text: t.text });
      else if (t.maxRatio !== undefined && t.compareTo) {
        const base = report.figures.find((b) => b.variant === t.compareTo!.variant && b.metric === metric && b.size === f.size && b.mechanism === (t.compareTo!.mechanism ?? t.mechanism));
        if (base && Number.isFinite(base.value)) targets.push({ value: metric === 'rtt' ? base.value * t.maxRatio : base.value / t.maxRatio, text: t.text });
      }
    }
    out.push({ title: `${f.mechanism}, ${sizeLabel(f.size)}`, bars, targets });
  }
  return out;
}

/** One chart: an <svg> with a log-scale axis. */
export function chart(report: BenchReport, metric: Metric): string {
  const gs = groups(report, metric);
  const values = gs.flatMap((g) => [...g.bars.flatMap((b) => [b.figure.min, b.figure.max, b.figure.value]), ...g.targets.map((t) => t.value)]).filter((v) => Number.isFinite(v) && v > 0);
  const lo = Math.pow(10, Math.floor(Math.log10(Math.min(...values, 1))));
  const hi = Math.pow(10, Math.ceil(Math.log10(Math.max(...values, 10))));
  const x = (v: number): number => LABEL_W + (PLOT_W * (Math.log10(Math.max(v, lo)) - Math.log10(lo))) / (Math.log10(hi) - Math.log10(lo));
  const parts: string[] = [];
  let y = 30;
  // Axis: one line per decade.
  const decades: number[] = [];
  for (let d = lo; d <= hi * 1.0001; d *= 10) decades.push(d);
  for (const g of gs) {
    parts.push(`<text x="4" y="${y + 12}" class="g">${esc(g.title)}</text>`);
    y += ROW;
    const top = y;
    for (const b of g.bars) {
      const f = b.figure;
      const color = COLORS[f.role] ?? '#888';
      parts.push(`<text x="16" y="${y + 12}" class="l">${esc(b.label)}</text>`);
      if (f.notMeasured || !Number.isFinite(f.value)) {
        parts.push(`<text x="${LABEL_W + 4}" y="${y + 12}" class="nm">NOT MEASURED</text><title>${esc(f.notMeasured ?? '')}</title>`);
      } else {
        parts.push(`<rect x="${LABEL_W}" y="${y + 2}" width="${Math.max(1, x(f.value) - LABEL_W).toFixed(1)}" height="${ROW - 4}" fill="${color}"><title>${esc(`${b.label}: ${fmtValue(metric, f.value)} (rounds ${fmtValue(metric, f.min)} to ${fmtValue(metric, f.max)})`)}</title></rect>`);
        if (f.rounds > 1) parts.push(`<line x1="${x(f.min).toFixed(1)}" x2="${x(f.max).toFixed(1)}" y1="${y + ROW / 2}" y2="${y + ROW / 2}" class="w"/>`);
        parts.push(`<text x="${(x(f.value) + 4).toFixed(1)}" y="${y + 12}" class="v">${esc(fmtValue(metric, f.value))}</text>`);
      }
      y += ROW;
    }
    for (const t of g.targets) {
      parts.push(`<line x1="${x(t.value).toFixed(1)}" x2="${x(t.value).toFixed(1)}" y1="${top}" y2="${y}" class="t"><title>${esc(`target: ${t.text}`)}</title></line>`);
    }
    y += GROUP_GAP;
  }
  const axis = decades
    .map((d) => `<line x1="${x(d).toFixed(1)}" x2="${x(d).toFixed(1)}" y1="24" y2="${y}" class="a"/><text x="${x(d).toFixed(1)}" y="18" class="ax">${esc(fmtValue(metric, d))}</text>`)
    .join('');
  const title = metric === 'rtt' ? 'Round trip, p50 (log scale; shorter is better)' : 'One-way throughput, messages/s (log scale; longer is better)';
  return `<h2>${esc(title)}</h2>\n<svg class="chart" width="${LABEL_W + PLOT_W + 90}" height="${y + 10}" viewBox="0 0 ${LABEL_W + PLOT_W + 90} ${y + 10}" role="img" aria-label="${esc(title)}">${axis}${parts.join('')}</svg>`;
}

export function renderHtml(report: BenchReport): string {
  const m = report.machine;
  const apart = distanceLine(report.cpuDistance);
  const metrics: Metric[] = ['rtt', 'throughput'];
  const targets = report.targets
    .map((t) => `<li class="${t.met === undefined ? 'nm' : t.met ? 'met' : 'missed'}">[${t.met === undefined ? 'NOT MEASURED' : t.met ? 'met' : 'MISSED'}] ${esc(t.text)}${t.value !== undefined ? ` (${t.value.toPrecision(3)})` : ''}${t.met === false && t.ifMissed ? `<br><small>why: ${esc(t.ifMissed)}</small>` : ''}${t.met === undefined && t.notMeasured ? `<br><small>why: ${esc(t.notMeasured)}</small>` : ''}</li>`)
    .join('\n');
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>ipckit bench: ${esc(machineLine(m))}</title>
<style>
body{font:14px system-ui,sans-serif;margin:20px;color:#222}
svg .g{font-weight:bold;font-size:12px} svg .l,svg .v,svg .ax,svg .nm{font-size:11px}
svg .ax{text-anchor:middle;fill:#666} svg .a{stroke:#ddd} svg .w{stroke:#000;stroke-width:1}
svg .t{stroke:#e53e3e;stroke-width:2} svg .nm{fill:#e53e3e}
li.missed{color:#c53030} li.nm{color:#975a16}
.key span{display:inline-block;width:12px;height:12px;margin:0 4px 0 12px;vertical-align:middle}
</style></head><body>
<h1>ipckit bench${report.quick ? ' --quick' : ''}</h1>
<p><b>Machine:</b> ${esc(m.cpuModel ?? '?')}, ${m.cpus} CPUs, ${m.memoryGiB} GiB; Linux ${esc(m.kernel)}; Node ${esc(m.node)}; C compiler: ${esc(m.cc)}${m.load ? `; load average at the end ${m.load.join(' ')}` : ''}.${apart ? ` ${esc(apart)}.` : ''}<br>
${esc(report.date)}; ${report.rounds} rounds in ${report.seconds} s. Each bar is the median of its rounds${report.figures.some((f) => f.far) ? ' (where the host moved the CPUs, of its rounds with the CPUs close; `far` in the JSON holds the others)' : ''}; the whisker is the spread (smallest to largest round); red ticks are the targets, judged on every round. Figures differ by machine.</p>
<p class="key"><span style="background:${COLORS.ipckit}"></span>ipckit<span style="background:${COLORS.c}"></span>C reference<span style="background:${COLORS.node}"></span>Node baseline<span style="background:#e53e3e;width:3px"></span>target</p>
${metrics.map((mt) => chart(report, mt)).join('\n')}
<h2>Targets</h2>
<ul>
${targets}
</ul>
<h2>Notes</h2>
<ul>
${report.notes.map((n) => `<li>${esc(n)}</li>`).join('\n')}
</ul>
</body></html>
`;
}
