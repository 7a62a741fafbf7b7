// tinydigits page: draw or upload a digit and watch the probabilities.
//
// The int8 model runs here, in the browser, as WebAssembly (tinydigits.wasm: the C that runs on the
// microcontroller); the drawing is preprocessed once, from the full-size canvas, by preprocess.js.
// Under `tinydigits serve` the float model is also offered, through POST api/predict (the canvas
// goes up as a PNG and is preprocessed once, on the server). model.json says what is there.
"use strict";

import { attachPen, startCollect } from "./collect.js";
import { mnistLike } from "./preprocess.js";
import { loadWasmModel } from "./model.js";

const PAGE_SIZE = 24;           // explore cards per "More"
const PAUSE_MS = 60;            // the .wasm answers once the pen pauses this long: preprocessing takes ~0.1-0.3 s
const MAX_UPLOAD_PIXELS = 16e6;  // as images.MAX_PIXELS
const $ = (id) => document.getElementById(id);
const canvas = $("canvas");
const modelChoice = $("model-choice");
const tabs = [$("tab-draw"), $("tab-explore"), $("tab-collect")];
const state = {
  facts: null, wasm: null,                             // model.json, the loaded .wasm
  blank: true, upload: null,                           // the drawing area
  timer: null, pending: false, dirty: false,           // one prediction per pause of the pen / in flight
  explore: null, shown: 0, loadingMore: false,         // the explore view
};

function showError(message) {
  $("error").textContent = message;
  $("error").hidden = !message;
}

async function fetchJson(url, options) {
  const response = await fetch(url, options);
  const body = await response.json().catch(() => null);
  if (!response.ok) throw new Error((body && body.detail) || `${url}: HTTP ${response.status}`);
  return body;
}

// ---- the drawing area ----------------------------------------------------------------------
function resetCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  state.blank = true;
  state.upload = null;
}

const ctx = attachPen(canvas, {
  before: () => { if (state.upload) resetCanvas(); },  // drawing starts afresh over an uploaded picture
  after: () => { state.blank = false; requestPrediction(); },
  end: requestPrediction,
});

async function uploadImage(file) {
  try {
    const bitmap = await createImageBitmap(file);
    if (bitmap.width * bitmap.height > MAX_UPLOAD_PIXELS) throw new Error(`too large (${bitmap.width}x${bitmap.height})`);
    const full = document.createElement("canvas");
    full.width = bitmap.width; full.height = bitmap.height;
    const g = full.getContext("2d", { willReadFrequently: true });
    g.drawImage(bitmap, 0, 0);
    const seen = mnistLike(g.getImageData(0, 0, full.width, full.height));  // from the picture itself
    resetCanvas();
    const s = Math.min(canvas.width / bitmap.width, canvas.height / bitmap.height);
    ctx.drawImage(bitmap, (canvas.width - bitmap.width * s) / 2, (canvas.height - bitmap.height * s) / 2,
                  bitmap.width * s, bitmap.height * s);
    state.upload = { file, seen };
    state.blank = false;
    showError("");
    requestPrediction();
  } catch (err) {
    showError(`${file.name}: not a readable image (${err.message})`);
  }
}

// ---- predicting ------------------------------------------------------------------------------
function requestPrediction() {
  if (state.blank || !modelChoice.value) return;
  if (modelChoice.value === "wasm") {
    clearTimeout(state.timer);  // a stroke still moving postpones it: drawing stays smooth
    state.timer = setTimeout(() => { state.timer = null; predictHere(); }, PAUSE_MS);
  } else {
    predictOnServer();
  }
}

function predictHere() {
  if (state.blank) return;
  const seen = state.upload ? state.upload.seen : mnistLike(ctx.getImageData(0, 0, canvas.width, canvas.height));
  show({ ...state.wasm.classify(seen), seen, model: "int8 .wasm, in this browser" });
}

function canvasPng() {
  return new Promise((resolve) => canvas.toBlob(resolve, "image/png"));
}

async function predictOnServer() {
  if (state.pending) { state.dirty = true; return; }
  state.pending = true;
  try {
    const body = new FormData();
    body.append("file", state.upload ? state.upload.file : await canvasPng(), "drawing.png");
    body.append("model", modelChoice.value);
    const result = await fetchJson("api/predict", { method: "POST", body });
    if (!state.blank) show({ ...result, model: `${result.model}, server` });
    showError("");
  } catch (err) {
    showError(`prediction failed: ${err.message}`);
  } finally {
    state.pending = false;
    if (state.dirty) { state.dirty = false; requestPrediction(); }
  }
}

function renderBars(container, probabilities) {
  const top = probabilities.indexOf(Math.max(...probabilities));
  container.replaceChildren();
  probabilities.forEach((p, d) => {
    const label = document.createElement("span"); label.textContent = d;
    const bar = document.createElement("div"); bar.className = "bar" + (d === top && p > 0 ? " top" : "");
    bar.dataset.digit = d;
    const fill = document.createElement("div"); fill.style.width = (100 * p).toFixed(1) + "%"; bar.appendChild(fill);
    const value = document.createElement("span"); value.textContent = p.toFixed(3); value.className = "value";
    container.append(label, bar, value);
  });
}

function drawGrid(target, values) {
  const c = target.getContext("2d");
  const image = c.createImageData(28, 28);
  values.forEach((v, i) => { image.data.set([v, v, v, 255], 4 * i); });
  const tmp = document.createElement("canvas"); tmp.width = tmp.height = 28;
  tmp.getContext("2d").putImageData(image, 0, 0);
  c.imageSmoothingEnabled = false;
  c.drawImage(tmp, 0, 0, target.width, target.height);
}

function show({ digit, probabilities, seen, model }) {
  $("digit").textContent = digit;
  $("confidence").textContent = `${(100 * probabilities[digit]).toFixed(1)}% (${model})`;
  renderBars($("bars"), probabilities);
  drawGrid($("seen"), seen);
  performance.mark("tinydigits-prediction");
}

function clearAll() {
  resetCanvas();
  $("digit").textContent = "?";
  $("confidence").textContent = "";
  renderBars($("bars"), Array(10).fill(0));
  drawGrid($("seen"), Array(784).fill(0));
}

// ---- the model's facts and the model switch ----------------------------------------------------
function paragraph(...parts) {  // strings become text, [string] becomes bold text: never HTML
  const p = document.createElement("p");
  parts.forEach((part) => {
    if (Array.isArray(part)) { const b = document.createElement("b"); b.textContent = part[0]; p.append(b); } else p.append(part);
  });
  return p;
}

function renderFacts(facts) {
  const describe = (l) => {  // Conv2D(8, 3x3, relu) · MaxPooling2D(2x2) · Dense(10, softmax)
    const args = [l.units, l.kernel, l.strides && l.strides !== "1x1" && l.kernel ? "stride " + l.strides : null,
                  l.activation && l.activation !== "linear" ? l.activation : null].filter((a) => a != null);
    return l.type + (args.length ? `(${args.join(", ")})` : "") + (l.output_shape ? ` → ${l.output_shape.join("x")}` : "");
  };
  const layers = facts.layers.filter((l) => l.type !== "InputLayer").map(describe).join(" · ");
  const pct = (x) => (x == null ? "n/a" : (100 * x).toFixed(2) + "%");
  const heading = document.createElement("h2"); heading.textContent = "The model";
  $("facts").replaceChildren(heading, paragraph([facts.name]), paragraph(layers),
    paragraph(`${facts.params.toLocaleString("en-US")} parameters`), paragraph(`test accuracy ${pct(facts.test_accuracy)}`),
    paragraph(`int8 size ${facts.int8_bytes ? facts.int8_bytes.toLocaleString("en-US") + " bytes" : "not converted yet"}`),
    ...(facts.wasm && facts.wasm.macs ? [paragraph(`int8 on the chip: ${facts.wasm.macs.toLocaleString("en-US")} multiply-accumulates, ` +
      `${facts.wasm.weight_bytes.toLocaleString("en-US")} bytes of weights and constants, ` +
      `${facts.wasm.arena_bytes.toLocaleString("en-US")} bytes of activations`)] : []),
    paragraph(facts.wasm ? "The int8 model runs in this browser: the microcontroller's C, compiled to WebAssembly."
                         : "The models run on the server."));
}

function fillModelChoice(facts) {
  const options = [];
  if (facts.wasm) options.push(["wasm", "int8 (WebAssembly, here)"]);
  if (facts.api) {
    options.push(["float", "float32 (server)"]);
    if (facts.models.includes("int8") && !facts.wasm) options.push(["int8", "int8 (server)"]);
  }
  modelChoice.replaceChildren(...options.map(([value, text]) => {
    const option = document.createElement("option"); option.value = value; option.textContent = text; return option;
  }));
}

// ---- explore: test images the model gets wrong ---------------------------------------------------
function card(m) {
  const box = document.createElement("div"); box.className = "card";
  const c = document.createElement("canvas"); c.width = c.height = 84; drawGrid(c, m.pixels);
  const name = (k) => String(m.names ? m.names[k] : k);  // class names (Fashion-MNIST), else the digit
  const text = paragraph(`#${m.index}: true `, [name(m.label)], ", said ", [name(m.digit)],
                         ` (${(100 * m.probabilities[m.digit]).toFixed(0)}%)`);
  const bars = document.createElement("div"); bars.className = "bars small";
  renderBars(bars, m.probabilities);
  box.append(c, text, bars);
  return box;
}

async function explorePage() {
  if (!state.facts.explore) {  // no .wasm: the server's float model and its mistakes
    const page = await fetchJson(`api/mistakes?offset=${state.shown}&limit=${PAGE_SIZE}`);
    $("explore-intro").textContent = "Test images the float model (on the server) gets wrong, most confident first.";
    return { items: page.items, total: page.total };
  }
  if (!state.explore) state.explore = await fetchJson("explore.json");
  $("explore-intro").textContent = `Test images the int8 model gets wrong, most confident first, classified here by the .wasm (${state.explore.wrong} of ${state.explore.total.toLocaleString("en-US")} are wrong).`;
  const items = state.explore.items.slice(state.shown, state.shown + PAGE_SIZE).map((m) => {
    const pixels = Uint8Array.from(atob(m.pixels), (ch) => ch.charCodeAt(0));
    return { ...m, pixels, names: state.explore.class_names, ...state.wasm.classify(pixels) };
  });
  return { items, total: state.explore.items.length };
}

async function loadMore() {
  if (state.loadingMore) return;  // a double click asks once
  state.loadingMore = true;
  $("more").disabled = true;
  try {
    const { items, total } = await explorePage();
    $("gallery").append(...items.map(card));
    state.shown += items.length;
    $("mistake-count").textContent = `${state.shown} of ${total} shown.`;
    $("more").hidden = state.shown >= total;
  } catch (err) {
    showError(`could not load the test images: ${err.message}`);
  } finally {
    state.loadingMore = false;
    $("more").disabled = false;
  }
}

// ---- tabs (click, or arrow keys when a tab has focus) ------------------------------------------
function showTab(tab) {
  tabs.forEach((t) => {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  });
  if (tab.id === "tab-explore" && state.shown === 0 && state.facts) loadMore();
}

tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => showTab(tab));
  tab.addEventListener("keydown", (e) => {
    if (e.key !== "ArrowRight" && e.key !== "ArrowLeft") return;
    const next = tabs[(i + (e.key === "ArrowRight" ? 1 : tabs.length - 1)) % tabs.length];
    next.focus();
    showTab(next);
  });
});

$("clear").addEventListener("click", clearAll);
$("upload").addEventListener("click", () => $("upload-file").click());
$("camera").addEventListener("click", () => $("camera-file").click());  // a phone's camera, elsewhere a file
["upload-file", "camera-file"].forEach((id) => $(id).addEventListener("change", (e) => {
  if (e.target.files[0]) uploadImage(e.target.files[0]);
  e.target.value = "";
}));
startCollect({ canvas: $("collect-canvas"), prompt: $("collect-prompt"), count: $("collect-count"),
               save: $("collect-save"), skip: $("collect-skip"), clear: $("collect-clear"),
               upload: $("collect-upload"), uploadFile: $("collect-file"), download: $("collect-download"),
               error: $("error") });
$("more").addEventListener("click", loadMore);
modelChoice.addEventListener("change", requestPrediction);

async function start() {
  clearAll();
  try {
    state.facts = await fetchJson("model.json");
    renderFacts(state.facts);
    if (state.facts.wasm) state.wasm = await loadWasmModel(state.facts.wasm.file, state.facts.wasm);
    fillModelChoice(state.facts);
    performance.mark("tinydigits-ready");
    document.body.dataset.ready = "true";
    requestPrediction();
  } catch (err) {
    showError(`could not load the model: ${err.message}`);
  }
}
start();
