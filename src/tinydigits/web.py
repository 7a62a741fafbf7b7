"""The int8 model as a static web site: the page, the model's C as WebAssembly, its facts, test images.

`export_web` writes a folder that any static host serves (GitHub Pages, `python -m http.server`):
no server code, no CDN. The page draws, preprocesses (MNIST's way, in JS: static/preprocess.js)
and classifies in the browser with tinydigits.wasm, the same C that `export-c` writes, compiled by
targets/wasm.py. `serve` shows the same page and serves the same three model files.

The exported index.html is also one self-contained file that works opened from disk (file://,
a double click), where Chromium refuses module scripts and fetch: `self_contained_page` inlines,
at export time, the stylesheet and the modules of tinydigits/static/ (as they are, each in its
own scope, imports and exports resolved) and the site's three model files (base64), and the
page's own fetches of those files are answered from the inline copies. `serve` shows the page
from static/ as it is.

    DIR/index.html        the page, self-contained (works from file:// and from any server)
    DIR/static/{app.js,collect.js,model.js,preprocess.js,style.css}   its modules, for other pages (tinydigits/static/)
    DIR/tinydigits.wasm   the ABI in targets/wasm.py: memory, tinydigits_input/_output/_run
    DIR/model.json        the model's facts, with the int8 input/output scale and zero point
    DIR/explore.json      test images the int8 model gets wrong, most confident first (pixels in base64)

    files = export_web(Run("runs/lesson"), Path("site"), command="tinydigits export-web runs/lesson --out site")
"""
from __future__ import annotations

import base64
import json
import re
import tempfile
from importlib import resources
from pathlib import Path

from .artifacts import check_out, staged_folder, write_bytes, write_json, written_files
from .atomic import claim
from .codegen import generate, plan, reference_outputs, write_standalone
from .runtimes import TFLM, LiteRT, tflm_refuses
from .errors import TinyDigitsError
from .escape import json_text
from .evaluate import confident_mistakes
from .runs import Run
from .targets import wasm

EXPLORE_IMAGES = 96  # four pages of 24 in the explore view; about 100 KB of the page weight
PAGE_FILES = ("index.html", "static/app.js", "static/collect.js", "static/model.js", "static/preprocess.js",
              "static/style.css")
WASM_FILE, FACTS_FILE, EXPLORE_FILE = "tinydigits.wasm", "model.json", "explore.json"


def layer_facts(layer) -> dict:
    """One Keras layer as the page lists it: its type, width (units or filters), kernel and stride, activation, output."""
    def pair(value):
        return "x".join(map(str, value)) if isinstance(value, (tuple, list)) else value

    out = getattr(layer, "output", None)
    return {"type": type(layer).__name__, "units": getattr(layer, "units", None) or getattr(layer, "filters", None),
            "kernel": pair(getattr(layer, "kernel_size", None) or getattr(layer, "pool_size", None)),
            "strides": pair(getattr(layer, "strides", None)),
            "activation": getattr(getattr(layer, "activation", None), "__name__", None),
            "output_shape": list(out.shape[1:]) if out is not None and hasattr(out, "shape") else None}


def model_facts(run: Run, int8: bytes | None) -> dict:
    """What the page and GET /api/model show about the model: layers, sizes, accuracy, forms."""
    model = run.model()
    layers = [layer_facts(layer) for layer in model.layers]
    return {"name": run.name, "layers": layers, "params": int(model.count_params()),
            "test_accuracy": run.metrics.get("test_accuracy"), "int8_bytes": len(int8) if int8 else None,
            "recipe": run.recipe.to_dict() if run.recipe else None, "imported": run.imported, "models": ["float"] + (["int8"] if int8 else [])}


def wasm_facts(int8: bytes) -> dict:
    """What the page needs to feed tinydigits.wasm (buffer sizes, input and output scale and zero point), and
    the int8 model's ops as the C generator's table counts them (shapes, MACs, weight bytes, the arena)."""
    facts = generate(int8, "model_int8.tflite", "tinydigits export-web").facts
    io = {"input": facts["input"], "output": facts["output"]}
    return {"file": WASM_FILE, "input_size": io["input"]["size"], "output_size": io["output"]["size"],
            "input_scale": io["input"]["scale"], "input_zero_point": io["input"]["zero_point"],
            "output_scale": io["output"]["scale"], "output_zero_point": io["output"]["zero_point"],
            "ops": facts["ops"], "macs": facts["macs"], "weight_bytes": facts["weight_bytes"],
            "arena_bytes": facts["arena_bytes"]}


def page_facts(run: Run, int8: bytes | None, has_wasm: bool, api: bool, explore: bool) -> dict:
    """model.json: the model's facts, how to run the .wasm (or None), whether the HTTP API and
    explore.json are there."""
    return {**model_facts(run, int8), "wasm": wasm_facts(int8) if int8 and has_wasm else None, "api": api,
            "explore": explore}


def build_wasm(int8: bytes, source: str, command: str) -> bytes:
    """The standalone C of the int8 model (as export-c writes it) compiled to WebAssembly."""
    with tempfile.TemporaryDirectory(prefix="tinydigits-wasm-") as tmp:
        c_dir = Path(tmp) / "c"
        write_standalone(int8, c_dir, source, command)
        return wasm.build(c_dir, Path(tmp) / "build").read_bytes()


def explore_items(int8: bytes, dataset, limit: int = EXPLORE_IMAGES) -> dict:
    """The test images the int8 model gets wrong (TFLM's answers, the same bytes as the .wasm's; for a model
    TFLM cannot run, int4 FULLY_CONNECTED, the generated C's numpy reference, which the .wasm equals too)."""
    lite = LiteRT(int8)
    q = lite.prepare(dataset.x_test)
    outputs = (TFLM(int8).run(q) if not tflm_refuses(int8)
               else reference_outputs(plan(int8), q))    # (N, 10) int8
    chosen = confident_mistakes(lite.output_q.dequantize(outputs), dataset.y_test, k=limit)
    items = [{"index": int(i), "label": int(dataset.y_test[i]),
              "pixels": base64.b64encode(dataset.x_test[i].tobytes()).decode("ascii")} for i in chosen]  # 784 uint8
    wrong = int((outputs.argmax(axis=1) != dataset.y_test).sum())
    return {"model": "int8", "wrong": wrong, "total": len(dataset.y_test), "class_names": list(dataset.class_names),
            "items": items}


def page_files() -> dict[str, bytes]:
    """The page itself: the same files `serve` shows, by their path in the site."""
    static = resources.files("tinydigits").joinpath("static")
    return {name: static.joinpath(Path(name).name).read_bytes() for name in PAGE_FILES}


# ---- index.html as one file -------------------------------------------------------------------
MEDIA_TYPES = {WASM_FILE: "application/wasm", FACTS_FILE: "application/json", EXPLORE_FILE: "application/json"}
IMPORT = re.compile(r'^import\s*\{([^}]*)\}\s*from\s*"\./([\w.-]+\.js)";[ \t]*$', re.M)
EXPORT = re.compile(r"^export\s+((?:async\s+)?function\*?|const|let|class)\s+([A-Za-z_$][\w$]*)", re.M)
INLINE_FETCH = """(() => {  // the page's fetches of its own files, answered from the copies inlined below
  const files = JSON.parse(document.getElementById("tinydigits-files").textContent);
  const fetchFromNetwork = window.fetch.bind(window);
  window.fetch = (url, options) => {
    const file = typeof url === "string" ? files[url.replace(/^\\.\\//, "")] : undefined;
    if (!file) return fetchFromNetwork(url, options);
    const bytes = Uint8Array.from(atob(file.base64), (c) => c.charCodeAt(0));
    return Promise.resolve(new Response(bytes, { status: 200, headers: { "Content-Type": file.type } }));
  };
})();"""


def _module_scope(name: str, source: str) -> str:
    """One ES module as a function scope: `import {a, b as c} from "./x.js"` becomes a destructuring of
    x.js's scope, `export function f` / `export const X` plain declarations returned by the scope.
    Any other form of import or export is refused here, at export time, rather than broken in the page."""
    exported = [m.group(2) for m in EXPORT.finditer(source)]
    body = EXPORT.sub(lambda m: f"{m.group(1)} {m.group(2)}", source)
    body = IMPORT.sub(lambda m: f"const {{ {m.group(1).strip().replace(' as ', ': ')} }} = tinydigitsModules[{m.group(2)!r}];",
                      body)
    leftover = re.search(r"^\s*(import|export)\b.*$|\bimport\s*\(", body, re.M)
    if leftover:
        raise TinyDigitsError(f"static/{name}: cannot inline {leftover.group(0).strip()!r} (only named imports of "
                              "./*.js and exported declarations)")
    return f"tinydigitsModules[{name!r}] = (() => {{\n{body}\nreturn {{ {', '.join(exported)} }};\n}})();"


def _module_order(sources: dict[str, str], entry: str) -> list[str]:
    """The modules `entry` imports, each after the ones it imports (depth first)."""
    order, visiting = [], set()

    def visit(name):
        if name in order:
            return
        if name in visiting or name not in sources:
            raise TinyDigitsError(f"static/{name}: " + ("imported in a cycle" if name in visiting else "not found"))
        visiting.add(name)
        for m in IMPORT.finditer(sources[name]):
            visit(m.group(2))
        order.append(name)

    visit(entry)
    return order


def _inline_text(text: str, tag: str) -> str:
    """Text safe inside <script> or <style>: its closing tag cannot end the element early."""
    return re.sub(f"</({tag})", r"<\\/\1", text, flags=re.I).replace("<!--", "<\\!--")


def self_contained_page(page: dict[str, bytes], files: dict[str, bytes]) -> bytes:
    """index.html with its stylesheet and modules (`page`: page_files()) and the model `files` inline."""
    html = page["index.html"].decode()
    sources = {Path(n).name: data.decode() for n, data in page.items() if n.endswith(".js")}
    entry = re.search(r'<script type="module" src="static/([\w.-]+\.js)"></script>', html)
    sheet = re.search(r'<link rel="stylesheet" href="static/([\w.-]+\.css)">', html)
    if entry is None or sheet is None:
        raise TinyDigitsError("static/index.html: no <script type=\"module\" src=\"static/...\"> or stylesheet to inline")
    bundle = "\n".join(["const tinydigitsModules = {};"] + [_module_scope(n, sources[n]) for n in _module_order(sources, entry.group(1))])
    inline = {name: {"type": MEDIA_TYPES[name], "base64": base64.b64encode(data).decode("ascii")}
              for name, data in files.items()}
    html = html.replace(sheet.group(0), f"<style>\n{_inline_text(page['static/' + sheet.group(1)].decode(), 'style')}</style>")
    html = html.replace(entry.group(0), (
        f'<script type="application/json" id="tinydigits-files">{json.dumps(inline)}</script>\n'
        f"  <script>\n{INLINE_FETCH}\n</script>\n"
        f'  <script type="module">\n{_inline_text(bundle, "script")}\n</script>'))
    return html.encode()


def served_files(run: Run, int8: bytes | None, dataset) -> dict[str, bytes]:
    """The model files `serve` adds to the page: the .wasm and explore.json when clang can build them."""
    binary = None
    if int8:
        try:
            binary = build_wasm(int8, str(run.paths.int8_model), "tinydigits serve")
        except TinyDigitsError:
            binary = None  # no clang/lld: the page runs the models through the HTTP API instead
    files = {}
    if binary is not None:
        files[WASM_FILE] = binary
        if dataset is not None:
            files[EXPLORE_FILE] = json_text(explore_items(int8, dataset), indent=None).encode()
    facts = page_facts(run, int8, has_wasm=binary is not None, api=True, explore=EXPLORE_FILE in files)
    return {**files, FACTS_FILE: json_text(facts, indent=None).encode()}


def export_web(run: Run, out: Path, command: str, force: bool = False) -> list[Path]:
    """Write the static site for RUN (needs RUN/model_int8.tflite) into OUT, atomically as a whole."""
    with claim(out, wait=False, command=command):  # a second export to OUT stops with one line
        return _export_web(run, check_out(out, "web", force, run.folder), command, force)  # checked before the slow part


def _export_web(run: Run, out: Path, command: str, force: bool) -> list[Path]:
    int8 = run.int8_model()
    binary = build_wasm(int8, str(run.paths.int8_model), command)
    explore = explore_items(int8, run.dataset())
    page = page_files()
    model_files = {WASM_FILE: binary,
                   FACTS_FILE: (json.dumps(page_facts(run, int8, has_wasm=True, api=False, explore=True), indent=2)
                                + "\n").encode(),
                   EXPLORE_FILE: (json.dumps(explore, indent=2) + "\n").encode()}
    with staged_folder(out, "web", command, force) as tmp:
        for name, data in {**page, **model_files}.items():
            write_bytes(tmp / name, data)
        write_bytes(tmp / "index.html", self_contained_page(page, model_files))
    return written_files(out)
