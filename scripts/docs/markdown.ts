/** Small helpers for the generated parts of the docs: table cells and marked blocks. */

/** One table cell: pipes escaped, line breaks folded. */
export function cell(text: string): string {
  return text.replace(/\|/g, '\\|').replace(/\s*\n\s*/g, ' ');
}

/** A markdown table from a header row and body rows. */
export function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]) => `| ${cells.map(cell).join(' | ')} |`;
  return [line(header), line(header.map(() => '---')), ...rows.map(line)].join('\n');
}

/** The marker lines around a generated block named `name`. */
export function markers(name: string): { begin: string; end: string } {
  return {
    begin: `<!-- BEGIN GENERATED ${name}: make docs rewrites this block -->`,
    end: `<!-- END GENERATED ${name} -->`,
  };
}

/** The text between the markers of block `name` in `document` (trimmed), or undefined. */
export function readBlock(document: string, name: string): string | undefined {
  const { begin, end } = markers(name);
  const start = document.indexOf(begin);
  const stop = document.indexOf(end);
  if (start < 0 || stop < start) return undefined;
  return document.slice(start + begin.length, stop).trim();
}

/** `document` with the block `name` replaced by `content`; throws if the markers are missing. */
export function writeBlock(document: string, name: string, content: string): string {
  const { begin, end } = markers(name);
  const start = document.indexOf(begin);
  const stop = document.indexOf(end);
  if (start < 0 || stop < start) {
    throw new Error(`no block ${name}: add the lines\n${begin}\n${end}`);
  }
  return `${document.slice(0, start)}${begin}\n${content.trim()}\n${document.slice(stop)}`;
}
