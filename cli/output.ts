/**
 * What the commands print: aligned tables and key/value blocks for people, `--json` for
 * scripts, colours only on a terminal (and never with NO_COLOR or TERM=dumb), progress bars on
 * stderr only when stderr is a terminal. Commands print through here, never with console.log,
 * so the tests capture everything.
 */

/** Where a command writes; process.stdout/stderr in use, string sinks in tests. */
export interface Sink {
  write(text: string): unknown;
  readonly isTTY?: boolean;
  readonly columns?: number;
}

const CODES = {
  bold: [1, 22],
  dim: [2, 22],
  red: [31, 39],
  green: [32, 39],
  yellow: [33, 39],
  blue: [34, 39],
  cyan: [36, 39],
} as const;
export type Colour = keyof typeof CODES;

// eslint-disable-next-line no-control-regex
const ANSI = /\u001b\[[0-9;]*m/g;

/** Printed width of `text` (colour codes take no room). */
export function visibleWidth(text: string): number {
  return [...text.replace(ANSI, '')].length;
}

export type Align = 'left' | 'right';

export interface TableOptions {
  /** Per column; default left. */
  readonly align?: readonly Align[];
}

export class Output {
  readonly color: boolean;

  constructor(
    readonly stdout: Sink,
    readonly stderr: Sink,
    /** `--json`: commands print one JSON document on stdout and nothing else there. */
    readonly jsonMode: boolean,
    env: Record<string, string | undefined> = process.env,
  ) {
    const forced = env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '0';
    this.color =
      !jsonMode && (forced || (Boolean(stdout.isTTY) && !env.NO_COLOR && env.TERM !== 'dumb'));
  }

  /** `text` in `colour` on a terminal, as it is elsewhere. */
  paint(colour: Colour, text: string): string {
    if (!this.color || text === '') return text;
    const [on, off] = CODES[colour];
    return `\u001b[${on}m${text}\u001b[${off}m`;
  }

  line(text = ''): void {
    this.stdout.write(`${text}\n`);
  }

  /** A note for people (stderr), so that stdout stays what was asked for. */
  note(text: string): void {
    this.stderr.write(`${text}\n`);
  }

  json(value: unknown): void {
    this.stdout.write(`${JSON.stringify(value, null, 2)}\n`);
  }

  /** Columns padded to the widest cell; the header dimmed on a terminal. */
  table(
    header: readonly string[],
    rows: readonly (readonly string[])[],
    options: TableOptions = {},
  ): void {
    for (const line of formatTable(header, rows, options, (text) => this.paint('bold', text))) {
      this.line(line);
    }
  }

  /** `key   value` lines, keys padded to the longest. */
  keyValues(pairs: readonly (readonly [string, string])[]): void {
    const width = Math.max(0, ...pairs.map(([key]) => visibleWidth(key)));
    for (const [key, value] of pairs) {
      this.line(`${this.paint('dim', key.padEnd(width))}  ${value}`);
    }
  }

  /** A progress bar for `total` units on stderr when it is a terminal; silent elsewhere. */
  progress(label: string, total: number, unit: 'bytes' | 'items' = 'bytes'): Progress {
    return new Progress(
      this.stderr,
      label,
      total,
      unit,
      Boolean(this.stderr.isTTY) && !this.jsonMode,
    );
  }
}

export function formatTable(
  header: readonly string[],
  rows: readonly (readonly string[])[],
  options: TableOptions = {},
  decorateHeader: (text: string) => string = (text) => text,
): string[] {
  const widths = header.map((title, column) =>
    Math.max(visibleWidth(title), ...rows.map((row) => visibleWidth(row[column] ?? ''))),
  );
  const render = (cells: readonly string[]) =>
    cells
      .map((cell, column) => {
        const pad = ' '.repeat(Math.max(0, widths[column] - visibleWidth(cell)));
        const last = column === cells.length - 1;
        if (options.align?.[column] === 'right') return pad + cell;
        return last ? cell : cell + pad;
      })
      .join('  ');
  return [decorateHeader(render(header)), ...rows.map(render)];
}

/** A one-line bar redrawn in place (at most ten times a second); `done()` ends the line. */
export class Progress {
  private current = 0;
  private lastDrawn = 0;
  private readonly started = Date.now();

  constructor(
    private readonly sink: Sink,
    private readonly label: string,
    private readonly total: number,
    private readonly unit: 'bytes' | 'items',
    private readonly enabled: boolean,
  ) {}

  advance(amount: number): void {
    this.current += amount;
    if (!this.enabled) return;
    const now = Date.now();
    if (now - this.lastDrawn < 100 && this.current < this.total) return;
    this.lastDrawn = now;
    this.draw();
  }

  done(): void {
    if (!this.enabled) return;
    this.draw();
    this.sink.write('\n');
  }

  private draw(): void {
    const width = 30;
    const fraction = this.total > 0 ? Math.min(1, this.current / this.total) : 1;
    const filled = Math.round(fraction * width);
    const bar = '#'.repeat(filled) + '-'.repeat(width - filled);
    const seconds = Math.max((Date.now() - this.started) / 1000, 1e-3);
    const amount =
      this.unit === 'bytes'
        ? `${formatBytes(this.current)}/${formatBytes(this.total)} ${formatBytes(this.current / seconds)}/s`
        : `${this.current}/${this.total}`;
    this.sink.write(
      `\r${this.label} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${amount}\u001b[K`,
    );
  }
}

export function formatBytes(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let value = bytes;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${Math.round(value)} B` : `${value.toFixed(1)} ${units[unit]}`;
}

/** `1 h 05 min`, `4 min 09 s`, `7 s`: the messages' format (runtime/tuning_runtime/messages.py). */
export function formatDuration(seconds: number | undefined | null): string {
  if (seconds === undefined || seconds === null || !Number.isFinite(seconds)) return '-';
  const total = Math.max(0, Math.round(seconds));
  const hours = Math.floor(total / 3600);
  const minutes = Math.floor((total % 3600) / 60);
  const secs = total % 60;
  if (hours) return `${hours} h ${String(minutes).padStart(2, '0')} min`;
  return minutes ? `${minutes} min ${String(secs).padStart(2, '0')} s` : `${secs} s`;
}

/** `$1.23`, or `-` when unknown. */
export function formatUsd(usd: number | undefined | null): string {
  return usd === undefined || usd === null || !Number.isFinite(usd) ? '-' : `$${usd.toFixed(2)}`;
}

/** `2026-12-01 17:47` (UTC, as the ledger keeps it), or `-`. */
export function formatTime(iso: string | undefined | null): string {
  if (!iso) return '-';
  const date = new Date(iso);
  if (Number.isNaN(date.getTime())) return iso;
  return `${date.toISOString().slice(0, 16).replace('T', ' ')}Z`;
}
