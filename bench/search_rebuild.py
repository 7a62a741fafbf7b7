"""Rebuild the int8 model a search chose (DIR/best) with today's C generator and measure it again.

The C generator's kernels change (the fast kernels added about 500 B of code on the Cortex-M4);
the int8 model does not. This builds DIR/best/model_int8.tflite for the board the search measures
on, runs it in QEMU, and prints flash, RAM and the int8 test accuracy.

    python bench/search_rebuild.py runs/search-8k runs/search-16k runs/search-32k
"""
import json
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinydigits  # noqa: F401  (Keras backend)
from tinydigits.codegen import write_standalone
from tinydigits.runtimes import LiteRT
from tinydigits.data import load_dataset
from tinydigits.search import MEASURED_ON, QEMU_IMAGES
from tinydigits.targets import arm, find
ds = load_dataset("mnist")
for folder in sys.argv[1:]:  # each a `tinydigits search --out` folder
    best = Path(folder) / "best"
    int8 = (best / "model_int8.tflite").read_bytes()
    lite = LiteRT(int8)
    with tempfile.TemporaryDirectory() as tmp:
        write_standalone(int8, Path(tmp) / "c", "remeasure", "remeasure")
        fw = arm.build(Path(tmp) / "c", find(MEASURED_ON), Path(tmp) / "firmware")
        q = lite.prepare(ds.x_train[-10000:][:QEMU_IMAGES])
        out, fig = arm.run(fw, q)
    test = float((lite.predict(ds.x_test).argmax(1) == ds.y_test).mean())
    meta = json.loads((best / "metrics.json").read_text())
    print(f"{folder}: {meta['recipe']['input_size']}px-h{'x'.join(map(str, meta['recipe']['hidden']))}: flash {fw.flash_bytes:,} B, "
          f"RAM {fw.static_ram_bytes + fig['stack_bytes']:,} B, int8 test {test:.4f}, QEMU = LiteRT {np.mean(out.argmax(1) == lite.run(q).argmax(1)):.2f}", flush=True)
