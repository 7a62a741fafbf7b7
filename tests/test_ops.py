"""Every op of the C generator's table, on a grid of shapes, strides, paddings, activations and
quantizations: random int8 inputs through the generated C (host, ASan + UBSan), through the op's
numpy reference (codegen.reference_outputs) and through the TFLM interpreter, all three
byte-identical. A smaller grid runs once more on the AVR (simavr) and on a Cortex-M4 (QEMU).

Each case is a small TensorFlow function converted to a full-integer int8 .tflite by TFLite's own
converter (calibrated on random inputs in [lo, hi], which sets the input's scale and zero point),
so the op options and quantization are what real models carry.
"""
import os
import shutil

import numpy as np
import pytest

from conftest import needs

from tinydigits import codegen
from tinydigits.runtimes import TFLM
from tinydigits.targets.host import compile_host, run_batch

INPUTS = 64  # random int8 inputs per case


def convert(fn, shape, lo, hi, seed=0) -> bytes:
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    f = tf.function(fn, input_signature=[tf.TensorSpec([1, *shape], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()])
    samples = rng.uniform(lo, hi, (64, *shape)).astype(np.float32)
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = lambda: ([s[None]] for s in samples)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
    converter.inference_input_type = converter.inference_output_type = tf.int8
    return bytes(converter.convert())


def weights(seed, shape, sd=0.5):
    return np.random.default_rng(seed).normal(0, sd, shape).astype(np.float32)


def conv(cin, cout, k, stride, padding, act="relu", hw=9, lo=-1.0, hi=2.0, sd=0.5):
    def build():
        import tensorflow as tf

        w, b = weights(1, (k, k, cin, cout), sd), weights(2, (cout,), 0.1)
        f = {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "none": tf.identity}[act]
        return convert(lambda x: f(tf.nn.conv2d(x, w, [1, stride, stride, 1], padding) + b), (hw, hw, cin), lo, hi)
    return build


def depthwise(cin, mult, k, stride, padding, act="none", hw=8, lo=-1.0, hi=2.0):
    def build():
        import tensorflow as tf

        w, b = weights(3, (k, k, cin, mult)), weights(4, (cin * mult,), 0.1)
        f = {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "none": tf.identity}[act]
        return convert(lambda x: f(tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding) + b), (hw, hw, cin), lo, hi)
    return build


def pool(kind, size, stride, padding, act="none", hw=8, channels=3, lo=-1.0, hi=2.0):
    def build():
        import tensorflow as tf

        p = tf.nn.max_pool2d if kind == "max" else tf.nn.avg_pool2d
        f = {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "none": tf.identity}[act]
        return convert(lambda x: f(p(x, size, stride, padding)), (hw, hw, channels), lo, hi)
    return build


def mean(keepdims, hw=5, channels=4, lo=-1.0, hi=2.0):
    def build():
        import tensorflow as tf

        return convert(lambda x: tf.reduce_mean(x, axis=[1, 2], keepdims=keepdims), (hw, hw, channels), lo, hi)
    return build


def residual(act, lo=-1.0, hi=2.0):
    """ADD of the input and a 3x3 convolution of it: two inputs with different scales."""
    def build():
        import tensorflow as tf

        w = weights(5, (3, 3, 3, 3), 0.8)
        f = tf.nn.relu if act == "relu" else tf.identity
        return convert(lambda x: f(x + tf.nn.conv2d(x, w, 1, "SAME")), (6, 6, 3), lo, hi)
    return build


def dense(depth, units, act, lo=-1.0, hi=1.0, softmax=False):
    def build():
        import tensorflow as tf

        w, b = weights(6, (depth, units), 0.3), weights(7, (units,), 0.1)
        f = {"relu": tf.nn.relu, "none": tf.identity}[act]
        g = tf.nn.softmax if softmax else tf.identity
        return convert(lambda x: g(f(tf.matmul(tf.reshape(x, [1, -1]), w) + b)), (depth,), lo, hi)
    return build


def activation(kind, lo=-2.0, hi=9.0):
    def build():
        import tensorflow as tf

        return convert(lambda x: tf.nn.relu6(x) if kind == "relu6" else tf.nn.relu(x), (4, 4, 3), lo, hi)
    return build


CASES = {  # name -> (the op it is about, how to build it)
    "conv3x3-s1-same-relu": ("CONV_2D", conv(2, 4, 3, 1, "SAME")),
    "conv3x3-s2-same-relu6": ("CONV_2D", conv(2, 5, 3, 2, "SAME", "relu6", lo=0.0, hi=1.0)),
    "conv3x3-s1-valid-none": ("CONV_2D", conv(1, 8, 3, 1, "VALID", "none", hw=10)),
    "conv3x3-s2-valid-relu": ("CONV_2D", conv(3, 3, 3, 2, "VALID", hw=11)),
    "conv5x5-s1-same-relu": ("CONV_2D", conv(1, 6, 5, 1, "SAME", hw=7, lo=0.0, hi=1.0)),
    "conv1x1-pointwise": ("CONV_2D", conv(6, 4, 1, 1, "VALID", "none", hw=5)),
    "conv1x1-s2-same": ("CONV_2D", conv(3, 4, 1, 2, "SAME", hw=6)),
    "conv-large-weights": ("CONV_2D", conv(4, 4, 3, 1, "SAME", "none", sd=3.0)),
    "depthwise3x3-s1-same": ("DEPTHWISE_CONV_2D", depthwise(3, 1, 3, 1, "SAME")),
    "depthwise3x3-s2-same-mult2-relu": ("DEPTHWISE_CONV_2D", depthwise(2, 2, 3, 2, "SAME", "relu")),
    "depthwise3x3-s1-valid-relu6": ("DEPTHWISE_CONV_2D", depthwise(4, 1, 3, 1, "VALID", "relu6", lo=0.0, hi=1.0)),
    "depthwise5x5-s2-valid": ("DEPTHWISE_CONV_2D", depthwise(1, 3, 5, 2, "VALID", hw=11)),
    "maxpool2x2-s2-valid": ("MAX_POOL_2D", pool("max", 2, 2, "VALID")),
    "maxpool3x3-s2-same-relu": ("MAX_POOL_2D", pool("max", 3, 2, "SAME", "relu", hw=7)),
    "maxpool3x3-s1-same": ("MAX_POOL_2D", pool("max", 3, 1, "SAME", hw=5)),
    "avgpool2x2-s2-valid": ("AVERAGE_POOL_2D", pool("avg", 2, 2, "VALID")),
    "avgpool3x3-s2-same": ("AVERAGE_POOL_2D", pool("avg", 3, 2, "SAME", hw=7)),
    "avgpool3x3-s1-same-relu6": ("AVERAGE_POOL_2D", pool("avg", 3, 1, "SAME", "relu6", hw=5, lo=-3.0, hi=8.0)),
    "mean-hw": ("MEAN", mean(False)),
    "mean-hw-keepdims": ("MEAN", mean(True, hw=7, channels=2, lo=0.0, hi=1.0)),
    "add-residual": ("ADD", residual("none")),
    "add-residual-relu": ("ADD", residual("relu", lo=0.0, hi=1.0)),
    "dense-relu": ("FULLY_CONNECTED", dense(37, 13, "relu")),
    "dense-softmax": ("SOFTMAX", dense(20, 10, "none", softmax=True)),
    "relu": ("RELU", activation("relu")),
    "relu6": ("RELU6", activation("relu6")),
}
ON_TARGETS = ("conv3x3-s2-same-relu6", "conv1x1-pointwise", "depthwise3x3-s2-same-mult2-relu", "maxpool3x3-s2-same-relu",
              "avgpool3x3-s2-same", "mean-hw", "add-residual-relu", "dense-softmax")


@pytest.fixture(scope="module")
def models():
    return {}


def model_of(models, name) -> bytes:
    if name not in models:
        models[name] = CASES[name][1]()
    return models[name]


def random_inputs(model: bytes, n: int = INPUTS, seed: int = 0) -> np.ndarray:
    size = codegen.plan(model).io["input"]["size"]
    return np.random.default_rng(seed).integers(-128, 128, (n, size), dtype=np.int64).astype(np.int8)


def test_every_op_of_the_table_has_a_case():
    assert {op for op, _ in CASES.values()} >= set(codegen.OPS) - {"RESHAPE", "STRIDED_SLICE"}  # those: test_deploy


@pytest.mark.parametrize("name", sorted(CASES))
def test_op_c_reference_and_tflm_agree(models, name, tmp_path):
    op, _ = CASES[name]
    model = model_of(models, name)
    plan = codegen.plan(model)
    assert op in [s.node.op for s in plan.steps], f"the converter did not make a {op}"
    inputs = random_inputs(model)
    codegen.write_standalone(model, tmp_path / "c", name, "tests/test_ops.py")
    c_out = run_batch(compile_host(tmp_path / "c", sanitize=True, optimization="-O1"), inputs)
    reference = codegen.reference_outputs(plan, inputs)
    tflm = TFLM(model, arena_size=1 << 18).run(inputs)
    assert (reference == tflm).all(), f"{name}: numpy reference != TFLM on {(reference != tflm).any(axis=1).sum()} inputs"
    assert (c_out == tflm).all(), f"{name}: C != TFLM on {(c_out != tflm).any(axis=1).sum()} inputs"
    assert len(np.unique(tflm)) > 3, "a degenerate case: the outputs hardly vary"


def test_arena_is_no_larger_than_tflms(models):
    from tinydigits.runtimes import minimum_arena

    for name in ("conv3x3-s2-same-relu6", "add-residual", "depthwise5x5-s2-valid"):
        model = model_of(models, name)
        assert codegen.plan(model).arena.size <= minimum_arena(model), name


@needs(shutil.which("avr-gcc") is None or shutil.which("arm-none-eabi-gcc") is None, "avr-gcc and arm-none-eabi-gcc")
@pytest.mark.parametrize("board", ["uno", "nano33ble"])
def test_ops_on_the_avr_and_a_cortex_m(models, board, tmp_path):
    from tinydigits.targets import family, find

    target = find(board)
    for name in ON_TARGETS:
        model = model_of(models, name)
        inputs = random_inputs(model, 16, seed=1)
        c_dir = tmp_path / name / "c"
        codegen.write_standalone(model, c_dir, name, "tests/test_ops.py")
        firmware = family(target).build(c_dir, target, tmp_path / name / "fw")
        outputs, _ = family(target).run(firmware, inputs)
        tflm = TFLM(model, arena_size=1 << 18).run(inputs)
        assert (outputs == tflm).all(), f"{name} on {board}: differs from TFLM on {(outputs != tflm).any(axis=1).sum()} inputs"


def test_unsupported_op_is_named(tmp_path):
    import tensorflow as tf

    from tinydigits.errors import TinyDigitsError

    model = convert(lambda x: tf.nn.tanh(x), (4,), -1, 1)
    with pytest.raises(TinyDigitsError, match="op TANH is not supported by the C generator"):
        codegen.plan(model)
    assert not os.path.exists(tmp_path / "c")
