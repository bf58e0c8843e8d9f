// The initial JavaScript of the UI — the entry script and the chunks index.html preloads —
// gzipped, against the budget of issue 4 (250 KB). Lazy pages are listed but not counted.
import { readFileSync, readdirSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";

const BUDGET = 250 * 1024;
const dist = new URL("../dist/", import.meta.url).pathname;
const html = readFileSync(join(dist, "index.html"), "utf8");
const initial = new Set([...html.matchAll(/(?:src|href)="\/(assets\/[^"]+\.js)"/g)].map((m) => m[1]));
const gz = (file) => gzipSync(readFileSync(join(dist, file)), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;

let total = 0;
for (const file of initial) {
  const size = gz(file);
  total += size;
  console.log(`initial  ${kb(size).padStart(9)}  ${file}`);
}
for (const file of readdirSync(join(dist, "assets")).filter((f) => f.endsWith(".js"))) {
  if (!initial.has(`assets/${file}`)) console.log(`lazy     ${kb(gz(`assets/${file}`)).padStart(9)}  assets/${file}`);
}
console.log(`initial JavaScript: ${kb(total)} gzipped (budget ${kb(BUDGET)})`);
if (total > BUDGET) {
  console.error("over budget: lazy-load more, or drop a dependency");
  process.exit(1);
}
