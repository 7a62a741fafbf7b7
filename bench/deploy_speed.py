"""Per-image inference time of every deployed form on this host, in one run.

Times the generated standalone C (compiled -O3, portable x86-64, a tight loop over the 10,000 test images, so no
process or Python overhead), the TFLM interpreter and LiteRT (one image per call from Python),
and Keras. Needs a run folder that `tinydigits convert` has processed.

    TINYDIGITS_DATA=../shared/datasets python bench/deploy_speed.py runs/lesson
"""
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

import tinydigits  # noqa: F401
from tinydigits.targets.host import compile_host
from tinydigits.runtimes import TFLM, LiteRT, latency_us
from tinydigits.data import load_dataset
from tinydigits.export import export_c
from tinydigits.runs import Run


def main(run: Path):
    int8 = (run / "model_int8.tflite").read_bytes()
    x = load_dataset("mnist").x_test
    lite = LiteRT(int8)
    q = lite.prepare(x)
    with tempfile.TemporaryDirectory() as tmp:
        export_c(Run(run), Path(tmp) / "out", "bench/deploy_speed.py")
        exe = compile_host(Path(tmp) / "out" / "c")
        q.tofile(Path(tmp) / "test.bin")
        out = subprocess.run([str(exe), "--time", str(Path(tmp) / "test.bin"), "20"], capture_output=True, text=True, check=True).stdout
    c_us = float(out.split()[0]) / 1000
    micro = TFLM(int8)
    tflm_us = latency_us(lambda im: micro.run(lite.prepare(im)), x, repeat=2000)
    litert_us = latency_us(lite.predict, x, repeat=2000)
    print(f"standalone C (-O3, host):        {c_us:8.2f} us per image   ({out.strip()})")
    print(f"TFLM interpreter (from Python):  {tflm_us:8.2f} us per image")
    print(f"LiteRT int8 (from Python):       {litert_us:8.2f} us per image")
    print(f"plain C is {tflm_us / c_us:.1f}x faster than TFLM and {litert_us / c_us:.1f}x faster than LiteRT per call "
          "(the interpreters' figures include the Python call)")


if __name__ == "__main__":
    main(Path(sys.argv[1]))
