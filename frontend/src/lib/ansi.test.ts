import { describe, expect, it } from "vitest";

import { AnsiParser, applySgr, color256, segmentProps, type Style } from "./ansi";

const PLAIN: Style = { fg: null, bg: null, bold: false, dim: false, italic: false, underline: false, inverse: false };
const ESC = "\x1b";

describe("ANSI SGR parsing", () => {
  it("splits text into styled segments and resets", () => {
    const segs = new AnsiParser().push(`plain ${ESC}[31mred${ESC}[0m back ${ESC}[1;32mbold green${ESC}[m.`);
    expect(segs.map((s) => s.text)).toEqual(["plain ", "red", " back ", "bold green", "."]);
    expect(segs[0]!.style).toBeNull();
    expect(segs[1]!.style).toMatchObject({ fg: 1, bold: false });
    expect(segs[2]!.style).toBeNull();
    expect(segs[3]!.style).toMatchObject({ fg: 2, bold: true });
    expect(segs[4]!.style).toBeNull();
  });

  it("knows bright, background, 256-colour and 24-bit colours", () => {
    expect(applySgr(PLAIN, "91;104")).toMatchObject({ fg: 9, bg: 12 });
    expect(applySgr(PLAIN, "38;5;208").fg).toBe(color256(208));
    expect(applySgr(PLAIN, "38;5;3").fg).toBe(3);
    expect(applySgr(PLAIN, "48;2;10;20;300").bg).toBe("rgb(10, 20, 255)");
    expect(applySgr(PLAIN, "38:2:1:2:3").fg).toBe("rgb(1, 2, 3)");
    expect(applySgr(applySgr(PLAIN, "1;4;3;31"), "22;24;23;39")).toEqual(PLAIN);
    expect(color256(16)).toBe("rgb(0, 0, 0)");
    expect(color256(231)).toBe("rgb(255, 255, 255)");
    expect(color256(232)).toBe("rgb(8, 8, 8)");
  });

  it("keeps the style across chunks and completes an escape split between them", () => {
    const parser = new AnsiParser();
    expect(parser.push(`a${ESC}[3`).map((s) => s.text)).toEqual(["a"]);
    const next = parser.push(`4mblue`);
    expect(next).toEqual([{ text: "blue", style: expect.objectContaining({ fg: 4 }) }]);
    expect(parser.push(" still")[0]!.style).toMatchObject({ fg: 4 });
    expect(parser.push(`${ESC}`)).toEqual([]);
    expect(parser.push("[0mplain")).toEqual([{ text: "plain", style: null }]);
  });

  it("drops other escape sequences (cursor moves, clears, titles)", () => {
    const text = new AnsiParser()
      .push(`${ESC}[2K${ESC}[1Gdone${ESC}]0;title\x07 ${ESC}[?25lok${ESC}(B`)
      .map((s) => s.text)
      .join("");
    expect(text).toBe("done ok");
  });

  it("renders palette colours as theme classes, others inline; bold brightens the first eight", () => {
    expect(segmentProps(null)).toEqual({});
    expect(segmentProps({ ...PLAIN, fg: 1, bold: true })).toEqual({ className: "ansi-fg-9 ansi-bold", style: undefined });
    expect(segmentProps({ ...PLAIN, fg: "rgb(1, 2, 3)", bg: 4 })).toEqual({ className: "ansi-bg-4", style: { color: "rgb(1, 2, 3)" } });
    expect(segmentProps({ ...PLAIN, inverse: true, fg: 2 }).className).toBe("ansi-bg-2");
  });
});
