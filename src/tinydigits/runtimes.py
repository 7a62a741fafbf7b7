"""The two runtimes a .tflite model is checked on: LiteRT (what a PC or phone runs) and the TFLite
Micro interpreter (what runs on the chip), one small wrapper each, plus the smallest TFLM arena.

`verify` and the tests use them to compare every form of a model; the C generator never does (it
reads models through `tflite.py`). uint8 images go in, whatever the model's input shape (28x28,
28x28x1 or a flat 784), and its input quantization is applied for an int8 model.

    probs = LiteRT(int8_bytes).predict(x_test)          # (N, 28, 28) uint8 -> (N, 10) float32
    q = LiteRT(int8_bytes).prepare(x_test)              # the int8 inputs the model takes
    outputs = TFLM(int8_bytes).run(q)                   # (N, 10) int8, as on the microcontroller
"""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path
from dataclasses import dataclass

import numpy as np

from .data import normalize
from .errors import TinyDigitsError, first_line
from .tflite import Graph, read

PIXELS = 28 * 28


@dataclass(frozen=True)
class Quantization:
    scale: float
    zero_point: int

    def quantize(self, x: np.ndarray) -> np.ndarray:
        """float -> int8: q = round(x / scale) + zero_point, clamped to [-128, 127]."""
        return np.clip(np.round(x / self.scale) + self.zero_point, -128, 127).astype(np.int8)

    def dequantize(self, q: np.ndarray) -> np.ndarray:
        """int8 -> float: x = (q - zero_point) * scale."""
        return ((q.astype(np.int32) - self.zero_point) * self.scale).astype(np.float32)


class LiteRT:
    """A .tflite model run by LiteRT; uint8 images in, float probabilities out, whatever the model's dtype.

    `reference=True` uses TFLite's reference kernels: the integer arithmetic the generated C and
    TFLM reproduce bit for bit (FULLY_CONNECTED, int8 or int4 weights, as the C built with
    -DTINYDIGITS_MATCH_LITERT=1: single rounding). Its default kernels are no exact reference for int4
    FULLY_CONNECTED: XNNPACK takes some layers, the built-in kernel rounds others a third way.
    """

    def __init__(self, model: bytes, reference: bool = False):
        from ai_edge_litert.interpreter import Interpreter, OpResolverType

        try:  # LiteRT verifies the flatbuffer and checks every tensor, buffer and op as it builds the graph
            self.interpreter = Interpreter(model_content=model, experimental_op_resolver_type=(
                OpResolverType.BUILTIN_REF if reference else OpResolverType.AUTO))
            self.interpreter.allocate_tensors()
        except (ValueError, RuntimeError) as e:
            raise TinyDigitsError(f"not a valid .tflite model ({first_line(e, 120)})") from None
        inputs, outputs = self.interpreter.get_input_details(), self.interpreter.get_output_details()
        if len(inputs) != 1 or len(outputs) != 1 or int(np.prod(inputs[0]["shape"][1:])) != PIXELS \
                or inputs[0]["dtype"] not in (np.float32, np.int8) or outputs[0]["dtype"] not in (np.float32, np.int8):
            raise TinyDigitsError("not a digit model: expected one 28x28 float32 or int8 input and one output")
        self.input, self.output = inputs[0], outputs[0]
        self.int8 = self.input["dtype"] == np.int8
        self.input_q = Quantization(*self.input["quantization"])
        self.output_q = Quantization(*self.output["quantization"])
        self.shape, self.batchable = None, True

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw output for a model-ready batch (int8 or float32, in the model's input shape). A model whose
        graph cannot take a batch (a RESHAPE with a fixed batch of 1 that XNNPACK refuses to resize) runs
        one input at a time, as converted."""
        if len(x) > 1 and self.batchable:
            try:
                return self._invoke(x)
            except RuntimeError:
                self.batchable = False
        return np.concatenate([self._invoke(item[None]) for item in x]) if len(x) else self._invoke(x)

    def _invoke(self, x: np.ndarray) -> np.ndarray:
        if x.shape != self.shape:  # re-planning the tensors costs more than a small inference
            self.shape = None
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def prepare(self, images: np.ndarray) -> np.ndarray:
        """(N, 28, 28) uint8 images -> the model's input (its shape, float32 in [0, 1] or quantized int8)."""
        x = normalize(np.asarray(images).reshape(-1, *self.input["shape"][1:]))
        return self.input_q.quantize(x) if self.int8 else x

    def predict(self, images: np.ndarray) -> np.ndarray:
        out = self.run(self.prepare(images))
        return self.output_q.dequantize(out) if self.int8 else out


def tflm_refuses(model: bytes | Graph) -> str:
    """Why the TFLM interpreter cannot run `model`, in words, or "" if it can: its FULLY_CONNECTED kernel
    takes no int4 weights with int8 inputs (CONV_2D and DEPTHWISE_CONV_2D do). tests/test_int4.py holds
    this rule to the interpreter itself."""
    graph = model if isinstance(model, Graph) else read(model)
    for node in graph.nodes:
        if node.op == "FULLY_CONNECTED" and len(node.inputs) > 1 and node.inputs[1] is not None \
                and node.inputs[1].dtype == "int4":
            return f"TFLite Micro runs no FULLY_CONNECTED with int4 weights (op {node.index})"
    return ""


class TFLM:
    """The TensorFlow Lite Micro interpreter (the one that runs on the chip), one image at a time."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        self.model = model
        self.arena_size = arena_size or minimum_arena(model)
        self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=self.arena_size)

    def run(self, q: np.ndarray) -> np.ndarray:
        """int8 inputs (N, ...) -> int8 outputs (N, classes), one invoke per input."""
        shape = self.interpreter.get_input_details(0)["shape"]
        out = np.empty((len(q), int(np.prod(self.interpreter.get_output_details(0)["shape"]))), np.int8)
        for i, image in enumerate(np.asarray(q, np.int8).reshape(len(q), -1)):
            self.interpreter.set_input(image.reshape(shape), 0)
            self.interpreter.invoke()
            out[i] = self.interpreter.get_output(0).ravel()
        return out


def _tflm_fits(model: bytes, arena_size: int) -> bool:
    from tflite_micro.python.tflite_micro import runtime

    try:
        interpreter = runtime.Interpreter.from_bytes(model, arena_size=arena_size)
        interpreter.set_input(np.zeros(interpreter.get_input_details(0)["shape"], np.int8), 0)
        interpreter.invoke()
        return True
    except (RuntimeError, ValueError):
        return False


def minimum_arena(model: bytes, high: int = 1 << 20) -> int:
    """The smallest tensor arena (bytes) the TFLM interpreter accepts for `model`, by bisection.

    Found with the real interpreter on this host (64-bit pointers; a 32-bit MCU needs a little less).
    TFLM prints a report on stderr for every arena that is too small, and nothing turns that off,
    so the search runs in a child process whose stderr is kept: this process's stderr is left alone,
    and if the search itself fails (or the interpreter crashes) its last words are in the error.
    """
    package_root = str(Path(__file__).resolve().parent.parent)  # the child imports this very tinydigits
    code = (f"import sys; sys.path.insert(0, {package_root!r}); from tinydigits.runtimes import _arena_search; "
            f"_arena_search({int(high)})")
    proc = subprocess.run([sys.executable, "-c", code], input=model, capture_output=True)
    answer = proc.stdout.decode().strip().splitlines()
    if proc.returncode == 0 and answer and answer[-1].isdigit():
        return int(answer[-1])
    if proc.returncode == 3:  # _arena_search's own verdict
        raise TinyDigitsError(f"the TFLM interpreter cannot run this model even with a {high}-byte arena")
    last = next((line for line in reversed(proc.stderr.decode(errors="replace").splitlines()) if line.strip()), "")
    how = f"killed by signal {-proc.returncode}" if proc.returncode < 0 else f"exit status {proc.returncode}"
    raise TinyDigitsError(f"the TFLM interpreter failed while sizing the arena ({how})" + (f": {last[:200]}" if last else ""))


def _arena_search(high: int) -> None:
    """minimum_arena's child: the model's bytes on stdin, the arena size on stdout (exit 3: none fits)."""
    model = sys.stdin.buffer.read()
    if not _tflm_fits(model, high):
        raise SystemExit(3)
    low = 0  # invariant: low fails, high fits
    while high - low > 1:
        mid = (low + high) // 2
        low, high = (low, mid) if _tflm_fits(model, mid) else (mid, high)
    print(high)


def latency_us(fn, samples: np.ndarray, repeat: int = 200) -> float:
    """Mean microseconds per single-image call of `fn` over `repeat` images (after one warm-up)."""
    fn(samples[:1])
    start = time.perf_counter()
    for i in range(repeat):
        fn(samples[i % len(samples)][None])
    return 1e6 * (time.perf_counter() - start) / repeat
