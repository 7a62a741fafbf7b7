"""Keras model -> float32 and full-integer int8 .tflite, run with LiteRT and the TFLM interpreter.

The TFLite graph is built from the Keras model's weights with plain TensorFlow ops, so conversion
works the same whatever Keras backend trained or loaded the model (JAX, TensorFlow, PyTorch) and
needs nothing but `model.keras`. The layers it knows are the ones tinydigits builds: Flatten,
Reshape, AveragePooling2D, Cropping2D and Dense (with relu, linear, sigmoid, tanh or softmax).

    float_bytes, int8_bytes = to_tflite(model), to_tflite(model, calibration=x_train[:500])
    probs = LiteRT(int8_bytes).predict(x_test)            # (N, 28, 28) uint8 -> (N, 10) float32
"""
from __future__ import annotations

import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .data import normalize
from .errors import TinyDigitsError, first_line

CALIBRATION_IMAGES = 500  # representative training images for the int8 ranges
SUPPORTED = "Flatten, Reshape, AveragePooling2D, Cropping2D and Dense (relu, linear, sigmoid, tanh, softmax)"


def _forward(model):
    """A TensorFlow function computing `model` from its weights: (1, 28, 28) float32 -> (1, 10)."""
    import tensorflow as tf

    activations = {"relu": tf.nn.relu, "linear": tf.identity, "sigmoid": tf.sigmoid, "tanh": tf.tanh,
                   "softmax": tf.nn.softmax}
    steps = []
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "InputLayer":
            continue
        if kind == "Flatten":
            steps.append(lambda x: tf.reshape(x, [tf.shape(x)[0], -1]))
        elif kind == "Reshape":
            steps.append(lambda x, s=tuple(layer.target_shape): tf.reshape(x, (-1, *s)))
        elif kind == "Cropping2D":
            (top, bottom), (left, right) = layer.cropping
            steps.append(lambda x, t=top, b=bottom, l=left, r=right: x[:, t:x.shape[1] - b, l:x.shape[2] - r, :])
        elif kind == "AveragePooling2D" and layer.padding == "valid":
            steps.append(lambda x, p=layer.pool_size, s=layer.strides: tf.nn.avg_pool2d(x, p, s, "VALID"))
        elif kind == "Dense" and layer.activation.__name__ in activations:
            w, b = (tf.constant(v) for v in layer.get_weights())
            steps.append(lambda x, w=w, b=b, f=activations[layer.activation.__name__]: f(tf.matmul(x, w) + b))
        else:
            raise TinyDigitsError(f"layer {layer.name!r} ({kind}) cannot be converted; supported: {SUPPORTED}")

    def forward(x):
        for step in steps:
            x = step(x)
        return x

    return forward


def calibration_images(x_train: np.ndarray, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """`count` training images drawn at random: the representative set for the int8 ranges."""
    if not 1 <= count <= len(x_train):
        raise TinyDigitsError(f"calibration count must be between 1 and {len(x_train)}, got {count}")
    return x_train[np.random.default_rng(seed).choice(len(x_train), count, replace=False)]


def to_tflite(model, calibration: np.ndarray | None = None) -> bytes:
    """Float32 .tflite bytes, or full-integer int8 when `calibration` (N, 28, 28) uint8 images are given.

    int8 means int8 weights and activations, int32 biases, int8 input and output: what TFLM and the
    generated C run. The converter settings are all spelled out below.
    """
    import tensorflow as tf

    shape = [1, *model.input_shape[1:]]
    fn = tf.function(_forward(model), input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([fn.get_concrete_function()])
    if calibration is not None:
        samples = normalize(np.asarray(calibration))
        converter.optimizations = [tf.lite.Optimize.DEFAULT]                  # quantize
        converter.representative_dataset = lambda: ([s[None]] for s in samples)  # activation ranges
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # no float fallback
        converter.inference_input_type = tf.int8                              # int8 in ...
        converter.inference_output_type = tf.int8                             # ... and int8 out
    try:
        return bytes(converter.convert())
    except Exception as e:  # the converter's own exceptions carry MLIR dumps; keep the first line
        raise TinyDigitsError(f"TFLite conversion failed: {first_line(e, 200)}") from None


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
    TFLM reproduce bit for bit.
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
        if len(inputs) != 1 or len(outputs) != 1 or int(np.prod(inputs[0]["shape"][1:])) != 28 * 28 \
                or inputs[0]["dtype"] not in (np.float32, np.int8) or outputs[0]["dtype"] not in (np.float32, np.int8):
            raise TinyDigitsError("not a digit model: expected one 28x28 float32 or int8 input and one output")
        self.input, self.output = inputs[0], outputs[0]
        self.int8 = self.input["dtype"] == np.int8
        self.input_q = Quantization(*self.input["quantization"])
        self.output_q = Quantization(*self.output["quantization"])
        self.shape = None

    def run(self, x: np.ndarray) -> np.ndarray:
        """Raw output for a model-ready batch (int8 or float32, (N, 28, 28))."""
        if x.shape != self.shape:  # re-planning the tensors costs more than a small inference
            self.interpreter.resize_tensor_input(self.input["index"], x.shape)
            self.interpreter.allocate_tensors()
            self.shape = x.shape
        self.interpreter.set_tensor(self.input["index"], x)
        self.interpreter.invoke()
        return self.interpreter.get_tensor(self.output["index"]).copy()

    def prepare(self, images: np.ndarray) -> np.ndarray:
        x = normalize(np.asarray(images).reshape(-1, 28, 28))
        return self.input_q.quantize(x) if self.int8 else x

    def predict(self, images: np.ndarray) -> np.ndarray:
        out = self.run(self.prepare(images))
        return self.output_q.dequantize(out) if self.int8 else out


class TFLM:
    """The TensorFlow Lite Micro interpreter (the one that runs on the chip), one image at a time."""

    def __init__(self, model: bytes, arena_size: int | None = None):
        from tflite_micro.python.tflite_micro import runtime

        self.model = model
        self.arena_size = arena_size or minimum_arena(model)
        self.interpreter = runtime.Interpreter.from_bytes(model, arena_size=self.arena_size)

    def run(self, q: np.ndarray) -> np.ndarray:
        """int8 (N, 28, 28) -> int8 (N, 10)."""
        out = np.empty((len(q), 10), np.int8)
        for i, image in enumerate(q):
            self.interpreter.set_input(image[None], 0)
            self.interpreter.invoke()
            out[i] = self.interpreter.get_output(0)[0]
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
    code = (f"import sys; sys.path.insert(0, {package_root!r}); from tinydigits.convert import _arena_search; "
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
