"""A person at the page under `tinydigits serve`: headless Chromium (Debian's) driven by Playwright draws a
digit with the mouse; the int8 model answers from the .wasm in the page, the float model from the server."""
import contextlib
import shutil
import socket
import threading
import time

import pytest

from conftest import ARTIFACTS, needs

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
pytestmark = [pytest.mark.browser,
              needs(CHROMIUM is None, "Debian's chromium is not installed (./setup.sh installs it)")]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@contextlib.contextmanager
def launch(url):
    """A page of headless Chromium at `url`, once the page says it is ready; page.errors collects console errors."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1200, "height": 800})
        page.errors = []
        page.on("console", lambda m: m.type == "error" and page.errors.append(m.text))
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(url)
        page.wait_for_selector("body[data-ready]")
        try:
            yield page
        finally:
            browser.close()


@contextlib.contextmanager
def running(app):
    """The app under uvicorn on a free loopback port, in a thread; yields its URL."""
    import uvicorn

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started and time.monotonic() < deadline:
        time.sleep(0.05)
    assert srv.started, "uvicorn did not start within 30 s"
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture(scope="module")
def server(converted_run):
    from tinydigits.runs import Run
    from tinydigits.serve import create_app

    with running(create_app(Run(converted_run))) as url:
        yield url


@pytest.fixture()
def page(server):
    with launch(server) as page:
        yield page


def draw(page, strokes):
    box = page.locator("#canvas").bounding_box()
    for stroke in strokes:
        (x0, y0), rest = stroke[0], stroke[1:]
        page.mouse.move(box["x"] + x0 * box["width"], box["y"] + y0 * box["height"])
        page.mouse.down()
        for x, y in rest:
            page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=12)
        page.mouse.up()


def bar_widths(page):
    return page.eval_on_selector_all(".result .bar > div", "els => els.map(e => parseFloat(e.style.width))")


def test_draw_predict_clear_and_explore(page):
    ARTIFACTS.mkdir(exist_ok=True)
    assert page.inner_text("#digit") == "?" and max(bar_widths(page)) == 0
    assert "15,910 parameters" in page.inner_text("#facts")
    assert page.eval_on_selector_all("#model-choice option", "os => os.map(o => o.value)") == ["wasm", "float"]

    draw(page, [[(0.52, 0.15), (0.50, 0.85)]])  # a one: a single tall stroke, classified by the .wasm
    page.wait_for_function("document.getElementById('digit').textContent === '1'", timeout=10000)
    assert ".wasm" in page.inner_text("#confidence")
    widths = bar_widths(page)
    assert max(widths) > 50 and widths.index(max(widths)) == 1 and abs(sum(widths) - 100) < 3
    seen = page.evaluate("""() => { const d = document.getElementById('seen').getContext('2d')
                            .getImageData(0, 0, 112, 112).data; let s = 0; for (let i = 0; i < d.length; i += 4) s += d[i]; return s; }""")
    assert seen > 0  # the 28x28 the model saw is drawn beside the canvas
    page.screenshot(path=str(ARTIFACTS / "serve-one.png"))

    page.select_option("#model-choice", "float")  # the float model, on the server, from the canvas PNG
    page.wait_for_function("document.getElementById('confidence').textContent.includes('server')", timeout=10000)
    assert page.inner_text("#digit") == "1" and page.is_hidden("#error")

    page.click("#clear")
    assert page.inner_text("#digit") == "?" and max(bar_widths(page)) == 0

    draw(page, [[(0.25, 0.2), (0.75, 0.2), (0.45, 0.85)]])  # a seven: top bar, then the diagonal
    page.wait_for_function("document.getElementById('digit').textContent === '7'", timeout=10000)
    page.screenshot(path=str(ARTIFACTS / "serve-seven.png"))

    page.click("#tab-explore")
    page.wait_for_selector("#gallery .card")
    assert page.locator("#gallery .card").count() == 24
    page.screenshot(path=str(ARTIFACTS / "serve-explore.png"))
    assert page.errors == []


def test_server_errors_are_shown_on_the_page(page):
    page.route("**/api/predict", lambda route: route.fulfill(status=400, content_type="application/json",
                                                             body='{"detail": "pixels must be finite"}'))
    page.select_option("#model-choice", "float")
    draw(page, [[(0.52, 0.15), (0.50, 0.85)]])
    page.wait_for_selector("#error:not([hidden])")
    assert "prediction failed: pixels must be finite" in page.inner_text("#error")


def test_without_clang_the_page_runs_both_models_on_the_server(converted_run, monkeypatch):
    from tinydigits.runs import Run
    from tinydigits.serve import create_app
    from tinydigits.targets import wasm

    monkeypatch.setattr(wasm, "CLANG", "clang-that-is-not-installed")  # no .wasm can be built
    with running(create_app(Run(converted_run))) as url, launch(url) as page:
        assert page.eval_on_selector_all("#model-choice option", "os => os.map(o => o.value)") == ["float", "int8"]
        page.select_option("#model-choice", "int8")
        draw(page, [[(0.52, 0.15), (0.50, 0.85)]])
        # the answer to the whole stroke: answers to the stroke's first segments may arrive first
        page.wait_for_function("document.getElementById('confidence').textContent.includes('int8, server') && "
                               "document.getElementById('digit').textContent === '1'", timeout=10000)
        page.click("#tab-explore")
        page.wait_for_selector("#gallery .card")
        assert page.locator("#gallery .card").count() == 24 and "float model" in page.inner_text("#explore-intro")
        assert page.errors == []


def test_once_loaded_the_int8_model_needs_no_server(page):
    page.route("**/*", lambda route: route.abort())  # the server is gone
    draw(page, [[(0.52, 0.15), (0.50, 0.85)]])
    page.wait_for_function("document.getElementById('digit').textContent === '1'", timeout=10000)
    assert ".wasm" in page.inner_text("#confidence") and page.is_hidden("#error")


def test_collect_mode_in_the_served_page(page):
    """The served page has the collect tab too: it asks for a 0 first, keeps a drawing, moves on to 1."""
    page.click("#tab-collect")
    assert page.inner_text("#collect-prompt") == "Draw a 0" and page.is_disabled("#collect-save")
    box = page.locator("#collect-canvas").bounding_box()
    page.mouse.move(box["x"] + 0.5 * box["width"], box["y"] + 0.2 * box["height"])
    page.mouse.down()
    for x, y in [(0.7, 0.5), (0.5, 0.8), (0.3, 0.5), (0.5, 0.2)]:
        page.mouse.move(box["x"] + x * box["width"], box["y"] + y * box["height"], steps=8)
    page.mouse.up()
    page.click("#collect-save")
    page.wait_for_function("document.getElementById('collect-prompt').textContent === 'Draw a 1'")
    assert page.inner_text("#collect-count").startswith("1 saved") and page.is_enabled("#collect-download")
    assert page.errors == []
