"""The static site's figures: .wasm size, page weight, inference time in Chromium, load to first prediction.

Exports RUN with `export-web` into a temporary folder, serves it with Python's plain static server on
loopback and drives Debian's headless Chromium with Playwright:

- weight: every file of the site, as stored and gzip-compressed (what a static host usually sends);
- inference: the page's own model.js on 1,000 test images, each timed over 200 runs (the browser's
  clock is coarse), median per image; beside it the same C compiled natively (-O3), in the same run;
- preprocessing: preprocess.js on a 280x280 canvas drawing, median of 51 blocks of 10 calls;
- load to first prediction: a fresh browser context per load (empty cache), navigation start ->
  the page's "tinydigits-ready" mark (HTML, JS, model.json, .wasm fetched and compiled), plus the
  time from the first pointer event of a stroke to the prediction shown; median of 7 loads.

    TINYDIGITS_DATA=../shared/datasets python bench/web_speed.py runs/lesson
"""
import functools
import gzip
import http.server
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
from pathlib import Path

import tinydigits  # noqa: F401
from tinydigits.targets.host import compile_host
from tinydigits.runtimes import LiteRT
from tinydigits.data import load_dataset
from tinydigits.export import export_c
from tinydigits.runs import Run
from tinydigits.web import export_web

CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IMAGES, REPEAT, LOADS = 1000, 200, 7  # the browser's clock ticks in 100 us steps: time 200 calls at once

INFERENCE = """async ([images, repeat]) => {
    const { loadWasmModel } = await import('./static/model.js');
    const { quantize } = await import('./static/preprocess.js');
    const facts = (await (await fetch('model.json')).json()).wasm;
    const model = await loadWasmModel(facts.file, facts);
    const inputs = images.map((p) => quantize(p, facts.input_scale, facts.input_zero_point));
    for (const q of inputs.slice(0, 100)) model.runInt8(q);  // warm-up: let the engine tier up
    return inputs.map((q) => {
        const t0 = performance.now();
        for (let r = 0; r < repeat; r++) model.runInt8(q);
        return (performance.now() - t0) / repeat * 1000;  // microseconds per call
    });
}"""

PREPROCESS = """async () => {
    const { mnistLike } = await import('./static/preprocess.js');
    const c = document.getElementById('canvas'), image = c.getContext('2d').getImageData(0, 0, c.width, c.height);
    for (let i = 0; i < 20; i++) mnistLike(image);
    const times = [];
    for (let i = 0; i < 51; i++) {
        const t0 = performance.now();
        for (let r = 0; r < 10; r++) mnistLike(image);
        times.push((performance.now() - t0) / 10);
    }
    times.sort((a, b) => a - b);
    return times[25] * 1000;
}"""


class Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def native_c_us(run: Run, x) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        export_c(run, Path(tmp) / "out", "bench/web_speed.py")
        exe = compile_host(Path(tmp) / "out" / "c")
        LiteRT(run.int8_model()).prepare(x).tofile(Path(tmp) / "test.bin")
        out = subprocess.run([str(exe), "--time", str(Path(tmp) / "test.bin"), "20"], capture_output=True, text=True,
                             check=True).stdout
    return float(out.split()[0]) / 1000


def stroke(page):
    box = page.locator("#canvas").bounding_box()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.15 * box["height"])
    page.mouse.down()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.85 * box["height"], steps=8)
    page.mouse.up()


def load_to_first_prediction(browser, url) -> tuple[float, float]:
    context = browser.new_context(viewport={"width": 1200, "height": 800})
    page = context.new_page()
    page.goto(url)
    page.wait_for_selector("body[data-ready]")
    page.evaluate("""() => document.getElementById('canvas').addEventListener('pointerdown',
                     (e) => { window.benchDown = window.benchDown || performance.now(); })""")
    stroke(page)
    page.wait_for_function("performance.getEntriesByName('tinydigits-prediction').length > 0")
    ready, first = page.evaluate("""() => [performance.getEntriesByName('tinydigits-ready')[0].startTime,
        performance.getEntriesByName('tinydigits-prediction')[0].startTime - window.benchDown]""")
    context.close()
    return ready, first


def main(run: Run):
    from playwright.sync_api import sync_playwright

    x = load_dataset("mnist").x_test
    with tempfile.TemporaryDirectory() as tmp:
        site = Path(tmp) / "site"
        files = export_web(run, site, "bench/web_speed.py")  # the site's files, without its manifest
        sizes = {str(p.relative_to(site)): p.stat().st_size for p in files}
        zipped = sum(len(gzip.compress(p.read_bytes(), 9)) for p in files)
        server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(site)))
        threading.Thread(target=server.serve_forever, daemon=True).start()
        url = f"http://127.0.0.1:{server.server_address[1]}/"
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, args=CHROMIUM_ARGS)
            version = browser.version
            loads = [load_to_first_prediction(browser, url) for _ in range(LOADS)]
            page = browser.new_page()
            page.goto(url)
            page.wait_for_selector("body[data-ready]")
            per_call = page.evaluate(INFERENCE, [x[:IMAGES].reshape(IMAGES, -1).tolist(), REPEAT])
            stroke(page)
            preprocess_us = page.evaluate(PREPROCESS)
            browser.close()
        server.shutdown()
    c_us = native_c_us(run, x)
    wasm_us = statistics.median(per_call)
    ready = statistics.median(r for r, _ in loads)
    first = statistics.median(f for _, f in loads)
    print(f"site: {len(sizes)} files, {sum(sizes.values()) / 1024:.1f} KB ({zipped / 1024:.1f} KB gzip-compressed); "
          f"tinydigits.wasm {sizes['tinydigits.wasm']:,} B, explore.json {sizes['explore.json'] / 1024:.1f} KB")
    print(f"Chromium {version}, headless: .wasm inference {wasm_us:.2f} us per image (median of {IMAGES:,} images, "
          f"{REPEAT} calls each; p10 {statistics.quantiles(per_call, n=10)[0]:.2f}, "
          f"p90 {statistics.quantiles(per_call, n=10)[-1]:.2f})")
    print(f"same C, native -O3 on this host: {c_us:.2f} us per image; wasm in Chromium / native = {wasm_us / c_us:.2f}x")
    print(f"preprocess.js on a 280x280 drawing: {preprocess_us:.0f} us (median of 51 blocks of 10 calls)")
    print(f"load to ready (HTML, JS, model.json, .wasm compiled): {ready:.0f} ms; first stroke to prediction shown: "
          f"{first:.1f} ms; load to first prediction {ready + first:.0f} ms (median of {LOADS} fresh loads, loopback)")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Run(sys.argv[1]))
