"""Compile the generated standalone C for this host and run it on int8 inputs in bulk: the
reference build whose outputs every board must reproduce byte for byte.

    exe = compile_host(Path("out/c"), sanitize=True)
    outputs = run_batch(exe, q_images)        # (N, 28, 28) int8 -> (N, 10) int8
"""
from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np

from . import require_packages, run_tool

STRICT = ["-std=c99", "-Wall", "-Wextra", "-Werror", "-pedantic"]
SANITIZERS = ["-fsanitize=address,undefined", "-fno-sanitize-recover=all", "-g"]


def require(cc: str = "cc") -> None:
    require_packages({cc: "gcc"})


def compile_host(c_dir: Path, sanitize: bool = False, optimization: str = "-O3", cc: str = "cc",
                 match_litert: bool = False) -> Path:
    """Build main.c + the model; `match_litert` selects LiteRT's arithmetic instead of TFLM's."""
    require(cc)
    c_dir = Path(c_dir).resolve()
    name = "tinydigits" + ("-litert" if match_litert else "") + ("-asan" if sanitize else "")
    exe = Path(c_dir) / name
    cmd = [cc, *STRICT, optimization, *(SANITIZERS if sanitize else []),
           f"-DTINYDIGITS_MATCH_LITERT={int(match_litert)}", "-o", str(exe),
           str(Path(c_dir) / "main.c"), str(Path(c_dir) / "tinydigits_model.c"), "-lm"]
    run_tool(cmd, c_dir)
    return exe


def run_batch(exe: Path, inputs: np.ndarray) -> np.ndarray:
    """Feed (N, ...) int8 inputs to `exe --batch`, return its (N, 10) int8 outputs."""
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "in.bin", Path(tmp) / "out.bin"
        np.ascontiguousarray(inputs, np.int8).tofile(src)
        run_tool([Path(exe).resolve(), "--batch", src, dst], Path(tmp), timeout=600)
        return np.fromfile(dst, np.int8).reshape(len(inputs), -1)
