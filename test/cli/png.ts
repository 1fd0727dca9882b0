/**
 * A minimal PNG reader (8-bit RGB/RGBA, non-interlaced: what Chromium's --screenshot writes) with node's
 * zlib, so a test can say "the picture is not blank" without an image library.
 */
import { inflateSync } from 'node:zlib';

export interface Picture {
  width: number;
  height: number;
  /** RGB triples, row-major */
  rgb: Uint8Array;
}

function paeth(a: number, b: number, c: number): number {
  const p = a + b - c;
  const pa = Math.abs(p - a);
  const pb = Math.abs(p - b);
  const pc = Math.abs(p - c);
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

export function decodePng(buf: Buffer): Picture {
  if (buf.subarray(0, 8).toString('hex') !== '89504e470d0a1a0a') throw new Error('not a PNG (bad signature)');
  let pos = 8;
  let width = 0;
  let height = 0;
  let colourType = -1;
  const idat: Buffer[] = [];
  while (pos < buf.length) {
    const len = buf.readUInt32BE(pos);
    const type = buf.toString('ascii', pos + 4, pos + 8);
    const data = buf.subarray(pos + 8, pos + 8 + len);
    if (type === 'IHDR') {
      width = data.readUInt32BE(0);
      height = data.readUInt32BE(4);
      const depth = data[8];
      colourType = data[9]!;
      if (depth !== 8 || (colourType !== 2 && colourType !== 6) || data[12] !== 0) throw new Error(`unsupported PNG: depth ${depth}, colour type ${colourType}, interlace ${data[12]}`);
    } else if (type === 'IDAT') idat.push(data);
    else if (type === 'IEND') break;
    pos += 12 + len;
  }
  const bpp = colourType === 6 ? 4 : 3;
  const raw = inflateSync(Buffer.concat(idat));
  const stride = width * bpp;
  const cur = new Uint8Array(stride);
  let prev = new Uint8Array(stride);
  const rgb = new Uint8Array(width * height * 3);
  for (let y = 0; y < height; y++) {
    const off = y * (stride + 1);
    const filter = raw[off]!;
    for (let i = 0; i < stride; i++) {
      const x = raw[off + 1 + i]!;
      const a = i >= bpp ? cur[i - bpp]! : 0;
      const b = prev[i]!;
      const c = i >= bpp ? prev[i - bpp]! : 0;
      const v = filter === 0 ? x : filter === 1 ? x + a : filter === 2 ? x + b : filter === 3 ? x + ((a + b) >> 1) : x + paeth(a, b, c);
      cur[i] = v & 0xff;
    }
    for (let px = 0; px < width; px++) for (let k = 0; k < 3; k++) rgb[(y * width + px) * 3 + k] = cur[px * bpp + k]!;
    prev = Uint8Array.from(cur);
  }
  return { width, height, rgb };
}

/** Distinct colours and the share of pixels that are not (near) white. */
export function pictureStats(p: Picture): { colours: number; nonWhiteShare: number; colourCounts: Map<number, number> } {
  const colourCounts = new Map<number, number>();
  let nonWhite = 0;
  const n = p.width * p.height;
  for (let i = 0; i < n; i++) {
    const r = p.rgb[i * 3]!;
    const g = p.rgb[i * 3 + 1]!;
    const b = p.rgb[i * 3 + 2]!;
    const key = (r << 16) | (g << 8) | b;
    colourCounts.set(key, (colourCounts.get(key) ?? 0) + 1);
    if (r < 245 || g < 245 || b < 245) nonWhite++;
  }
  return { colours: colourCounts.size, nonWhiteShare: nonWhite / n, colourCounts };
}

/** Pixels close to a #rrggbb colour (anti-aliasing moves edges a little). */
export function pixelsNear(stats: { colourCounts: Map<number, number> }, hex: string, tolerance = 6): number {
  const t = parseInt(hex.slice(1), 16);
  const [tr, tg, tb] = [(t >> 16) & 255, (t >> 8) & 255, t & 255];
  let n = 0;
  for (const [k, c] of stats.colourCounts) {
    if (Math.abs(((k >> 16) & 255) - tr) <= tolerance && Math.abs(((k >> 8) & 255) - tg) <= tolerance && Math.abs((k & 255) - tb) <= tolerance) n += c;
  }
  return n;
}
