"""The generated C compiled as it is to WebAssembly (wasm32, no libc, no heap), and run from Python.

The model source that `export-c` writes (tinydigits_model.c/.h) is compiled unchanged by clang
with `--target=wasm32 -nostdlib -Wl,--no-entry`, together with c_templates/wasm_abi.c, which adds
the three exports of the ABI (and `memory`):

    tinydigits_input()   -> address of the 784-byte int8 input buffer
    tinydigits_output()  -> address of the 10-byte int8 output buffer
    tinydigits_run()     -> runs one inference on the input, fills the output, returns the digit

`run` drives a built module with wasmtime (the `test` extra) to check it against the host build.

    require()
    wasm = build(Path("out/c"), Path("work"))             # work/tinydigits.wasm
    outputs = run(wasm.read_bytes(), q_images)            # (N, 28, 28) int8 -> (N, 10) int8
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TinyDigitsError, first_line
from ..model import NUM_CLASSES
from . import require_packages, run_tool
from .host import STRICT

CLANG = "clang"
WASM_FLAGS = ["--target=wasm32", "-nostdlib", "-Wl,--no-entry", "-Wl,--strip-all"]
OPTIMIZATION = "-O2"  # lesson model: 19.2 KB; -Os 18.0 KB, -O3 20.2 KB, speeds in V8 alike within our noise
EXPORTS = ("memory", "tinydigits_input", "tinydigits_output", "tinydigits_run")


def require() -> None:
    """clang with the WebAssembly backend and lld's wasm-ld, or an error naming the apt packages."""
    require_packages({CLANG: "clang", "wasm-ld": "lld"})


def build(c_dir: Path, work: Path, optimization: str = OPTIMIZATION) -> Path:
    """Compile c_dir/tinydigits_model.c (as export-c wrote it) and the ABI into work/tinydigits.wasm."""
    require()
    c_dir, work = Path(c_dir).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    abi = work / "wasm_abi.c"
    abi.write_text(resources.files("tinydigits").joinpath("c_templates/wasm_abi.c").read_text())
    wasm = work / "tinydigits.wasm"
    cmd = [CLANG, *WASM_FLAGS, *STRICT, optimization, "-I", str(c_dir), "-o", str(wasm),
           str(c_dir / "tinydigits_model.c"), str(abi)]
    run_tool(cmd, work)
    return wasm


def run(wasm: bytes, inputs: np.ndarray) -> np.ndarray:
    """Run (N, ...) int8 inputs, 784 values each, through the module's ABI; (N, 10) int8 outputs."""
    try:
        import wasmtime
    except ImportError:
        raise TinyDigitsError("running WebAssembly from Python needs wasmtime (pip install wasmtime)") from None
    store = wasmtime.Store()
    try:
        instance = wasmtime.Instance(store, wasmtime.Module(store.engine, wasm), [])
    except wasmtime.WasmtimeError as e:
        raise TinyDigitsError(f"not a loadable tinydigits .wasm ({first_line(e, 160)})") from None
    exports = instance.exports(store)
    missing = [name for name in EXPORTS if name not in exports]
    if missing:
        raise TinyDigitsError(f"the .wasm lacks the tinydigits ABI exports: {', '.join(missing)}")
    memory, predict = exports["memory"], exports["tinydigits_run"]
    at_input, at_output = exports["tinydigits_input"](store), exports["tinydigits_output"](store)
    images = np.ascontiguousarray(inputs, np.int8).reshape(len(inputs), -1)
    outputs = np.empty((len(images), NUM_CLASSES), np.int8)
    for i, image in enumerate(images):
        memory.write(store, image.tobytes(), at_input)
        predict(store)
        outputs[i] = np.frombuffer(memory.read(store, at_output, at_output + NUM_CLASSES), np.int8)
    return outputs
