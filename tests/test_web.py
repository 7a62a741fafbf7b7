"""The int8 C as WebAssembly and the static site: the .wasm against the host C and TFLM (wasmtime), then
the exported folder from a plain static server in headless Chromium: the same bytes, the same 28x28,
a drawn digit read back."""
import base64
import functools
import http.server
import io
import json
import threading

import numpy as np
import pytest
from PIL import Image

from conftest import ARTIFACTS, import_or_skip, skip_or_fail
from test_browser import CHROMIUM, CHROMIUM_ARGS, draw, launch

from tinydigits.targets.host import compile_host, run_batch
from tinydigits.cli import main
from tinydigits.runtimes import TFLM, LiteRT
from tinydigits.errors import TinyDigitsError
from tinydigits.preprocess import mnist_like
from tinydigits.targets import wasm
from tinydigits.web import page_files, self_contained_page

wasmtime = import_or_skip("wasmtime")


@pytest.fixture(scope="module")
def int8(converted_run):
    return (converted_run / "model_int8.tflite").read_bytes()


@pytest.fixture(scope="module")
def c_dir(converted_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("web-c") / "fw"
    assert main(["export-c", str(converted_run), "--out", str(out)]) == 0
    return out / "c"


@pytest.fixture(scope="module")
def module(c_dir, tmp_path_factory):
    return wasm.build(c_dir, tmp_path_factory.mktemp("wasm")).read_bytes()


def test_wasm_exports_the_abi_and_nothing_of_libc(module):
    engine = wasmtime.Engine()
    compiled = wasmtime.Module(engine, module)
    assert {e.name for e in compiled.exports} == set(wasm.EXPORTS)
    assert list(compiled.imports) == []  # no libc, no host functions: it runs anywhere
    assert 8_000 < len(module) < 40_000


def test_wasm_is_byte_identical_to_the_host_c_and_tflm(module, c_dir, int8, mnist):
    """All 10,000 test images and 3,000 random int8 inputs: .wasm (wasmtime) == host build == TFLM."""
    test_q = LiteRT(int8).prepare(mnist.x_test)
    random_q = np.random.default_rng(1).integers(-128, 128, (3000, 28, 28), dtype=np.int8)
    exe = compile_host(c_dir)
    micro = TFLM(int8)
    for q in (test_q, random_q):
        from_wasm = wasm.run(module, q)
        assert np.array_equal(from_wasm, run_batch(exe, q))
        assert np.array_equal(from_wasm, micro.run(q))


def test_wasm_refuses_what_is_not_the_abi():
    with pytest.raises(TinyDigitsError, match="not a loadable"):
        wasm.run(b"\0asm broken", np.zeros((1, 784), np.int8))
    empty_module = bytes.fromhex("0061736d01000000")
    with pytest.raises(TinyDigitsError, match="lacks the tinydigits ABI exports: memory, tinydigits_input"):
        wasm.run(empty_module, np.zeros((1, 784), np.int8))


def test_wasm_build_names_a_missing_compiler(c_dir, tmp_path, monkeypatch):
    monkeypatch.setattr(wasm, "CLANG", "clang-that-is-not-installed")
    with pytest.raises(TinyDigitsError, match="apt-get install clang"):
        wasm.build(c_dir, tmp_path)


# ---- export-web ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def site(converted_run, tmp_path_factory):
    out = tmp_path_factory.mktemp("web") / "site"
    assert main(["export-web", str(converted_run), "--out", str(out)]) == 0
    return out


def test_export_web_writes_a_static_site(site, module, mnist, int8):
    names = sorted(str(p.relative_to(site)) for p in site.rglob("*") if p.is_file())
    assert names == [".tinydigits.json", "explore.json", "index.html", "model.json", "static/app.js", "static/collect.js",
                     "static/model.js",
                     "static/preprocess.js", "static/style.css", "tinydigits.wasm"]
    assert (site / "tinydigits.wasm").read_bytes() == module  # the same C, the same compiler, the same bytes
    facts = json.loads((site / "model.json").read_text())
    assert facts["params"] == 15910 and facts["api"] is False and facts["explore"] is True
    assert {k: facts["wasm"][k] for k in ("file", "input_size", "output_size", "input_scale", "input_zero_point",
                                          "output_scale", "output_zero_point")} == {
        "file": "tinydigits.wasm", "input_size": 784, "output_size": 10, "input_scale": pytest.approx(1 / 255),
        "input_zero_point": -128, "output_scale": pytest.approx(1 / 256), "output_zero_point": -128}
    assert [op["op"] for op in facts["wasm"]["ops"]] == ["RESHAPE", "FULLY_CONNECTED", "FULLY_CONNECTED", "SOFTMAX"]
    assert facts["wasm"]["macs"] == 15880 and facts["wasm"]["arena_bytes"] >= 784 + 10
    explore = json.loads((site / "explore.json").read_text())
    items = explore["items"]
    assert len(items) == 96 and explore["total"] == 10000
    first = np.frombuffer(base64.b64decode(items[0]["pixels"]), np.uint8).reshape(28, 28)
    assert np.array_equal(first, mnist.x_test[items[0]["index"]]) and items[0]["label"] == mnist.y_test[items[0]["index"]]
    scores = wasm.run(module, LiteRT(int8).prepare(first[None]))
    assert scores.argmax() != items[0]["label"]  # a mistake of the int8 model, as the page will show
    for path in site.rglob("*"):
        if path.suffix in (".html", ".js", ".css"):
            text = path.read_text()
            assert "http://" not in text and "https://" not in text, path  # no CDN, nothing fetched from afar
            assert "innerHTML" not in text, path


def test_export_web_refuses_bad_runs_and_destinations(converted_run, site, tmp_path, capsys):
    assert main(["export-web", str(tmp_path), "--out", str(tmp_path / "s")]) == 2
    assert "not a run folder" in capsys.readouterr().err
    before = (site / "model.json").read_text()
    assert main(["export-web", str(converted_run), "--out", str(site)]) == 2
    assert "already exists" in capsys.readouterr().err and (site / "model.json").read_text() == before
    assert main(["export-web", str(converted_run), "--out", str(converted_run), "--force"]) == 2
    assert "choose another --out" in capsys.readouterr().err
    mine = tmp_path / "my-notes"
    mine.mkdir()
    assert main(["export-web", str(converted_run), "--out", str(mine), "--force"]) == 2
    assert "not a folder tinydigits wrote" in capsys.readouterr().err and mine.is_dir()


# ---- the exported folder in Chromium, from a plain static server -----------------------------

@pytest.fixture(scope="module")
def static_server(site):
    """Python's plain static server over the site's parent: the site lives under /site/, as on GitHub Pages' /REPO/."""
    handler = functools.partial(QuietHandler, directory=str(site.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/{site.name}/"
    server.shutdown()
    thread.join(10)


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


@pytest.fixture()
def page(static_server):
    if CHROMIUM is None:
        skip_or_fail("Debian's chromium is not installed (./setup.sh installs it)")
    with launch(static_server) as page:
        yield page


@pytest.mark.browser
def test_static_site_draws_and_predicts_in_the_browser(page):
    ARTIFACTS.mkdir(exist_ok=True)
    assert page.eval_on_selector_all("#model-choice option", "os => os.map(o => o.value)") == ["wasm"]
    assert page.get_attribute(".prediction", "aria-live") == "polite"
    draw(page, [[(0.52, 0.15), (0.50, 0.85)]])  # a one
    page.wait_for_function("document.getElementById('digit').textContent === '1'", timeout=10000)
    assert ".wasm" in page.inner_text("#confidence")
    page.click("#clear")
    draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])  # a seven
    page.wait_for_function("document.getElementById('digit').textContent === '7'", timeout=10000)
    page.screenshot(path=str(ARTIFACTS / "web-seven.png"))
    assert page.errors == []


@pytest.mark.browser
def test_a_missing_wasm_is_said_on_the_page(static_server):
    from playwright.sync_api import sync_playwright

    if CHROMIUM is None:
        skip_or_fail("Debian's chromium is not installed (./setup.sh installs it)")
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page()
        page.route("**/tinydigits.wasm", lambda route: route.fulfill(status=404, body="not found"))
        page.route(static_server, lambda route: route.fulfill(  # the page as served, which fetches its files
            status=200, content_type="text/html", body=page_files()["index.html"]))
        page.goto(static_server)
        page.wait_for_selector("#error:not([hidden])")
        assert "could not load the model: tinydigits.wasm: HTTP 404" in page.inner_text("#error")
        browser.close()


@pytest.mark.browser
def test_chromium_runs_the_wasm_to_the_same_bytes_as_tflm(page, int8, mnist):
    """A sample of test images, quantized in JS and run by the page's own model.js: TFLM's exact bytes."""
    sample = mnist.x_test[:300]
    got = page.evaluate("""async (images) => {
        const { loadWasmModel } = await import('./static/model.js');
        const { quantize } = await import('./static/preprocess.js');
        const facts = (await (await fetch('model.json')).json()).wasm;
        const model = await loadWasmModel(facts.file, facts);
        return images.map((p) => Array.from(model.runInt8(quantize(p, facts.input_scale, facts.input_zero_point)).scores));
    }""", sample.reshape(len(sample), -1).tolist())
    expected = TFLM(int8).run(LiteRT(int8).prepare(sample))
    assert np.array_equal(np.array(got, np.int8), expected)


DRAWINGS = {  # strokes in canvas fractions: thin, thick, small, off-centre, wide, tall
    "one": [[(0.52, 0.15), (0.50, 0.85)]],
    "seven": [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]],
    "zero": [[(0.5, 0.2), (0.7, 0.35), (0.7, 0.65), (0.5, 0.8), (0.3, 0.65), (0.3, 0.35), (0.5, 0.2)]],
    "small two": [[(0.1, 0.1), (0.2, 0.08), (0.22, 0.15), (0.1, 0.25), (0.24, 0.25)]],
    "wide minus": [[(0.05, 0.5), (0.95, 0.52)]],
    "four": [[(0.6, 0.9), (0.6, 0.1), (0.2, 0.6), (0.8, 0.6)]],
}
SCRIBBLES = np.random.default_rng(0).uniform(0.05, 0.95, (8, 2, 4, 2))  # 8 drawings of 2 strokes of 4 points
DRAWINGS.update({f"scribble {i}": scribble.tolist() for i, scribble in enumerate(SCRIBBLES)})


@pytest.mark.browser
def test_js_preprocessing_gives_the_same_28x28_as_python(page):
    """Each drawing's canvas pixels, preprocessed by preprocess.js in Chromium and by preprocess.py: the
    same 28x28 within JS_TOLERANCE grey levels (measured: at most 1, on a few pixels)."""
    worst = 0
    for name, strokes in DRAWINGS.items():
        page.click("#clear")
        draw(page, strokes)
        rgba, seen = page.evaluate("""async () => {
            const { mnistLike } = await import('./static/preprocess.js');
            const c = document.getElementById('canvas');
            const image = c.getContext('2d').getImageData(0, 0, c.width, c.height);
            let text = '';  // the RGBA bytes as base64: a 313,600-number JSON list is slow to pass
            for (let i = 0; i < image.data.length; i += 8192) text += String.fromCharCode(...image.data.subarray(i, i + 8192));
            return [btoa(text), Array.from(mnistLike(image))];
        }""")
        canvas = np.frombuffer(base64.b64decode(rgba), np.uint8).reshape(280, 280, 4)
        expected = mnist_like(Image.fromarray(canvas)).astype(int)
        assert expected.sum() > 0, name
        worst = max(worst, int(np.abs(np.array(seen).reshape(28, 28) - expected).max()))
    print("largest difference over the drawings:", worst)
    assert worst <= JS_TOLERANCE


JS_TOLERANCE = 2  # grey levels (of 255) between preprocess.js and preprocess.py on any pixel


def png(image: Image.Image) -> bytes:
    buf = io.BytesIO()
    image.save(buf, format="PNG")
    return buf.getvalue()


JS_MNIST_LIKE = """async ([data, kind]) => {
    const { mnistLike } = await import('./static/preprocess.js');
    const bytes = Uint8Array.from(atob(data), (ch) => ch.charCodeAt(0));
    const bitmap = await createImageBitmap(new Blob([bytes], { type: kind }));
    const c = document.createElement('canvas'); c.width = bitmap.width; c.height = bitmap.height;
    const g = c.getContext('2d'); g.drawImage(bitmap, 0, 0);
    return Array.from(mnistLike(g.getImageData(0, 0, c.width, c.height)));
}"""


def js_mnist_like(page, data: bytes, kind: str = "image/png") -> np.ndarray:
    """A picture file decoded by Chromium and preprocessed by the page's preprocess.js."""
    return np.array(page.evaluate(JS_MNIST_LIKE, [base64.b64encode(data).decode(), kind])).reshape(28, 28)


@pytest.mark.browser
def test_js_preprocessing_of_pictures(page, mnist):
    """Pictures decoded by Chromium, preprocessed by preprocess.js, against preprocess.mnist_like."""
    digit = Image.fromarray(255 - mnist.x_test[3]).resize((150, 120))
    ink = Image.new("RGBA", (150, 120), (20, 40, 200, 0))
    ink.putalpha(Image.fromarray(mnist.x_test[3]).resize((150, 120)))  # blue ink on a transparent page
    pictures = {"gray": digit, "colour": digit.convert("RGB"), "transparent": ink}
    worst = {}
    for name, picture in pictures.items():
        expected = mnist_like(Image.open(io.BytesIO(png(picture)))).astype(int)
        worst[name] = int(np.abs(js_mnist_like(page, png(picture)) - expected).max())
    print("largest difference per picture:", worst)
    assert max(worst.values()) <= JS_TOLERANCE  # measured 0, 0, 1 (the browser un-premultiplies alpha)


@pytest.mark.browser
def test_js_preprocessing_of_crops_scans_and_photos(page, mnist):
    """The synthetic handwriting set (tinydigits.synthetic, seed 0): a PNG crop, a PNG scan and a JPEG
    photo of each of 6 test digits, through preprocess.js in Chromium and preprocess.py."""
    from tinydigits.preprocess import open_image
    from tinydigits.synthetic import encoded, render_set

    worst, mean = {}, {}
    for rendering in ("crop", "ink", "photo"):
        diffs = []
        for picture in render_set(mnist.x_test[:6], rendering, seed=0):
            data, suffix = encoded(picture, rendering)
            expected = mnist_like(open_image(data)).astype(int)
            assert expected.sum() > 0, rendering
            diffs.append(np.abs(js_mnist_like(page, data, "image/jpeg" if suffix == ".jpg" else "image/png") - expected))
        worst[rendering], mean[rendering] = int(np.max(diffs)), float(np.mean(diffs))
    print("largest difference per rendering:", worst, "mean:", mean)
    assert max(worst.values()) <= JS_TOLERANCE and max(mean.values()) < 0.05  # measured: max 1, mean < 0.01


@pytest.mark.browser
def test_a_photo_of_paper_is_read_in_the_page(page, mnist, tmp_path):
    """Upload a phone-like photo (lighting, ruled lines, perspective, JPEG): the .wasm reads the digit and
    the page shows the 28x28 it classified, the one preprocess.py makes."""
    from tinydigits.synthetic import encoded, render_set

    data, _ = encoded(render_set(mnist.x_test[:1], "photo", seed=0)[0], "photo")  # a 7
    (tmp_path / "seven.jpg").write_bytes(data)
    page.set_input_files("#camera-file", str(tmp_path / "seven.jpg"))
    page.wait_for_function("document.getElementById('digit').textContent === '7'", timeout=10000)
    shown = np.array(page.evaluate("""() => { const d = document.getElementById('seen').getContext('2d')
        .getImageData(0, 0, 112, 112).data; const out = [];
        for (let y = 0; y < 28; y++) for (let x = 0; x < 28; x++) out.push(d[4 * (4 * y * 112 + 4 * x)]); return out; }"""))
    from tinydigits.preprocess import open_image
    assert np.abs(shown.reshape(28, 28) - mnist_like(open_image(data)).astype(int)).max() <= JS_TOLERANCE
    page.screenshot(path=str(ARTIFACTS / "web-photo.png"))


@pytest.mark.browser
def test_collect_mode_saves_a_zip_that_evaluate_and_train_read(page, converted_run, tmp_path, capsys):
    """The collect tab asks for 0, 1, 2, ...; each drawing saved goes into <digit>/<n>.png of the zip,
    which `evaluate --images` reads as it is."""
    from tinydigits.folders import load_image_folder

    page.click("#tab-collect")
    strokes = {1: [[(0.52, 0.15), (0.50, 0.85)]], 7: [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]]}
    asked = []
    for _ in range(12):  # the first round, then 0 and 1 again
        prompt = page.inner_text("#collect-prompt")
        digit = int(prompt.split()[-1])
        asked.append(digit)
        if digit in strokes:
            canvas = page.locator("#collect-canvas").bounding_box()
            for stroke in strokes[digit]:
                page.mouse.move(canvas["x"] + stroke[0][0] * canvas["width"], canvas["y"] + stroke[0][1] * canvas["height"])
                page.mouse.down()
                for x, y in stroke[1:]:
                    page.mouse.move(canvas["x"] + x * canvas["width"], canvas["y"] + y * canvas["height"], steps=12)
                page.mouse.up()
            page.click("#collect-save")
        else:
            page.click("#collect-skip")
        page.wait_for_function(f"!document.getElementById('collect-prompt').textContent.endsWith(' {digit}')")
    assert asked == [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1]
    assert page.inner_text("#collect-count").startswith("3 saved")
    with page.expect_download() as download:
        page.click("#collect-download")
    archive = tmp_path / "my_digits.zip"
    download.value.save_as(archive)
    images, labels, files = load_image_folder(archive)
    assert sorted(str(f.relative_to(archive)) for f in files) == ["1/0.png", "1/1.png", "7/0.png"]
    assert labels.tolist() == [1, 1, 7] and all(image.max() > 200 for image in images)
    assert main(["evaluate", str(converted_run), "--images", str(archive)]) == 0
    out = capsys.readouterr().out
    assert "(3 images)" in out and str(converted_run / "evaluations" / "my_digits" / "evaluation.json") in out
    page.screenshot(path=str(ARTIFACTS / "web-collect.png"))
    assert page.errors == []


@pytest.mark.browser
def test_upload_errors_tabs_and_the_more_guard(page, mnist, tmp_path):
    picture = tmp_path / "two.png"
    Image.fromarray(255 - mnist.x_test[1]).resize((150, 150)).save(picture)  # a 2, dark ink on paper
    page.set_input_files("#upload-file", str(picture))
    page.wait_for_function("document.getElementById('digit').textContent === '2'", timeout=10000)
    assert page.is_hidden("#error")

    junk = tmp_path / "notes.png"
    junk.write_bytes(b"not an image")
    page.set_input_files("#upload-file", str(junk))
    page.wait_for_selector("#error:not([hidden])")
    assert "notes.png: not a readable image" in page.inner_text("#error")

    assert page.get_attribute("#tab-draw", "aria-selected") == "true"
    page.focus("#tab-draw")
    page.keyboard.press("ArrowRight")  # keyboard reaches the other tab
    assert page.get_attribute("#tab-explore", "aria-selected") == "true" and page.is_hidden("#view-draw")
    page.wait_for_selector("#gallery .card")
    assert page.locator("#gallery .card").count() == 24
    page.dblclick("#more")  # two clicks, one page more
    page.wait_for_function("document.querySelectorAll('#gallery .card').length >= 48")
    page.wait_for_timeout(300)
    assert page.locator("#gallery .card").count() == 48
    page.screenshot(path=str(ARTIFACTS / "web-explore.png"), full_page=False)



def test_serve_shows_the_same_page_and_wasm(converted_run, site, module):
    from fastapi.testclient import TestClient

    from tinydigits.runs import Run
    from tinydigits.serve import create_app

    client = TestClient(create_app(Run(converted_run)))
    page = page_files()
    assert client.get("/").content == page["index.html"]  # the page as it is; the site's is the same, inlined:
    model_files = {name: (site / name).read_bytes() for name in ("tinydigits.wasm", "model.json", "explore.json")}
    assert (site / "index.html").read_bytes() == self_contained_page(page, model_files)
    assert client.get("/static/preprocess.js").text == (site / "static" / "preprocess.js").read_text()
    r = client.get("/tinydigits.wasm")
    assert r.headers["content-type"] == "application/wasm" and r.content == module
    facts = client.get("/model.json").json()
    assert facts["api"] is True and facts["wasm"]["input_zero_point"] == -128 and facts["explore"] is True
    assert client.get("/explore.json").json()["items"][0]["pixels"]
    assert client.get("/nothing-here.json").status_code == 404


# ---- index.html from disk (file://), as a double click opens it --------------------------------

@pytest.mark.browser
def test_the_exported_index_html_works_from_file_urls(site, tmp_path):
    """Chromium refuses module scripts and fetch from file://: the page carries everything inline. Copied
    alone into an empty folder, it still draws, classifies with the .wasm and explores the test set."""
    if CHROMIUM is None:
        skip_or_fail("Debian's chromium is not installed (./setup.sh installs it)")
    alone = tmp_path / "index.html"
    alone.write_bytes((site / "index.html").read_bytes())
    with launch(alone.as_uri()) as page:
        assert page.eval_on_selector_all("#model-choice option", "os => os.map(o => o.value)") == ["wasm"]
        draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])  # a seven
        page.wait_for_function("document.getElementById('digit').textContent === '7'", timeout=10000)
        widths = page.eval_on_selector_all(".result .bar > div", "els => els.map(e => parseFloat(e.style.width))")
        assert max(widths) > 50 and abs(sum(widths) - 100) < 3 and ".wasm" in page.inner_text("#confidence")
        assert "15,910 parameters" in page.inner_text("#facts")
        page.click("#tab-explore")
        page.wait_for_selector("#gallery .card")
        assert page.locator("#gallery .card").count() == 24
        assert page.errors == [] and page.is_hidden("#error")


def test_inlining_refuses_what_it_cannot_bundle():
    page = page_files()
    broken = {**page, "static/model.js": b'import * as pre from "./preprocess.js";\n' + page["static/model.js"]}
    with pytest.raises(TinyDigitsError, match="static/model.js: cannot inline 'import \\* as pre"):
        self_contained_page(broken, {})
    cycle = {**page, "static/preprocess.js": b'import { loadWasmModel } from "./model.js";\n' + page["static/preprocess.js"]}
    with pytest.raises(TinyDigitsError, match="imported in a cycle"):
        self_contained_page(cycle, {})


def test_the_page_lists_a_cnns_layers_with_their_shapes():
    """model.json's layers say what a CNN is: filters, kernel, stride and each output's shape."""
    from tinydigits.model import Recipe, build_model
    from tinydigits.web import layer_facts

    layers = [layer_facts(layer) for layer in build_model(Recipe(conv=(8, 16), stride=2, hidden=())).layers]
    conv = [l for l in layers if l["type"] == "Conv2D"]
    assert [(l["units"], l["kernel"], l["strides"], l["activation"], l["output_shape"]) for l in conv] == [
        (8, "3x3", "2x2", "relu", [14, 14, 8]), (16, "3x3", "2x2", "relu", [7, 7, 16])]
    assert layers[-1] == {"type": "Dense", "units": 10, "kernel": None, "strides": None, "activation": "softmax",
                          "output_shape": [10]}
