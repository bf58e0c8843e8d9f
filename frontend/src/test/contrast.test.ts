// Status badges are small text on a tinted background: WCAG AA wants 4.5:1. Checked on the
// colours styles.css defines, in the light and the dark theme.
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { describe, expect, it } from "vitest";

const css = readFileSync(join(__dirname, "../styles.css"), "utf8");

/** The custom properties of the first block that starts with `selector`. */
function variables(selector: string): Record<string, string> {
  const start = css.indexOf(selector);
  const block = css.slice(start, css.indexOf("}", start));
  return Object.fromEntries([...block.matchAll(/(--[\w-]+):\s*(#[0-9a-f]{6})/g)].map((m) => [m[1]!, m[2]!]));
}

function luminance(hex: string): number {
  const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255).map((c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4));
  return 0.2126 * r! + 0.7152 * g! + 0.0722 * b!;
}

function contrast(a: string, b: string): number {
  const [hi, lo] = [luminance(a), luminance(b)].sort((x, y) => y - x);
  return (hi! + 0.05) / (lo! + 0.05);
}

describe("badge colours", () => {
  for (const [theme, selector] of [
    ["light", ":root {"],
    ["dark", ':root[data-theme="dark"]'],
  ] as const) {
    it(`read at 4.5:1 or more in the ${theme} theme`, () => {
      const v = variables(selector);
      for (const tone of ["green", "red", "orange"]) {
        expect(contrast(v[`--${tone}-ink`]!, v[`--${tone}-soft`]!), `${tone} on ${tone}-soft`).toBeGreaterThanOrEqual(4.5);
      }
      expect(contrast(v["--accent"]!, v["--accent-soft"]!), "accent").toBeGreaterThanOrEqual(4.5);
      expect(contrast(v["--text-2"]!, v["--gray-soft"]!), "gray").toBeGreaterThanOrEqual(4.5);
    });
  }
});
