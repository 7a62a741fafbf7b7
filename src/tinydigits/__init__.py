"""tinydigits: from the first TinyML lesson to a digit classifier on a microcontroller.

Stages, one module each: data -> model -> train -> evaluate/predict -> convert -> codegen -> targets
(the boards: host, arm, avr, arduino) -> boards/mcu, and on top of them compare, search and serve.
The CLI (`tinydigits ...`) is a thin layer over them.

What importing tinydigits does to your process, and what it leaves alone (it is safe in a notebook):
- Keras picks its backend once, at import. Unless you chose one (KERAS_BACKEND) or imported Keras
  already, tinydigits asks for JAX: `train` runs its own compiled JAX loop (train.fit; it needs
  that backend), about 13x faster than the lesson's code on a CPU once compiled (bench/README.md).
  Conversion to TFLite does not depend on the backend (see convert.py).
- TF_CPP_MIN_LOG_LEVEL defaults to 2 (TensorFlow's C++ start-up chatter), unless you set it.
- Nothing else: the matplotlib backend stays yours (the CLI picks Agg for itself), the garbage
  collector is frozen only inside `tinydigits serve`'s own processes, and XLA's threads are left
  alone until tinydigits trains: `train()` (and the CLI) call `single_thread_xla()`.
"""
import os as _os
import sys as _sys

if "keras" not in _sys.modules:
    _os.environ.setdefault("KERAS_BACKEND", "jax")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

__version__ = "0.1.0"

# XLA's multi-threaded Eigen costs more than it gains on matrices this small; the numbers are the same
SINGLE_THREAD_XLA_FLAGS = "--xla_cpu_multi_thread_eigen=false"


def single_thread_xla() -> None:
    """Ask XLA for single-threaded CPU kernels, unless XLA_FLAGS is set already.

    Process-wide, and read once, when JAX first computes: it takes effect only if nothing in the
    process has run on JAX yet (building a Keras model counts). Call it first thing in a notebook
    to train at the CLI's speed; the trained weights are identical either way.
    """
    _os.environ.setdefault("XLA_FLAGS", SINGLE_THREAD_XLA_FLAGS)


def redraws_in_place(stream) -> bool:
    """Whether a progress bar on `stream` can redraw itself: a terminal, or a Jupyter cell. Elsewhere (a
    file, a pipe, CI's log) progress is one plain line per step, without carriage returns or colours."""
    return bool(getattr(stream, "isatty", lambda: False)()) or "ipykernel" in _sys.modules
