/**
 * The loss curve of a run as SVG (written by hand: no plotting dependency) or CSV, from the
 * published metrics (`runs/<run-id>/metrics.json`, contract section 11).
 *
 * Not PNG: every npm library that rasterises a chart (chartjs-node-canvas, vega's PNG output)
 * needs node-canvas, a native Cairo build that `npm ci` cannot promise on every laptop; an SVG
 * opens in any browser and converts to PNG with any image tool.
 */
import type { MetricPoint } from '../lib/contract';

interface Series {
  readonly name: string;
  readonly colour: string;
  readonly points: readonly (readonly [number, number])[];
}

const WIDTH = 800;
const HEIGHT = 450;
const MARGIN = { left: 70, right: 20, top: 40, bottom: 50 };

export function lossSeries(points: readonly MetricPoint[]): Series[] {
  const pick = (field: 'loss' | 'evalLoss') =>
    points
      .filter((p) => typeof p[field] === 'number' && Number.isFinite(p[field]))
      .map((p) => [p.step, p[field] as number] as const);
  return [
    { name: 'training loss', colour: '#1f77b4', points: pick('loss') },
    { name: 'eval loss', colour: '#ff7f0e', points: pick('evalLoss') },
  ].filter((s) => s.points.length > 0);
}

export function metricsCsv(points: readonly MetricPoint[]): string {
  const cell = (value: number | string | undefined) => (value === undefined ? '' : String(value));
  const rows = points.map((p) =>
    [p.step, p.at, p.loss, p.evalLoss, p.learningRate, p.tokensPerSecond].map(cell).join(','),
  );
  return ['step,at,loss,eval_loss,learning_rate,tokens_per_second', ...rows].join('\n') + '\n';
}

export function lossSvg(title: string, points: readonly MetricPoint[]): string {
  const series = lossSeries(points);
  const all = series.flatMap((s) => s.points);
  const [xMin, xMax] = bounds(all.map(([x]) => x));
  const [yMin, yMax] = bounds(all.map(([, y]) => y));
  const plotW = WIDTH - MARGIN.left - MARGIN.right;
  const plotH = HEIGHT - MARGIN.top - MARGIN.bottom;
  const x = (v: number) => MARGIN.left + ((v - xMin) / (xMax - xMin)) * plotW;
  const y = (v: number) => MARGIN.top + plotH - ((v - yMin) / (yMax - yMin)) * plotH;
  const parts = [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${HEIGHT}" viewBox="0 0 ${WIDTH} ${HEIGHT}" font-family="sans-serif" font-size="12">`,
    `<rect width="${WIDTH}" height="${HEIGHT}" fill="white"/>`,
    `<text x="${WIDTH / 2}" y="22" text-anchor="middle" font-size="15">${escape(title)}</text>`,
  ];
  for (const tick of ticks(xMin, xMax)) {
    parts.push(
      `<line x1="${x(tick)}" y1="${MARGIN.top}" x2="${x(tick)}" y2="${MARGIN.top + plotH}" stroke="#eee"/>`,
      `<text x="${x(tick)}" y="${MARGIN.top + plotH + 18}" text-anchor="middle">${formatTick(tick)}</text>`,
    );
  }
  for (const tick of ticks(yMin, yMax)) {
    parts.push(
      `<line x1="${MARGIN.left}" y1="${y(tick)}" x2="${MARGIN.left + plotW}" y2="${y(tick)}" stroke="#eee"/>`,
      `<text x="${MARGIN.left - 8}" y="${y(tick) + 4}" text-anchor="end">${formatTick(tick)}</text>`,
    );
  }
  parts.push(
    `<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#444"/>`,
    `<text x="${MARGIN.left + plotW / 2}" y="${HEIGHT - 10}" text-anchor="middle">step</text>`,
    `<text x="16" y="${MARGIN.top + plotH / 2}" text-anchor="middle" transform="rotate(-90 16 ${MARGIN.top + plotH / 2})">loss</text>`,
  );
  series.forEach((s, i) => {
    const path = s.points.map(([px, py]) => `${x(px).toFixed(1)},${y(py).toFixed(1)}`).join(' ');
    parts.push(`<polyline points="${path}" fill="none" stroke="${s.colour}" stroke-width="2"/>`);
    for (const [px, py] of s.points.length <= 60 ? s.points : []) {
      parts.push(
        `<circle cx="${x(px).toFixed(1)}" cy="${y(py).toFixed(1)}" r="2.5" fill="${s.colour}"/>`,
      );
    }
    const ly = MARGIN.top + 16 + i * 18;
    parts.push(
      `<line x1="${MARGIN.left + plotW - 130}" y1="${ly - 4}" x2="${MARGIN.left + plotW - 110}" y2="${ly - 4}" stroke="${s.colour}" stroke-width="2"/>`,
      `<text x="${MARGIN.left + plotW - 104}" y="${ly}">${escape(s.name)}</text>`,
    );
  });
  if (series.length === 0) {
    parts.push(
      `<text x="${WIDTH / 2}" y="${HEIGHT / 2}" text-anchor="middle">no loss published yet</text>`,
    );
  }
  parts.push('</svg>');
  return parts.join('\n') + '\n';
}

function bounds(values: number[]): [number, number] {
  if (values.length === 0) return [0, 1];
  const min = Math.min(...values);
  const max = Math.max(...values);
  if (min === max) return [min - 1, max + 1];
  const pad = (max - min) * 0.05;
  return [min - pad, max + pad];
}

/** About five round ticks between `min` and `max`. */
export function ticks(min: number, max: number): number[] {
  const raw = (max - min) / 5;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * magnitude).find((s) => s >= raw) ?? raw;
  const out: number[] = [];
  for (let v = Math.ceil(min / step) * step; v <= max + step * 1e-9; v += step) {
    out.push(Number(v.toPrecision(12)));
  }
  return out;
}

function formatTick(value: number): string {
  return Math.abs(value) >= 1000 || Number.isInteger(value)
    ? String(Math.round(value))
    : value.toPrecision(3);
}

function escape(text: string): string {
  return text.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}
