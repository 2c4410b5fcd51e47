// The web client's GLYPHS decoder (client/web/js/glyphs.js) against its
// PALETTE decoder (palette.js), the baseline, on the same screen in the same
// run: a 180x50 xterm of 6x13 cells (1080x650 px) full of new text every
// frame, striped into regions under MAX_REGION_RAW_BYTES as the server
// stripes them (24 cell rows, 24, 2). It prints the wire bytes of a screen
// and the milliseconds to decode it (inflate + pixels; median of --rounds),
// as this process's CPU time (steadier on a loaded machine) and elapsed.
//
// Why a node bench: the decoders are plain JS over typed arrays and node's
// DecompressionStream, so their cost is measured here without a browser;
// the page adds only putImageData, the same for both encodings.
//
//   node bench/bench_web_glyphs.mjs [--frames N] [--rounds N]
import { deflateSync } from 'node:zlib';
import { loadavg } from 'node:os';
import { GlyphCache } from '../client/web/js/glyphs.js';
import { decodePalette } from '../client/web/js/palette.js';

const arg = (name, fallback) => {
  const at = process.argv.indexOf(name);
  return at > 0 ? Number(process.argv[at + 1]) : fallback;
};
const FRAMES = arg('--frames', 60);
const ROUNDS = arg('--rounds', 3);
const [COLS, ROWS, CW, CH] = [180, 50, 6, 13];
const STRIPE_ROWS = 24; // 1080 x 312 x 3 bytes <= MAX_REGION_RAW_BYTES (1 MiB)
const GLYPHS = 95; // printable ASCII
const BG = [255, 255, 255];
const FG = [0, 0, 0];

// Deterministic pseudo-random glyph bitmaps and text (xorshift32).
let seed = 2463534242;
const random = () => {
  seed ^= seed << 13;
  seed ^= seed >>> 17;
  seed ^= seed << 5;
  return (seed >>> 0) / 2 ** 32;
};
const glyphBits = Array.from({ length: GLYPHS }, (_, g) =>
  Uint8Array.from({ length: CW * CH }, (_, n) => (g > 0 && n % CW !== 5 && n / CW > 2 && random() < 0.35 ? 1 : 0)));
const screens = Array.from({ length: 4 }, () => Uint8Array.from({ length: COLS * ROWS }, () => Math.floor(random() * GLYPHS)));

const be16 = (v) => [v >> 8, v & 0xff];
const packBits = (bits) => {
  const out = new Uint8Array(Math.ceil(bits.length / 8));
  bits.forEach((b, n) => { if (b) out[n >> 3] |= 0x80 >> (n & 7); });
  return out;
};

/** GLYPHS data of cell rows [r0, r1) of `text`, defining the glyphs this cache lacks. */
function glyphsRegion(text, r0, r1, defined) {
  const cells = text.subarray(r0 * COLS, r1 * COLS);
  const used = [...new Set(cells)];
  const slotIndex = new Map(used.map((g, i) => [g, i]));
  const defs = used.filter((g) => !defined.has(g));
  defs.forEach((g) => defined.add(g));
  const body = Uint8Array.from([
    ...be16(defs.length), ...defs.flatMap((g) => [...be16(g), ...packBits(glyphBits[g])]),
    ...be16(used.length), ...used.flatMap(be16), ...[...cells].map((g) => slotIndex.get(g)),
  ]);
  return Uint8Array.from([CW, CH, ...BG, ...FG, ...deflateSync(body)]);
}

/** PALETTE data (1 bit, 2 colours, zlib rows) of the same cell rows. */
function paletteRegion(text, r0, r1) {
  const w = COLS * CW;
  const rowBytes = w / 8;
  const rows = new Uint8Array(rowBytes * (r1 - r0) * CH);
  for (let y = 0; y < (r1 - r0) * CH; y += 1) {
    for (let x = 0; x < w; x += 1) {
      const g = text[(r0 + Math.floor(y / CH)) * COLS + Math.floor(x / CW)];
      if (glyphBits[g][(y % CH) * CW + (x % CW)]) rows[y * rowBytes + (x >> 3)] |= 0x80 >> (x & 7);
    }
  }
  return Uint8Array.from([1, 1, ...BG, ...FG, 1, ...deflateSync(rows)]);
}

const stripes = [];
for (let r = 0; r < ROWS; r += STRIPE_ROWS) stripes.push([r, Math.min(ROWS, r + STRIPE_ROWS)]);
const defined = new Set();
const glyphFrames = screens.map((text) => stripes.map(([a, b]) => glyphsRegion(text, a, b, defined)));
const paletteFrames = screens.map((text) => stripes.map(([a, b]) => paletteRegion(text, a, b)));
const sizeOf = (frame) => frame.reduce((n, d) => n + d.length, 0);

/** {wall, cpu}: milliseconds per screen of `run`, elapsed and this process's CPU (every thread). */
async function timed(run) {
  const start = performance.now();
  const cpu = process.cpuUsage();
  await run();
  const used = process.cpuUsage(cpu);
  return { wall: (performance.now() - start) / FRAMES, cpu: (used.user + used.system) / 1000 / FRAMES };
}

async function timeGlyphs(cache) {
  for (let f = 0; f < FRAMES; f += 1) {
    const frame = glyphFrames[f % glyphFrames.length];
    const pending = frame.map((data, i) => cache.inflate(data, COLS * CW, (stripes[i][1] - stripes[i][0]) * CH));
    for (let i = 0; i < frame.length; i += 1) cache.draw(await pending[i], COLS * CW, (stripes[i][1] - stripes[i][0]) * CH);
  }
}

async function timePalette() {
  for (let f = 0; f < FRAMES; f += 1) {
    const frame = paletteFrames[f % paletteFrames.length];
    const pending = frame.map((data, i) => decodePalette(data, COLS * CW, (stripes[i][1] - stripes[i][0]) * CH));
    for (const p of pending) await p;
  }
}

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const cache = new GlyphCache();
await timeGlyphs(cache); // the first frame defines the glyphs; warm both paths
await timePalette();
const glyphRuns = [];
const paletteRuns = [];
for (let r = 0; r < ROUNDS; r += 1) {
  paletteRuns.push(await timed(timePalette));
  glyphRuns.push(await timed(() => timeGlyphs(cache)));
}
const line = (what) => {
  const g = glyphRuns.map((run) => run[what]);
  const p = paletteRuns.map((run) => run[what]);
  const all = (xs) => xs.map((x) => x.toFixed(2)).join(' ');
  return `GLYPHS ${median(g).toFixed(2)} [${all(g)}], PALETTE ${median(p).toFixed(2)} [${all(p)}], GLYPHS/PALETTE ${(median(g) / median(p)).toFixed(2)}`;
};
console.log(`node ${process.version}, load ${loadavg().map((l) => l.toFixed(2)).join(' ')}, ${FRAMES} frames x ${ROUNDS} rounds`);
console.log(`screen ${COLS}x${ROWS} cells of ${CW}x${CH} (${COLS * CW}x${ROWS * CH} px) in ${stripes.length} regions, new text each frame`);
console.log(`bytes per screen: GLYPHS ${sizeOf(glyphFrames[1])} (first, defining ${GLYPHS} glyphs: ${sizeOf(glyphFrames[0])}), PALETTE ${sizeOf(paletteFrames[1])}`);
console.log(`CPU ms per screen (median): ${line('cpu')}`);
console.log(`wall ms per screen (median): ${line('wall')}`);
