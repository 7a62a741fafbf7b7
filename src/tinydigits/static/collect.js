// Collect your own digits: the page asks for each digit in turn, keeps each drawing (or uploaded
// photo) as it is, and gives them back as one zip in the layout `tinydigits evaluate --images` and
// `tinydigits train --extra-data` read: <digit>/<n>.png (a photo keeps its own bytes and extension).
// The preprocessing is left to those commands, so a collection stays useful when it improves.
//
//   attachPen(canvas, { before, after, end })   // the drawing pad's pen, shared with the Draw tab
//   const zip = zipFiles([{ name: "3/0.png", bytes }])   // Uint8Array, a stored (uncompressed) zip
"use strict";

export const PEN_WIDTH = 18;  // pixels on the 280-pixel pad: a felt pen, about MNIST's stroke once scaled

// Mouse, pen or finger strokes on a canvas: white on black, round ends. `before` runs when a stroke
// starts, `after` after every segment drawn, `end` when the pen lifts.
export function attachPen(canvas, { before = () => {}, after = () => {}, end = () => {} } = {}) {
  const ctx = canvas.getContext("2d", { willReadFrequently: true });
  let drawing = false, last = null;
  const point = (e) => {
    const r = canvas.getBoundingClientRect();
    return [(e.clientX - r.left) * canvas.width / r.width, (e.clientY - r.top) * canvas.height / r.height];
  };
  const stroke = (to) => {
    ctx.strokeStyle = "#fff";
    ctx.lineWidth = PEN_WIDTH;
    ctx.lineCap = ctx.lineJoin = "round";
    ctx.beginPath();
    ctx.moveTo(...(last || to));
    ctx.lineTo(...to);
    ctx.stroke();
    last = to;
    after();
  };
  canvas.addEventListener("pointerdown", (e) => {
    before(); drawing = true; last = null; canvas.setPointerCapture(e.pointerId); stroke(point(e));
  });
  canvas.addEventListener("pointermove", (e) => { if (drawing) stroke(point(e)); });
  ["pointerup", "pointercancel"].forEach((t) => canvas.addEventListener(t, () => { drawing = false; last = null; end(); }));
  return ctx;
}

// ---- a zip file, stored (no compression: PNG and JPEG are compressed already) --------------------
const CRC_TABLE = Array.from({ length: 256 }, (_, n) => {
  let c = n;
  for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
  return c >>> 0;
});

function crc32(bytes) {
  let c = 0xffffffff;
  for (const b of bytes) c = CRC_TABLE[(c ^ b) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

export function zipFiles(files) {
  const encoder = new TextEncoder(), parts = [], central = [];
  let offset = 0;
  const header = (size) => { const b = new DataView(new ArrayBuffer(size)); return b; };
  for (const { name, bytes } of files) {
    const path = encoder.encode(name), crc = crc32(bytes), local = header(30);
    [[0, 0x04034b50, 4], [4, 20, 2], [8, 0, 2], [14, crc, 4], [18, bytes.length, 4], [22, bytes.length, 4], [26, path.length, 2]]
      .forEach(([at, v, n]) => (n === 4 ? local.setUint32(at, v, true) : local.setUint16(at, v, true)));
    const entry = header(46);
    [[0, 0x02014b50, 4], [4, 20, 2], [6, 20, 2], [16, crc, 4], [20, bytes.length, 4], [24, bytes.length, 4],
     [28, path.length, 2], [42, offset, 4]].forEach(([at, v, n]) => (n === 4 ? entry.setUint32(at, v, true) : entry.setUint16(at, v, true)));
    parts.push(new Uint8Array(local.buffer), path, bytes);
    central.push(new Uint8Array(entry.buffer), path);
    offset += 30 + path.length + bytes.length;
  }
  const size = central.reduce((n, p) => n + p.length, 0), end = header(22);
  [[0, 0x06054b50, 4], [8, files.length, 2], [10, files.length, 2], [12, size, 4], [16, offset, 4]]
    .forEach(([at, v, n]) => (n === 4 ? end.setUint32(at, v, true) : end.setUint16(at, v, true)));
  const all = [...parts, ...central, new Uint8Array(end.buffer)], out = new Uint8Array(all.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of all) { out.set(p, at); at += p.length; }
  return out;
}

// ---- the collect view ---------------------------------------------------------------------------
// Asks for 0, 1, ..., 9, then again: `rounds` of each. ui: { canvas, prompt, count, save, skip, clear,
// upload, uploadFile, download, error }.
export function startCollect(ui, rounds = 3) {
  const ctx = attachPen(ui.canvas, { after: () => { blank = false; ui.save.disabled = false; } });
  const saved = [];  // { name, bytes }
  let index = 0, blank = true, photo = null;
  const total = 10 * rounds, digit = () => index % 10;
  const reset = () => {
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, ui.canvas.width, ui.canvas.height);
    blank = true; photo = null; ui.save.disabled = true;
  };
  const show = () => {
    ui.prompt.textContent = index < total ? `Draw a ${digit()}` : "Done: download your digits";
    ui.count.textContent = `${saved.length} saved (${Math.min(index + 1, total)} of ${total})`;
    ui.download.disabled = saved.length === 0;
  };
  const next = () => { index = Math.min(index + 1, total); reset(); show(); };
  ui.clear.addEventListener("click", reset);
  ui.skip.addEventListener("click", next);
  ui.save.addEventListener("click", async () => {
    if (blank || index >= total) return;
    const n = saved.filter((f) => f.name.startsWith(`${digit()}/`)).length;
    if (photo) {
      saved.push({ name: `${digit()}/${n}${photo.extension}`, bytes: photo.bytes });
    } else {
      const png = await new Promise((resolve) => ui.canvas.toBlob(resolve, "image/png"));
      saved.push({ name: `${digit()}/${n}.png`, bytes: new Uint8Array(await png.arrayBuffer()) });
    }
    next();
  });
  ui.upload.addEventListener("click", () => ui.uploadFile.click());
  ui.uploadFile.addEventListener("change", async (e) => {
    const file = e.target.files[0];
    e.target.value = "";
    if (!file) return;
    try {
      const bitmap = await createImageBitmap(file);
      reset();
      const s = Math.min(ui.canvas.width / bitmap.width, ui.canvas.height / bitmap.height);
      ctx.drawImage(bitmap, (ui.canvas.width - bitmap.width * s) / 2, (ui.canvas.height - bitmap.height * s) / 2,
                    bitmap.width * s, bitmap.height * s);
      const extension = (file.name.match(/\.(png|jpe?g|bmp|gif|webp|tiff?)$/i) || [".png"])[0].toLowerCase();
      photo = { bytes: new Uint8Array(await file.arrayBuffer()), extension };
      blank = false; ui.save.disabled = false;
      ui.error.hidden = true;
    } catch (err) {
      ui.error.textContent = `${file.name}: not a readable image (${err.message})`;
      ui.error.hidden = false;
    }
  });
  ui.download.addEventListener("click", () => {
    const url = URL.createObjectURL(new Blob([zipFiles(saved)], { type: "application/zip" }));
    const a = document.createElement("a");
    a.href = url; a.download = "my_digits.zip";
    document.body.append(a); a.click(); a.remove();
    setTimeout(() => URL.revokeObjectURL(url), 10000);
  });
  reset(); show();
  return { saved };
}
