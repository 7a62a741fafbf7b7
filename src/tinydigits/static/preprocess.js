// MNIST-style preprocessing in the browser: the steps of tinydigits/preprocess.py, one function each,
// with OpenCV's arithmetic where it matters (area and bilinear resizing, the 3x3 chamfer distance,
// Otsu, fixed-point warps), so that a drawing, a scan or a photo gives the 28x28 that `predict`
// gives, within a grey level or two (tests/test_web.py measures it).
//
//   lightness -> workSize -> inkIsLight -> removeBackground -> binarize -> removeLines -> pickDigit
//   -> frameDigit (crop to a 4x MNIST box, deskew, fit the pen, average 4x4, centre of mass)
//
//   const seen = mnistLike(ctx.getImageData(0, 0, w, h));     // Uint8Array(784), ink bright on 0
//   const steps = preprocessSteps(imageData);                  // every intermediate, as Steps in Python
"use strict";

export const FRAME = 28;                          // output side, pixels
const BOX = 20, FINE = 4, WORK_SIDE = 256;        // the constants of preprocess.py, same names
const POLARITY_WINDOWS = [0.02, 0.04, 0.08, 0.16];
const BACKGROUND_WINDOW = 0.25, PEN_WINDOW = 3.0, MIN_WINDOW = 0.05;
const INK_FLOOR = 0.2, BLANK_INK = 0.15;
const LINE_SPAN = 0.5, MAX_LINE_ANGLE = 12.0, LINE_ANGLE_STEP = 0.5, MAX_LINE_WIDTH = 0.016;
const SPECK = 0.0003, EDGE_CONTACT = 0.15, NEAR = 0.3, JOIN_AREA = 0.06;
const SLANT_RANGE = [-0.62, 0.31], STROKE_RANGE = [0.096, 0.203];
const f32 = Math.fround;

// An image: { data: Float32Array | Uint8Array, w, h }.
const image = (w, h, data) => ({ w, h, data: data || new Float32Array(w * h) });

// Python's round(): half to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ---- 1. reading ---------------------------------------------------------------------------------
// ImageData -> lightness in [0, 1]: Pillow's "L" conversion when opaque; with transparency, the
// strokes composited onto paper that contrasts with them (preprocess.lightness).
export function lightness({ data, width, height }) {
  const n = width * height, gray = new Float32Array(n);
  let minAlpha = 255;
  for (let i = 0; i < n; i++) minAlpha = Math.min(minAlpha, data[4 * i + 3]);
  if (minAlpha >= 250) {
    for (let i = 0; i < n; i++) {  // Pillow: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
      const d = 4 * i;
      gray[i] = f32(((data[d] * 19595 + data[d + 1] * 38470 + data[d + 2] * 7471 + 0x8000) >>> 16) / 255);
    }
    return image(width, height, gray);
  }
  let weighted = 0, weights = 0;
  const alpha = new Float32Array(n);
  for (let i = 0; i < n; i++) {
    const d = 4 * i;
    alpha[i] = f32(data[d + 3] / 255);
    gray[i] = f32(f32(f32(f32(data[d] / 255) * f32(0.299)) + f32(f32(data[d + 1] / 255) * f32(0.587)))
                  + f32(f32(data[d + 2] / 255) * f32(0.114)));
    weighted += gray[i] * (alpha[i] + 1e-6);
    weights += alpha[i] + 1e-6;
  }
  const paper = weighted / weights < 0.5 ? 1 : 0;  // dark ink -> white paper
  for (let i = 0; i < n; i++) gray[i] = f32(f32(alpha[i] * gray[i]) + f32(f32(1 - alpha[i]) * paper));
  return image(width, height, gray);
}

// ---- OpenCV's resizing of float images ------------------------------------------------------------
// INTER_AREA (every output pixel the mean of the input area it covers) as cv::resize, shrinking only.
function areaTaps(inSize, outSize) {
  const scale = inSize / outSize, taps = [];
  for (let dx = 0; dx < outSize; dx++) {
    const fsx1 = dx * scale, fsx2 = fsx1 + scale, cell = Math.min(scale, inSize - fsx1);
    let sx2 = Math.min(Math.floor(fsx2), inSize - 1);
    const sx1 = Math.min(Math.ceil(fsx1), sx2), t = [];
    if (sx1 - fsx1 > 1e-3) t.push([sx1 - 1, (sx1 - fsx1) / cell]);
    for (let sx = sx1; sx < sx2; sx++) t.push([sx, 1 / cell]);
    if (fsx2 - sx2 > 1e-3) t.push([sx2, Math.min(Math.min(fsx2 - sx2, 1), cell) / cell]);
    taps.push(t);
  }
  return taps;
}

// INTER_LINEAR as cv::resize: the half-pixel centres, clamped at the edges.
function linearTaps(inSize, outSize) {
  const scale = inSize / outSize, taps = [];
  for (let dx = 0; dx < outSize; dx++) {
    let fx = f32((dx + 0.5) * scale - 0.5), sx = Math.floor(fx);
    fx = f32(fx - sx);
    if (sx < 0) { fx = 0; sx = 0; }
    if (sx >= inSize - 1) { fx = 0; sx = inSize - 1; }
    taps.push(fx === 0 ? [[sx, 1]] : [[sx, f32(1 - fx)], [sx + 1, fx]]);
  }
  return taps;
}

function flatTaps(taps) {  // [[index, weight], ...] per output pixel -> offsets, indices, weights
  const start = new Int32Array(taps.length + 1);
  taps.forEach((t, i) => { start[i + 1] = start[i] + t.length; });
  const index = new Int32Array(start[taps.length]), weight = new Float64Array(start[taps.length]);
  taps.flat().forEach(([i, k], j) => { index[j] = i; weight[j] = k; });
  return { start, index, weight };
}

function resize(src, w, h, area) {
  const tx = flatTaps((area ? areaTaps : linearTaps)(src.w, w)), ty = flatTaps((area ? areaTaps : linearTaps)(src.h, h));
  const rows = new Float64Array(w * src.h), out = image(w, h), data = src.data;
  for (let y = 0; y < src.h; y++) {
    const base = y * src.w;
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = tx.start[x]; j < tx.start[x + 1]; j++) s += data[base + tx.index[j]] * tx.weight[j];
      rows[y * w + x] = s;
    }
  }
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      let s = 0;
      for (let j = ty.start[y]; j < ty.start[y + 1]; j++) s += rows[ty.index[j] * w + x] * ty.weight[j];
      out.data[y * w + x] = s;
    }
  }
  return out;
}

// The longer side to WORK_SIDE: area-averaged when shrinking, bilinear when growing (preprocess.work_size).
export function workSize(gray, side = WORK_SIDE) {
  const scale = side / Math.max(gray.w, gray.h);
  return resize(gray, Math.max(1, roundHalfEven(gray.w * scale)), Math.max(1, roundHalfEven(gray.h * scale)), scale < 1);
}

// ---- morphology (OpenCV's: outside the image is ignored) --------------------------------------------
// Max (or min) over a window of `size` pixels centred on each pixel, along rows or columns: a
// monotonic queue, so the cost does not grow with the window.
function slide(src, size, alongRows, max) {
  const { w, h } = src, out = image(w, h), r = size >> 1, n = alongRows ? w : h, lines = alongRows ? h : w;
  const step = alongRows ? 1 : w, lineStep = alongRows ? w : 1, data = src.data, queue = new Int32Array(n);
  const sign = max ? 1 : -1;
  for (let l = 0; l < lines; l++) {
    const base = l * lineStep;
    let head = 0, tail = 0, next = 0;
    for (let i = 0; i < n; i++) {
      const last = Math.min(i + r, n - 1);
      for (; next <= last; next++) {
        const v = sign * data[base + next * step];
        while (tail > head && v >= sign * data[base + queue[tail - 1] * step]) tail--;
        queue[tail++] = next;
      }
      while (queue[head] < i - r) head++;
      out.data[base + i * step] = data[base + queue[head] * step];
    }
  }
  return out;
}

const dilate = (img, size) => slide(slide(img, size, true, true), size, false, true);
const erode = (img, size) => slide(slide(img, size, true, false), size, false, false);
const windowSide = (fraction, img) => Math.max(3, roundHalfEven(fraction * Math.max(img.w, img.h)) | 1);
const map = (img, f) => image(img.w, img.h, img.data.map(f));

// ---- 2-3. paper and ink -------------------------------------------------------------------------
// Which polarity holds more thin features: white against black top-hats at several windows.
export function inkIsLight(gray) {
  let score = 0;
  for (const fraction of POLARITY_WINDOWS) {
    const side = windowSide(fraction, gray);
    const opened = dilate(erode(gray, side), side), closed = erode(dilate(gray, side), side);
    let light = 0, dark = 0;
    for (let i = 0; i < gray.data.length; i++) {
      light += f32(gray.data[i] - opened.data[i]); dark += f32(closed.data[i] - gray.data[i]);
    }
    score += (light - dark) / side ** 2;
  }
  return score > 0;
}

// ink = 1 - gray / closing(gray): the paper's own light divided out.
export function removeBackground(gray, window = BACKGROUND_WINDOW) {
  const side = windowSide(window, gray), paper = erode(dilate(gray, side), side);
  return map(gray, (v, i) => Math.min(Math.max(f32(1 - f32(v / Math.max(paper.data[i], f32(1 / 255)))), 0), 1));
}

// cv::threshold's Otsu on 0-255 levels, never below INK_FLOOR.
export function binarize(ink) {
  const levels = ink.data.map((v) => roundHalfEven(f32(v * 255))), hist = new Float64Array(256), n = levels.length;
  levels.forEach((v) => { hist[v]++; });
  let mu = 0;
  for (let i = 0; i < 256; i++) mu += i * hist[i] / n;
  let q1 = 0, mu1 = 0, best = 0, otsu = 0;
  for (let i = 0; i < 256; i++) {
    const p = hist[i] / n;
    mu1 *= q1; q1 += p;
    const q2 = 1 - q1;
    if (Math.min(q1, q2) < 1.1920929e-7 || Math.max(q1, q2) > 1 - 1.1920929e-7) continue;
    mu1 = (mu1 + i * p) / q1;
    const mu2 = (mu - q1 * mu1) / q2, sigma = q1 * q2 * (mu1 - mu2) * (mu1 - mu2);
    if (sigma > best) { best = sigma; otsu = i; }
  }
  const threshold = Math.max(otsu, INK_FLOOR * 255);
  return { binary: image(ink.w, ink.h, levels.map((v) => (v > threshold ? 1 : 0))), threshold: threshold / 255 };
}

// ---- 4. ruled lines ---------------------------------------------------------------------------------
function transpose(img) {
  const out = image(img.h, img.w, new img.data.constructor(img.data.length));
  for (let y = 0; y < img.h; y++) for (let x = 0; x < img.w; x++) out.data[x * img.h + y] = img.data[y * img.w + x];
  return out;
}

function verticalRuns(mask) {
  const { w, h } = mask, down = new Int32Array(w * h), up = new Int32Array(w * h), runs = new Int32Array(w * h);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const i = y * w + x, j = (h - 1 - y) * w + x;
      down[i] = mask.data[i] ? (y ? down[i - w] : 0) + 1 : 0;
      up[j] = mask.data[j] ? (y ? up[j + w] : 0) + 1 : 0;
    }
  }
  for (let i = 0; i < runs.length; i++) runs[i] = mask.data[i] ? down[i] + up[i] - 1 : 0;
  return runs;
}

// Pixels of straight lines nearly along the rows crossing LINE_SPAN of the width (preprocess.line_pixels).
function linePixels(mask) {
  const { w, h } = mask, onLine = new Uint8Array(w * h), found = new Set(), pixels = [];
  for (let i = 0; i < mask.data.length; i++) if (mask.data[i]) pixels.push(i);
  if (!pixels.length) return { onLine, count: 0 };
  const reach = Math.ceil(w / 2 * Math.tan(MAX_LINE_ANGLE * (Math.PI / 180))) + 2, size = h + 2 * reach + 1;
  const rows = new Int32Array(pixels.length);
  for (let angle = -MAX_LINE_ANGLE; angle <= MAX_LINE_ANGLE + 1e-9; angle += LINE_ANGLE_STEP) {
    const t = Math.tan(angle * (Math.PI / 180)), votes = new Int32Array(size + 1);
    pixels.forEach((p, k) => {
      rows[k] = Math.floor(Math.floor(p / w) - (p % w - w / 2) * t + 0.5) + reach; votes[rows[k]]++;
    });
    const near = new Uint8Array(size + 2);
    let any = false;
    for (let r = 0; r < size; r++) {
      if (votes[r] < LINE_SPAN * w) continue;
      any = true;
      if (votes[r] >= votes[Math.max(r - 1, 0)] && votes[r] >= votes[r + 1]) found.add(r - reach);
      near[Math.max(r - 1, 0)] = near[r] = near[r + 1] = 1;
    }
    if (any) pixels.forEach((p, k) => { if (near[rows[k]]) onLine[p] = 1; });
  }
  return { onLine, count: new Set([...found].map((r) => Math.floor(r / 3))).size };
}

export function removeLines(mask) {
  const thin = Math.max(2, roundHalfEven(MAX_LINE_WIDTH * Math.max(mask.w, mask.h)));
  const t = transpose(mask), rows = linePixels(mask), cols = linePixels(t);
  const runs = verticalRuns(mask), colRuns = transpose(image(t.w, t.h, verticalRuns(t)));
  const colLine = transpose(image(t.w, t.h, cols.onLine));
  const out = map(mask, (v, i) => (v && !((rows.onLine[i] && runs[i] <= thin) || (colLine.data[i] && colRuns.data[i] <= thin)) ? 1 : 0));
  return { binary: out, lines: rows.count + cols.count };
}

// ---- 5. which ink is the digit ------------------------------------------------------------------
function components(mask) {  // 8-connected labels, numbered in raster order of their first pixel
  const { w, h } = mask, labels = new Int32Array(w * h), stack = [];
  const stats = [{ area: 0, x0: 0, y0: 0, x1: 0, y1: 0 }];
  for (let start = 0; start < labels.length; start++) {
    if (!mask.data[start] || labels[start]) continue;
    const s = { area: 0, x0: w, y0: h, x1: -1, y1: -1 }, label = stats.length;
    stats.push(s);
    labels[start] = label; stack.push(start);
    while (stack.length) {
      const p = stack.pop(), x = p % w, y = (p - x) / w;
      s.area++; s.x0 = Math.min(s.x0, x); s.y0 = Math.min(s.y0, y); s.x1 = Math.max(s.x1, x + 1); s.y1 = Math.max(s.y1, y + 1);
      for (let dy = -1; dy <= 1; dy++) {
        for (let dx = -1; dx <= 1; dx++) {
          const nx = x + dx, ny = y + dy, q = ny * w + nx;
          if (nx >= 0 && ny >= 0 && nx < w && ny < h && mask.data[q] && !labels[q]) { labels[q] = label; stack.push(q); }
        }
      }
    }
  }
  return { labels, stats };
}

export function pickDigit(mask) {
  const { w, h } = mask, { labels, stats } = components(mask), count = stats.length;
  if (count < 2) return null;
  const contact = new Int32Array(count);
  for (let x = 0; x < w; x++) { contact[labels[x]]++; contact[labels[(h - 1) * w + x]]++; }
  for (let y = 0; y < h; y++) { contact[labels[y * w]]++; contact[labels[y * w + w - 1]]++; }
  const usable = stats.map((s, i) => i > 0 && s.area >= Math.max(2, SPECK * h * w) && !(contact[i] > EDGE_CONTACT * Math.max(h, w)));
  let main = -1;
  usable.forEach((u, i) => { if (u && (main < 0 || stats[i].area > stats[main].area)) main = i; });
  if (main < 0) return null;
  let chosen = stats.map((_, i) => i === main);
  for (let round = 0; round < 3; round++) {
    const box = [w, h, 0, 0];
    chosen.forEach((c, i) => { if (c) { const s = stats[i]; box[0] = Math.min(box[0], s.x0); box[1] = Math.min(box[1], s.y0); box[2] = Math.max(box[2], s.x1); box[3] = Math.max(box[3], s.y1); } });
    const margin = NEAR * Math.max(box[2] - box[0], box[3] - box[1]);
    const grown = stats.map((s, i) => chosen[i] || (usable[i] && s.area >= JOIN_AREA * stats[main].area
      && s.x0 < box[2] + margin && s.x1 > box[0] - margin && s.y0 < box[3] + margin && s.y1 > box[1] - margin));
    if (grown.every((g, i) => g === chosen[i])) break;
    chosen = grown;
  }
  return image(w, h, Uint8Array.from(labels, (l) => (chosen[l] ? 1 : 0)));
}

// OpenCV's 3x3 chamfer distance (DIST_L2, mask 3: 0.955 and 1.3693 in 16-bit fixed point); outside is far.
function distance(mask) {
  const { w, h } = mask, far = 0x7fffffff, hv = 62587, diag = 89738, d = new Float64Array(w * h);
  const at = (x, y) => (x < 0 || y < 0 || x >= w || y >= h ? far : d[y * w + x]);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      d[y * w + x] = mask.data[y * w + x] ? Math.min(far, at(x - 1, y - 1) + diag, at(x, y - 1) + hv, at(x + 1, y - 1) + diag, at(x - 1, y) + hv) : 0;
    }
  }
  for (let y = h - 1; y >= 0; y--) {
    for (let x = w - 1; x >= 0; x--) {
      if (mask.data[y * w + x]) d[y * w + x] = Math.min(d[y * w + x], at(x + 1, y + 1) + diag, at(x, y + 1) + hv, at(x - 1, y + 1) + diag, at(x + 1, y) + hv);
    }
  }
  return image(w, h, Float32Array.from(d, (v) => v / 65536));
}

function median(values) {
  const v = Float64Array.from(values).sort(), n = v.length;
  return n % 2 ? v[n >> 1] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

function penWidth(chosen) {
  const dist = distance(chosen), top = dilate(dist, 3), ridge = [];
  for (let i = 0; i < dist.data.length; i++) if (chosen.data[i] && dist.data[i] >= top.data[i]) ridge.push(dist.data[i]);
  return ridge.length ? 2 * median(ridge) - 1 : 1;
}

// ---- 6. MNIST's framing -------------------------------------------------------------------------
function crop(img, x0, y0, w, h) {
  const out = image(w, h);
  for (let y = 0; y < h; y++) out.data.set(img.data.subarray((y0 + y) * img.w + x0, (y0 + y) * img.w + x0 + w), y * w);
  return out;
}

function fitBox(img, side) {  // crop to the ink, the longer side to `side` in whole FINE steps
  let x0 = img.w, y0 = img.h, x1 = -1, y1 = -1;
  for (let y = 0; y < img.h; y++) {
    for (let x = 0; x < img.w; x++) {
      if (img.data[y * img.w + x] > 0) { x0 = Math.min(x0, x); x1 = Math.max(x1, x); y0 = Math.min(y0, y); y1 = Math.max(y1, y); }
    }
  }
  const c = crop(img, x0, y0, x1 - x0 + 1, y1 - y0 + 1), scale = side / FINE / Math.max(c.w, c.h);
  const w = FINE * Math.max(1, roundHalfEven(c.w * scale)), h = FINE * Math.max(1, roundHalfEven(c.h * scale));
  return resize(c, w, h, w <= c.w && h <= c.h);
}

function moments(img) {
  let m00 = 0, m10 = 0, m01 = 0, m11 = 0, m02 = 0;
  for (let y = 0; y < img.h; y++) {
    for (let x = 0; x < img.w; x++) {
      const v = img.data[y * img.w + x];
      m00 += v; m10 += x * v; m01 += y * v; m11 += x * y * v; m02 += y * y * v;
    }
  }
  const cx = m10 / m00, cy = m01 / m00;
  return { m00, cy, mu11: m11 - cx * m01, mu02: m02 - cy * m01 };
}

// Shear along the rows so the slant falls in SLANT_RANGE: cv::warpAffine's bilinear, 1/32-pixel steps.
function deskew(img) {
  const m = moments(img), measured = m.mu02 > 1e-6 ? m.mu11 / m.mu02 : 0;
  const skew = measured - Math.min(Math.max(measured, SLANT_RANGE[0]), SLANT_RANGE[1]);
  if (Math.abs(skew) < 1e-3) return img;
  const pad = Math.ceil(Math.abs(skew) * img.h / 2) + 1, out = image(img.w + 2 * pad, img.h);
  const a = f32(skew), c = f32(-pad - skew * m.cy);
  for (let y = 0; y < out.h; y++) {
    const x0 = roundHalfEven((a * y + c) * 1024) + 16;
    for (let x = 0; x < out.w; x++) {
      const X = (x0 + x * 1024) >> 5, sx = X >> 5, fx = f32((X & 31) / 32);
      const v0 = sx >= 0 && sx < img.w ? img.data[y * img.w + sx] : 0, v1 = sx + 1 >= 0 && sx + 1 < img.w ? img.data[y * img.w + sx + 1] : 0;
      out.data[y * out.w + x] = v0 * f32(1 - fx) + v1 * fx;
    }
  }
  return out;
}

function strokeWidth(img) {
  const inside = image(img.w + 2, img.h + 2, new Uint8Array((img.w + 2) * (img.h + 2)));
  let n = 0, sum = 0;
  for (let y = 0; y < img.h; y++) for (let x = 0; x < img.w; x++) inside.data[(y + 1) * inside.w + x + 1] = img.data[y * img.w + x] > 0.5 ? 1 : 0;
  const dist = distance(inside);
  for (let i = 0; i < dist.data.length; i++) if (inside.data[i]) { n++; sum += dist.data[i]; }
  return n ? 4 * (sum / n) - 2 : 0;
}

function ellipse(size) {  // cv::getStructuringElement(MORPH_ELLIPSE, (size, size))
  const r = size >> 1, k = new Uint8Array(size * size);
  for (let i = 0; i < size; i++) {
    const dy = i - r;
    if (Math.abs(dy) > r) continue;
    const dx = roundHalfEven(r * Math.sqrt((r * r - dy * dy) / (r * r)));
    for (let j = Math.max(r - dx, 0); j < Math.min(r + dx + 1, size); j++) k[i * size + j] = 1;
  }
  return k;
}

function fitStroke(img, width) {
  const side = Math.max(img.w, img.h), share = Math.min(Math.max(width / side, STROKE_RANGE[0]), STROKE_RANGE[1]);
  const radius = roundHalfEven((share * side - width) / 2 / (1 - share));  // the box grows by 2 radius too
  if (radius === 0) return img;
  const r = Math.abs(radius), size = 2 * r + 1, kernel = ellipse(size), pad = Math.max(radius, 0);
  const src = image(img.w + 2 * pad, img.h + 2 * pad);
  for (let y = 0; y < img.h; y++) src.data.set(img.data.subarray(y * img.w, (y + 1) * img.w), (y + pad) * src.w + pad);
  const out = image(src.w, src.h);
  for (let y = 0; y < src.h; y++) {
    for (let x = 0; x < src.w; x++) {
      let v = radius > 0 ? -Infinity : Infinity;
      for (let i = 0; i < size; i++) {
        const yy = y + i - r;
        if (yy < 0 || yy >= src.h) continue;
        for (let j = 0; j < size; j++) {
          const xx = x + j - r;
          if (!kernel[i * size + j] || xx < 0 || xx >= src.w) continue;
          v = radius > 0 ? Math.max(v, src.data[yy * src.w + xx]) : Math.min(v, src.data[yy * src.w + xx]);
        }
      }
      out.data[y * src.w + x] = v;
    }
  }
  return out;
}

function centreByMass(box) {  // (h, w) uint8 box -> 28x28 with the centre of mass at (14, 14)
  let total = 0, my = 0, mx = 0;
  for (let y = 0; y < box.h; y++) for (let x = 0; x < box.w; x++) { const v = box.data[y * box.w + x]; total += v; my += v * y; mx += v * x; }
  const cy = total ? my / total : (box.h - 1) / 2, cx = total ? mx / total : (box.w - 1) / 2;
  const top = Math.min(Math.max(Math.floor(FRAME / 2 - cy + 0.5), 0), FRAME - box.h);
  const left = Math.min(Math.max(Math.floor(FRAME / 2 - cx + 0.5), 0), FRAME - box.w);
  const frame = new Uint8Array(FRAME * FRAME);
  for (let y = 0; y < box.h; y++) frame.set(box.data.subarray(y * box.w, (y + 1) * box.w), (top + y) * FRAME + left);
  return frame;
}

export function frameDigit(ink, chosen) {
  const strokes = [];
  for (let i = 0; i < ink.data.length; i++) if (chosen.data[i]) strokes.push(ink.data[i]);
  const full = strokes.length ? f32(median(strokes)) : 1, edge = dilate(chosen, 3);
  const digit = map(ink, (v, i) => (edge.data[i] ? Math.min(Math.max(f32(v / Math.max(full, 1e-6)), 0), 1) : 0));
  let shaped = fitBox(deskew(fitBox(digit, FINE * BOX)), FINE * BOX);
  const width = strokeWidth(shaped);
  shaped = fitBox(fitStroke(shaped, width), FINE * BOX);
  const box = resize(shaped, shaped.w / FINE, shaped.h / FINE, true);
  const levels = image(box.w, box.h, Uint8Array.from(box.data, (v) => Math.floor(Math.min(Math.max(v, 0), 1) * 255 + 0.5)));
  return { shaped, digit: centreByMass(levels), stroke: width / Math.max(shaped.w, shaped.h) };
}

// ---- the pipeline -------------------------------------------------------------------------------
export function stepsOfGray(input) {
  const gray = workSize(input), light = inkIsLight(gray), paper = light ? map(gray, (v) => f32(1 - v)) : gray;
  let ink = removeBackground(paper), { binary, threshold } = binarize(ink);
  const first = pickDigit(binary);
  if (first) {
    const window = Math.max(MIN_WINDOW, PEN_WINDOW * penWidth(first) / Math.max(gray.w, gray.h));
    if (window < BACKGROUND_WINDOW) { ink = removeBackground(paper, window); ({ binary, threshold } = binarize(ink)); }
  }
  const { binary: clean, lines } = removeLines(binary);
  const strongest = ink.data.reduce((a, b) => Math.max(a, b), 0);
  const chosen = strongest >= BLANK_INK ? pickDigit(clean) : null;
  const steps = { gray, ink, binary: clean, chosen, lightInk: light, threshold, lines };
  if (!chosen) return { ...steps, digit: new Uint8Array(FRAME * FRAME), stroke: 0 };
  return { ...steps, ...frameDigit(ink, chosen) };
}

export const preprocessSteps = (imageData) => stepsOfGray(lightness(imageData));

// ImageData of any size -> Uint8Array(784): what the model sees.
export const mnistLike = (imageData) => preprocessSteps(imageData).digit;

// uint8 pixels -> the model's int8 input: round(p / 255 / scale) + zero_point, as convert.Quantization.
export function quantize(pixels, scale, zeroPoint) {
  const q = new Int8Array(pixels.length), s = f32(scale);
  for (let i = 0; i < pixels.length; i++) {
    q[i] = Math.min(Math.max(roundHalfEven(f32(f32(pixels[i] / 255) / s)) + zeroPoint, -128), 127);
  }
  return q;
}
