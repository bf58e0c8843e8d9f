// A small ANSI SGR parser for job output: colours (16, 256 and 24-bit), bold, dim, italic,
// underline, inverse. Other escape sequences (cursor moves, clears, OSC titles) are dropped.
// State carries across calls, so a colour set in one chunk applies to the next, and an
// escape sequence split between two chunks is completed by the second.

export interface Style {
  /** 0–15 (the theme's palette) or a CSS colour. */
  fg: number | string | null;
  bg: number | string | null;
  bold: boolean;
  dim: boolean;
  italic: boolean;
  underline: boolean;
  inverse: boolean;
}

export interface Segment {
  text: string;
  style: Style | null;
}

const PLAIN: Style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };

function isPlain(s: Style): boolean {
  return s.fg === null && s.bg === null && !s.bold && !s.dim && !s.italic && !s.underline && !s.inverse;
}

/** The xterm 256-colour palette above the first 16: a 6×6×6 cube, then 24 greys. */
export function color256(n: number): number | string {
  if (n < 16) return n;
  if (n < 232) {
    const i = n - 16;
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
    return `rgb(${level(Math.floor(i / 36))}, ${level(Math.floor(i / 6) % 6)}, ${level(i % 6)})`;
  }
  const grey = 8 + (n - 232) * 10;
  return `rgb(${grey}, ${grey}, ${grey})`;
}

/** Applies one SGR parameter list (`1;31`, `38;5;208`, `` for reset) to `style`. */
export function applySgr(style: Style, params: string): Style {
  const codes = params === "" ? [0] : params.split(/[;:]/).map((p) => (p === "" ? 0 : Number(p)));
  let s = { ...style };
  for (let i = 0; i < codes.length; i++) {
    const c = codes[i]!;
    if (c === 0) s = { ...PLAIN };
    else if (c === 1) s.bold = true;
    else if (c === 2) s.dim = true;
    else if (c === 3) s.italic = true;
    else if (c === 4) s.underline = true;
    else if (c === 7) s.inverse = true;
    else if (c === 22) s.bold = s.dim = false;
    else if (c === 23) s.italic = false;
    else if (c === 24) s.underline = false;
    else if (c === 27) s.inverse = false;
    else if (c >= 30 && c <= 37) s.fg = c - 30;
    else if (c === 39) s.fg = null;
    else if (c >= 40 && c <= 47) s.bg = c - 40;
    else if (c === 49) s.bg = null;
    else if (c >= 90 && c <= 97) s.fg = c - 90 + 8;
    else if (c >= 100 && c <= 107) s.bg = c - 100 + 8;
    else if (c === 38 || c === 48) {
      let value: number | string | null = null;
      if (codes[i + 1] === 5 && codes[i + 2] !== undefined) {
        value = color256(Math.min(255, Math.max(0, codes[i + 2]!)));
        i += 2;
      } else if (codes[i + 1] === 2 && codes[i + 4] !== undefined) {
        const [r, g, b] = [codes[i + 2]!, codes[i + 3]!, codes[i + 4]!].map((v) => Math.min(255, Math.max(0, v)));
        value = `rgb(${r}, ${g}, ${b})`;
        i += 4;
      } else {
        break; // malformed: ignore the rest
      }
      if (c === 38) s.fg = value;
      else s.bg = value;
    }
  }
  return s;
}

// CSI (ESC [ params final), OSC (ESC ] … BEL or ESC \), charset designations (ESC ( B),
// other two-byte escapes.
// eslint-disable-next-line no-control-regex
const ESCAPE = /\x1b(?:\[([0-9;:?<=>]*)([ -/]*)([@-~])|\][^\x07\x1b]*(?:\x07|\x1b\\)|[ -/]+[0-~]|[@-Z\\-_])/g;
// An escape sequence cut off at the end of the text (completed by the next chunk).
// eslint-disable-next-line no-control-regex
const PARTIAL = /\x1b(?:\[[0-9;:?<=>]*[ -/]*|\][^\x07\x1b]*(?:\x1b)?|[ -/]+)?$/;

/** Turns text with escape sequences into styled segments, remembering the style between calls. */
export class AnsiParser {
  private style: Style = PLAIN;
  private pending = "";

  /** Segments of `text` (after any escape left open by the previous call). */
  push(text: string): Segment[] {
    let input = this.pending + text;
    this.pending = "";
    const partial = PARTIAL.exec(input);
    if (partial && partial[0].length > 0 && partial[0].length <= 256) {
      this.pending = partial[0];
      input = input.slice(0, partial.index);
    }
    const out: Segment[] = [];
    let last = 0;
    const emit = (piece: string) => {
      if (!piece) return;
      const style = isPlain(this.style) ? null : this.style;
      const prev = out[out.length - 1];
      if (prev && prev.style === style) prev.text += piece;
      else out.push({ text: piece, style });
    };
    ESCAPE.lastIndex = 0;
    for (let m = ESCAPE.exec(input); m; m = ESCAPE.exec(input)) {
      emit(input.slice(last, m.index));
      last = m.index + m[0].length;
      if (m[3] === "m" && !m[2] && !/[?<=>]/.test(m[1] ?? "")) this.style = applySgr(this.style, m[1] ?? "");
    }
    emit(input.slice(last));
    return out;
  }
}

/** The class names and inline style a segment renders with. */
export function segmentProps(style: Style | null): { className?: string; style?: Record<string, string> } {
  if (!style) return {};
  let { fg, bg } = style;
  if (style.inverse) [fg, bg] = [bg ?? "var(--log-bg)", fg ?? "var(--log-fg)"];
  const classes: string[] = [];
  const css: Record<string, string> = {};
  if (typeof fg === "number") classes.push(`ansi-fg-${style.bold && fg < 8 ? fg + 8 : fg}`);
  else if (fg) css.color = fg;
  if (typeof bg === "number") classes.push(`ansi-bg-${bg}`);
  else if (bg) css.backgroundColor = bg;
  if (style.bold) classes.push("ansi-bold");
  if (style.dim) classes.push("ansi-dim");
  if (style.italic) classes.push("ansi-italic");
  if (style.underline) classes.push("ansi-underline");
  return { className: classes.length ? classes.join(" ") : undefined, style: Object.keys(css).length ? css : undefined };
}
