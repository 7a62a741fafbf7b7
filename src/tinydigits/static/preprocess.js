// MNIST-style preprocessing in the browser: the steps and the arithmetic of tinydigits/preprocess.py.
//
// RGBA pixels (a canvas, an uploaded image) -> ink strength (polarity from the border) -> crop to
// the ink -> longer side to 20 px (Pillow's Lanczos/bicubic resampling, ported below with its
// fixed-point arithmetic) -> 28x28 with the centre of mass at the centre. numpy's float32 steps are
// repeated with Math.fround and Python's round-half-to-even, so a drawing gives the same 28x28 bytes
// as `preprocess.mnist_like` (tested in tests/test_web.py).
//
//   const seen = mnistLike(ctx.getImageData(0, 0, w, h));   // Uint8Array(784), ink bright on 0
"use strict";

export const FRAME = 28;                 // output side, pixels
const BOX = 20;                          // the ink's longer side after scaling, pixels
const INK_LEVEL = Math.fround(0.10);     // fraction of full ink strength that counts when cropping
const f32 = Math.fround;

// Python's round(): half to even.
function roundHalfEven(x) {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

// ImageData -> (h*w) float32 gray in [0, 1], as preprocess.ink_map: Pillow's "L" conversion when
// opaque; with transparency, the strokes composited onto paper that contrasts with them.
export function grayOf(image) {
  const { data, width, height } = image, n = width * height, gray = new Float32Array(n);
  let minAlpha = 255;
  for (let i = 0; i < n; i++) minAlpha = Math.min(minAlpha, data[4 * i + 3]);
  if (minAlpha >= 250) {
    for (let i = 0; i < n; i++) {  // Pillow: L = (R*19595 + G*38470 + B*7471 + 0x8000) >> 16
      const d = 4 * i, l = (data[d] * 19595 + data[d + 1] * 38470 + data[d + 2] * 7471 + 0x8000) >>> 16;
      gray[i] = f32(l / 255);
    }
    return gray;
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
  return gray;
}

// Gray, either polarity -> ink strength in [0, 1], ink bright (preprocess.ink_from_gray).
export function inkOf(gray, width, height) {
  const border = [];
  for (let x = 0; x < width; x++) border.push(gray[x], gray[(height - 1) * width + x]);
  for (let y = 0; y < height; y++) border.push(gray[y * width], gray[y * width + width - 1]);
  border.sort((a, b) => a - b);
  const mid = border.length >> 1;
  const background = border.length % 2 ? border[mid] : f32(f32(border[mid - 1] + border[mid]) / 2);
  const ink = new Float32Array(gray.length);
  let peak = -Infinity;
  for (let i = 0; i < gray.length; i++) {
    ink[i] = background < 0.5 ? f32(gray[i] - background) : f32(background - gray[i]);
    peak = Math.max(peak, ink[i]);
  }
  if (peak <= f32(0.05)) return ink.fill(0);
  for (let i = 0; i < ink.length; i++) ink[i] = Math.min(Math.max(f32(ink[i] / peak), 0), 1);
  return ink;
}

// ---- Pillow's resampling (libImaging/Resample.c) for 8-bit images, exactly ----------------------
const PRECISION_BITS = 32 - 8 - 2;
const sinc = (x) => (x === 0 ? 1 : Math.sin(x * Math.PI) / (x * Math.PI));
const LANCZOS = { support: 3, filter: (x) => (-3 <= x && x < 3 ? sinc(x) * sinc(x / 3) : 0) };
const BICUBIC = {
  support: 2,
  filter(x) {
    const a = -0.5;
    if (x < 0) x = -x;
    if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
    if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
    return 0;
  },
};

// For each output pixel: the first input pixel it reads and its fixed-point weights.
function coefficients(inSize, outSize, { support, filter }) {
  const scale = inSize / outSize, filterScale = Math.max(scale, 1), reach = support * filterScale;
  const taps = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const xmin = Math.max(Math.trunc(center - reach + 0.5), 0);
    const xmax = Math.min(Math.trunc(center + reach + 0.5), inSize) - xmin;
    const w = [];
    let sum = 0;
    for (let x = 0; x < xmax; x++) { w.push(filter((x + xmin - center + 0.5) * (1 / filterScale))); sum += w[x]; }
    const k = w.map((v) => (sum !== 0 ? v / sum : v) * (1 << PRECISION_BITS))
               .map((v) => (v < 0 ? Math.trunc(v - 0.5) : Math.trunc(v + 0.5)));
    taps.push({ xmin, k });
  }
  return taps;
}

function clip8(v) {
  if (v >= (1 << PRECISION_BITS) * 256) return 255;
  return v <= 0 ? 0 : Math.floor(v / (1 << PRECISION_BITS));
}

// (h*w) uint8 -> (outH*outW) uint8: a horizontal pass, then a vertical one, each only if needed.
export function resize(pixels, width, height, outWidth, outHeight, kind) {
  let src = pixels, w = width;
  if (outWidth !== width) {
    const taps = coefficients(width, outWidth, kind), dst = new Uint8Array(outWidth * height);
    for (let y = 0; y < height; y++) {
      for (let xx = 0; xx < outWidth; xx++) {
        const { xmin, k } = taps[xx];
        let s = 1 << (PRECISION_BITS - 1);
        for (let x = 0; x < k.length; x++) s += src[y * w + xmin + x] * k[x];
        dst[y * outWidth + xx] = clip8(s);
      }
    }
    src = dst; w = outWidth;
  }
  if (outHeight !== height) {
    const taps = coefficients(height, outHeight, kind), dst = new Uint8Array(w * outHeight);
    for (let yy = 0; yy < outHeight; yy++) {
      const { xmin: ymin, k } = taps[yy];
      for (let x = 0; x < w; x++) {
        let s = 1 << (PRECISION_BITS - 1);
        for (let y = 0; y < k.length; y++) s += src[(ymin + y) * w + x] * k[y];
        dst[yy * w + x] = clip8(s);
      }
    }
    src = dst;
  }
  return src;
}

// ---- crop, scale, centre (preprocess.frame_ink and centre_by_mass) ----------------------------
export function frameInk(ink, width, height) {
  let top = height, bottom = -1, left = width, right = -1;
  for (let y = 0; y < height; y++) {
    for (let x = 0; x < width; x++) {
      if (ink[y * width + x] > INK_LEVEL) {
        top = Math.min(top, y); bottom = Math.max(bottom, y); left = Math.min(left, x); right = Math.max(right, x);
      }
    }
  }
  const frame = new Uint8Array(FRAME * FRAME);
  if (bottom < 0) return frame;  // a blank page: nothing to see
  const h = bottom - top + 1, w = right - left + 1, crop = new Uint8Array(h * w);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) crop[y * w + x] = Math.trunc(f32(ink[(top + y) * width + left + x] * 255));
  }
  const scale = BOX / Math.max(h, w);
  const outW = Math.max(1, roundHalfEven(w * scale)), outH = Math.max(1, roundHalfEven(h * scale));
  const box = resize(crop, w, h, outW, outH, Math.max(h, w) > BOX ? LANCZOS : BICUBIC);
  let total = 0, my = 0, mx = 0;
  for (let y = 0; y < outH; y++) {
    for (let x = 0; x < outW; x++) { const v = box[y * outW + x]; total += v; my += v * y; mx += v * x; }
  }
  const cy = total ? my / total : (outH - 1) / 2, cx = total ? mx / total : (outW - 1) / 2;
  const y0 = Math.min(Math.max(roundHalfEven(FRAME / 2 - cy), 0), FRAME - outH);  // never push ink out
  const x0 = Math.min(Math.max(roundHalfEven(FRAME / 2 - cx), 0), FRAME - outW);
  for (let y = 0; y < outH; y++) frame.set(box.subarray(y * outW, (y + 1) * outW), (y0 + y) * FRAME + x0);
  return frame;
}

// ImageData of any size -> Uint8Array(784): what the model sees.
export function mnistLike(image) {
  return frameInk(inkOf(grayOf(image), image.width, image.height), image.width, image.height);
}

// uint8 pixels -> the model's int8 input: round(p / 255 / scale) + zero_point, as convert.Quantization.
export function quantize(pixels, scale, zeroPoint) {
  const q = new Int8Array(pixels.length), s = f32(scale);
  for (let i = 0; i < pixels.length; i++) {
    q[i] = Math.min(Math.max(roundHalfEven(f32(f32(pixels[i] / 255) / s)) + zeroPoint, -128), 127);
  }
  return q;
}
