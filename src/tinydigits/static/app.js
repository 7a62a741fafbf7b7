// tinydigits web app: draw on the canvas, POST it to /api/predict, show bars and what the model saw.
"use strict";

const canvas = document.getElementById("canvas");
const ctx = canvas.getContext("2d");
const modelChoice = document.getElementById("model-choice");
let drawing = false, last = null, pending = false, dirty = false, blank = true;

function resetCanvas() {
  ctx.fillStyle = "#000";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  blank = true;
}

function point(event) {
  const r = canvas.getBoundingClientRect();
  return [(event.clientX - r.left) * canvas.width / r.width, (event.clientY - r.top) * canvas.height / r.height];
}

function stroke(to) {
  ctx.strokeStyle = "#fff";
  ctx.lineWidth = 18;
  ctx.lineCap = ctx.lineJoin = "round";
  ctx.beginPath();
  ctx.moveTo(...(last || to));
  ctx.lineTo(...to);
  ctx.stroke();
  last = to;
  blank = false;
  requestPrediction();
}

canvas.addEventListener("pointerdown", (e) => { drawing = true; last = null; canvas.setPointerCapture(e.pointerId); stroke(point(e)); });
canvas.addEventListener("pointermove", (e) => { if (drawing) stroke(point(e)); });
["pointerup", "pointercancel"].forEach((t) => canvas.addEventListener(t, () => { drawing = false; last = null; requestPrediction(); }));

// The drawing, downsampled to 28x28 by the browser: 784 values 0-255, light ink on black.
function pixels() {
  const small = document.createElement("canvas");
  small.width = small.height = 28;
  const s = small.getContext("2d");
  s.drawImage(canvas, 0, 0, 28, 28);
  const data = s.getImageData(0, 0, 28, 28).data;
  return Array.from({ length: 784 }, (_, i) => data[4 * i]);
}

// At most one request in flight; the latest drawing is sent when it returns.
async function requestPrediction() {
  if (pending) { dirty = true; return; }
  if (blank) return;
  pending = true;
  try {
    const response = await fetch("/api/predict", {
      method: "POST", headers: { "Content-Type": "application/json" },
      body: JSON.stringify({ pixels: pixels(), model: modelChoice.value }),
    });
    if (response.ok) show(await response.json());
  } finally {
    pending = false;
    if (dirty) { dirty = false; requestPrediction(); }
  }
}

function renderBars(container, probabilities) {
  const top = probabilities.indexOf(Math.max(...probabilities));
  container.innerHTML = "";
  probabilities.forEach((p, d) => {
    const label = document.createElement("span"); label.textContent = d;
    const bar = document.createElement("div"); bar.className = "bar" + (d === top ? " top" : "");
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

function show(result) {
  document.getElementById("digit").textContent = result.digit;
  document.getElementById("confidence").textContent = (100 * result.probabilities[result.digit]).toFixed(1) + "% (" + result.model + ")";
  renderBars(document.getElementById("bars"), result.probabilities);
  drawGrid(document.getElementById("seen"), result.seen);
}

function clearAll() {
  resetCanvas();
  document.getElementById("digit").textContent = "?";
  document.getElementById("confidence").textContent = "";
  renderBars(document.getElementById("bars"), Array(10).fill(0));
  drawGrid(document.getElementById("seen"), Array(784).fill(0));
}

async function loadFacts() {
  const facts = await (await fetch("/api/model")).json();
  const layers = facts.layers.map((l) => l.type + (l.units ? `(${l.units}${l.activation ? ", " + l.activation : ""})` : "")).join(" &rarr; ");
  const pct = (x) => (x == null ? "n/a" : (100 * x).toFixed(2) + "%");
  document.getElementById("facts").innerHTML =
    `<h2>The model</h2><p><b>${facts.name}</b></p><p>${layers}</p>` +
    `<p>${facts.params.toLocaleString()} parameters</p><p>test accuracy ${pct(facts.test_accuracy)}</p>` +
    `<p>int8 size ${facts.int8_bytes ? facts.int8_bytes.toLocaleString() + " bytes" : "not converted yet"}</p>`;
  if (facts.models.includes("int8")) {
    const option = document.createElement("option"); option.value = "int8"; option.textContent = "int8"; modelChoice.appendChild(option);
  }
}

let offset = 0;
async function loadMistakes() {
  const page = await (await fetch(`/api/mistakes?offset=${offset}&limit=24`)).json();
  document.getElementById("mistake-count").textContent = `${page.total} shown at most.`;
  const gallery = document.getElementById("gallery");
  page.items.forEach((m) => {
    const card = document.createElement("div"); card.className = "card";
    const c = document.createElement("canvas"); c.width = c.height = 84; drawGrid(c, m.pixels);
    const text = document.createElement("div");
    text.innerHTML = `#${m.index}: true <b>${m.label}</b>, said <b>${m.digit}</b> (${(100 * m.probabilities[m.digit]).toFixed(0)}%)`;
    const bars = document.createElement("div"); bars.className = "bars"; bars.style.gridTemplateColumns = "1rem 5rem 3rem";
    renderBars(bars, m.probabilities);
    card.append(c, text, bars);
    gallery.appendChild(card);
  });
  offset += page.items.length;
  document.getElementById("more").hidden = offset >= page.total;
}

function showTab(name) {
  document.getElementById("view-draw").hidden = name !== "draw";
  document.getElementById("view-explore").hidden = name !== "explore";
  document.getElementById("tab-draw").classList.toggle("active", name === "draw");
  document.getElementById("tab-explore").classList.toggle("active", name === "explore");
  if (name === "explore" && offset === 0) loadMistakes();
}

document.getElementById("clear").addEventListener("click", clearAll);
document.getElementById("more").addEventListener("click", loadMistakes);
document.getElementById("tab-draw").addEventListener("click", () => showTab("draw"));
document.getElementById("tab-explore").addEventListener("click", () => showTab("explore"));
modelChoice.addEventListener("change", requestPrediction);
clearAll();
loadFacts();
