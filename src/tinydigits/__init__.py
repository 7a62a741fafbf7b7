"""tinydigits: from the first TinyML lesson to a digit classifier on a microcontroller.

Stages, one module each: data -> model -> train -> evaluate/predict -> convert -> codegen -> targets
(the boards: host, arm, avr, arduino) -> boards/mcu, and on top of them compare, search and serve.
The CLI (`tinydigits ...`) is a thin layer over them.

Keras picks its backend once, at import. Unless the user chose one (KERAS_BACKEND) or imported
Keras already, tinydigits asks for JAX: the lesson's recipe trains about 8x faster with it on a CPU.
Conversion to TFLite does not depend on the backend (see convert.py).
"""
import os as _os
import sys as _sys

if "keras" not in _sys.modules:
    _os.environ.setdefault("KERAS_BACKEND", "jax")
# XLA's multi-threaded Eigen costs more than it gains on matrices this small (about 10% of the time)
_os.environ.setdefault("XLA_FLAGS", "--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1")
_os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # TensorFlow's C++ start-up chatter

__version__ = "0.1.0"
