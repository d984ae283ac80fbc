// A small dependency-free SVG line chart (loss curves): axes with "nice" ticks, one polyline per
// series, optional vertical markers (epoch boundaries), a legend. The output is a standalone .svg
// file that any browser or image viewer opens.

export interface Series {
  name: string;
  /** y values at x = 1, 2, 3, … (NaN/Infinity points are skipped). */
  values: readonly number[];
  color?: string;
  /** Stroke width in pixels (default 1.5). */
  width?: number;
  /** 0..1 (default 1). */
  opacity?: number;
}

export interface LineChartOptions {
  title: string;
  subtitle?: string;
  xLabel: string;
  yLabel: string;
  series: readonly Series[];
  /** x positions of dashed vertical lines, with a label each. */
  markers?: readonly { x: number; label: string }[];
  width?: number;
  height?: number;
  /** Force the y axis to start at 0 (default true when every value is ≥ 0). */
  yFromZero?: boolean;
}

export const PALETTE = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#7f7f7f', '#bcbd22', '#393b79'];

function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!);
}

/** About `count` round tick values covering [min, max] (1, 2 or 5 × 10^k steps). */
export function niceTicks(min: number, max: number, count = 5): number[] {
  if (!(max > min)) return [min];
  const raw = (max - min) / count;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? 10 * magnitude;
  const ticks: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) ticks.push(Number(v.toPrecision(12)));
  return ticks;
}

/** Moving average over a trailing window (for a readable trend over noisy per-batch losses). */
export function movingAverage(values: readonly number[], window: number): number[] {
  const out: number[] = [];
  let sum = 0;
  let n = 0;
  const queue: number[] = [];
  for (const v of values) {
    const x = Number.isFinite(v) ? v : 0;
    queue.push(x);
    sum += x;
    n++;
    if (queue.length > window) {
      sum -= queue.shift()!;
      n--;
    }
    out.push(sum / n);
  }
  return out;
}

const fmt = (v: number) => (Math.abs(v) >= 1000 || (Math.abs(v) < 0.01 && v !== 0) ? v.toExponential(1) : String(Number(v.toPrecision(3))));

export function lineChartSvg(options: LineChartOptions): string {
  const width = options.width ?? 720;
  const height = options.height ?? 400;
  const margin = { top: options.subtitle ? 56 : 40, right: 24, bottom: 48, left: 64 };
  const legendRowHeight = 16;
  const legendHeight = options.series.length > 1 ? legendRowHeight * Math.ceil(options.series.length / 3) + 8 : 0;
  const plotW = width - margin.left - margin.right;
  const plotH = height - margin.top - margin.bottom - legendHeight;

  const finite = options.series.flatMap((s) => s.values.filter(Number.isFinite));
  const xMax = Math.max(1, ...options.series.map((s) => s.values.length));
  let yMin = finite.length ? Math.min(...finite) : 0;
  let yMax = finite.length ? Math.max(...finite) : 1;
  if (options.yFromZero ?? yMin >= 0) yMin = 0;
  if (yMax === yMin) yMax = yMin + 1;
  const yTicks = niceTicks(yMin, yMax);
  yMax = Math.max(yMax, yTicks[yTicks.length - 1]);
  const xTicks = niceTicks(1, xMax, 8).filter((t) => Number.isInteger(t) && t >= 1);
  const sx = (x: number) => margin.left + (xMax === 1 ? plotW / 2 : ((x - 1) / (xMax - 1)) * plotW);
  const sy = (y: number) => margin.top + plotH - ((y - yMin) / (yMax - yMin)) * plotH;

  const parts: string[] = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="system-ui, sans-serif" font-size="12">`,
    `<rect width="${width}" height="${height}" fill="white"/>`,
    `<text x="${width / 2}" y="22" text-anchor="middle" font-size="15" font-weight="bold">${escapeXml(options.title)}</text>`,
  ];
  if (options.subtitle) parts.push(`<text x="${width / 2}" y="40" text-anchor="middle" fill="#555">${escapeXml(options.subtitle)}</text>`);
  // grid and axes
  for (const t of yTicks) {
    const y = sy(t).toFixed(1);
    parts.push(`<line x1="${margin.left}" x2="${margin.left + plotW}" y1="${y}" y2="${y}" stroke="#e5e5e5"/>`);
    parts.push(`<text x="${margin.left - 6}" y="${y}" text-anchor="end" dominant-baseline="middle">${fmt(t)}</text>`);
  }
  for (const t of xTicks) {
    const x = sx(t).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top + plotH}" y2="${margin.top + plotH + 4}" stroke="#333"/>`);
    parts.push(`<text x="${x}" y="${margin.top + plotH + 16}" text-anchor="middle">${t}</text>`);
  }
  parts.push(`<rect x="${margin.left}" y="${margin.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#333"/>`);
  parts.push(`<text x="${margin.left + plotW / 2}" y="${margin.top + plotH + 36}" text-anchor="middle">${escapeXml(options.xLabel)}</text>`);
  parts.push(
    `<text transform="translate(16 ${margin.top + plotH / 2}) rotate(-90)" text-anchor="middle">${escapeXml(options.yLabel)}</text>`,
  );
  for (const m of options.markers ?? []) {
    const x = sx(m.x).toFixed(1);
    parts.push(`<line x1="${x}" x2="${x}" y1="${margin.top}" y2="${margin.top + plotH}" stroke="#999" stroke-dasharray="4 3"/>`);
    parts.push(`<text x="${Number(x) + 3}" y="${margin.top + 12}" fill="#777" font-size="10">${escapeXml(m.label)}</text>`);
  }
  // series
  options.series.forEach((s, i) => {
    const color = s.color ?? PALETTE[i % PALETTE.length];
    const segments: string[][] = [[]];
    s.values.forEach((v, j) => {
      if (Number.isFinite(v)) segments[segments.length - 1].push(`${sx(j + 1).toFixed(1)},${sy(v).toFixed(1)}`);
      else if (segments[segments.length - 1].length) segments.push([]);
    });
    for (const points of segments.filter((p) => p.length)) {
      if (points.length === 1) {
        const [x, y] = points[0].split(',');
        parts.push(`<circle cx="${x}" cy="${y}" r="2.5" fill="${color}"/>`);
      } else {
        parts.push(
          `<polyline fill="none" stroke="${color}" stroke-width="${s.width ?? 1.5}" stroke-opacity="${s.opacity ?? 1}" stroke-linejoin="round" points="${points.join(' ')}"/>`,
        );
      }
    }
  });
  // legend
  if (options.series.length > 1) {
    const colWidth = plotW / 3;
    options.series.forEach((s, i) => {
      const x = margin.left + (i % 3) * colWidth;
      const y = margin.top + plotH + 48 + Math.floor(i / 3) * legendRowHeight;
      const color = s.color ?? PALETTE[i % PALETTE.length];
      parts.push(`<line x1="${x}" x2="${x + 18}" y1="${y}" y2="${y}" stroke="${color}" stroke-width="3" stroke-opacity="${s.opacity ?? 1}"/>`);
      parts.push(`<text x="${x + 24}" y="${y}" dominant-baseline="middle">${escapeXml(s.name)}</text>`);
    });
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}
