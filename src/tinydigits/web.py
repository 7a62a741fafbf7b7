"""The int8 model as a static web site: the page, the model's C as WebAssembly, its facts, test images.

`export_web` writes a folder that any static host serves (GitHub Pages, `python -m http.server`):
no server code, no CDN. The page draws, preprocesses (MNIST's way, in JS: static/preprocess.js)
and classifies in the browser with tinydigits.wasm, the same C that `export-c` writes, compiled by
targets/wasm.py. `serve` shows the same page and serves the same three model files.

    DIR/index.html, DIR/static/{app.js,model.js,preprocess.js,style.css}   the page (tinydigits/static/)
    DIR/tinydigits.wasm   the ABI in targets/wasm.py: memory, tinydigits_input/_output/_run
    DIR/model.json        the model's facts, with the int8 input/output scale and zero point
    DIR/explore.json      test images the int8 model gets wrong, most confident first (pixels in base64)

    files = export_web(Run("runs/lesson"), Path("site"), command="tinydigits export-web runs/lesson --out site")
"""
from __future__ import annotations

import base64
import tempfile
from importlib import resources
from pathlib import Path

from .artifacts import check_out, staged_folder, write_bytes, write_json, written_files
from .atomic import claim
from .codegen import plan, write_standalone
from .convert import TFLM, LiteRT
from .errors import TinyDigitsError
from .escape import json_text
from .evaluate import confident_mistakes
from .runs import Run
from .targets import wasm

EXPLORE_IMAGES = 96  # four pages of 24 in the explore view; about 100 KB of the page weight
PAGE_FILES = ("index.html", "static/app.js", "static/model.js", "static/preprocess.js", "static/style.css")
WASM_FILE, FACTS_FILE, EXPLORE_FILE = "tinydigits.wasm", "model.json", "explore.json"


def model_facts(run: Run, int8: bytes | None) -> dict:
    """What the page and GET /api/model show about the model: layers, sizes, accuracy, forms."""
    model = run.model()
    layers = [{"type": type(layer).__name__, "units": getattr(layer, "units", None),
               "activation": getattr(getattr(layer, "activation", None), "__name__", None)} for layer in model.layers]
    return {"name": run.recipe.name, "layers": layers, "params": int(model.count_params()),
            "test_accuracy": run.metrics.get("test_accuracy"), "int8_bytes": len(int8) if int8 else None,
            "recipe": run.recipe.to_dict(), "models": ["float"] + (["int8"] if int8 else [])}


def wasm_facts(int8: bytes) -> dict:
    """What the page needs to feed tinydigits.wasm: buffer sizes, input and output scale and zero point."""
    _, io = plan(int8)
    (in_s, in_z), (out_s, out_z) = io["input"], io["output"]
    return {"file": WASM_FILE, "input_size": io["input_size"], "output_size": io["output_size"],
            "input_scale": float(in_s[0]), "input_zero_point": int(in_z[0]),
            "output_scale": float(out_s[0]), "output_zero_point": int(out_z[0])}


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
    """The test images the int8 model gets wrong (TFLM's answers, the same bytes as the .wasm's)."""
    lite = LiteRT(int8)
    outputs = TFLM(int8).run(lite.prepare(dataset.x_test))     # (N, 10) int8
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
    with staged_folder(out, "web", command, force) as tmp:
        for name, data in page_files().items():
            write_bytes(tmp / name, data)
        write_bytes(tmp / WASM_FILE, binary)
        write_json(tmp / FACTS_FILE, page_facts(run, int8, has_wasm=True, api=False, explore=True))
        write_json(tmp / EXPLORE_FILE, explore)
    return written_files(out)
