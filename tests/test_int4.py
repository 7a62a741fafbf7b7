"""int4 weights, two per byte, from the converter to every target.

The converter's int4 tensors are checked against the grid training rounds to and against
ai-edge-quantizer's own int4 weights; the packing against TFLite's (low nibble first) and the C
generator's layout against an independent decoder. Each int4 op (FULLY_CONNECTED, CONV_2D,
DEPTHWISE_CONV_2D) on a grid of ragged shapes: the generated C on the host (ASan + UBSan) is
byte-identical to the op's numpy reference and to the TFLM interpreter where TFLM runs int4 (CONV_2D,
DEPTHWISE_CONV_2D; it refuses FULLY_CONNECTED, and runtimes.tflm_refuses says so); and to LiteRT's
reference kernels (BUILTIN_REF): as it is for CONV_2D and DEPTHWISE_CONV_2D, built with
-DTINYDIGITS_MATCH_LITERT=1 (single rounding) for FULLY_CONNECTED. LiteRT's default kernels are no
exact reference for int4 FULLY_CONNECTED (XNNPACK takes some layers; the built-in kernel rounds a
layer without activation neither way: 80-90% of rows equal). Two 784 -> 10
models with every int4 kernel (one with all 16 nibble values) then run on each target family, equal
to the host: AVR (simavr), Cortex-M0 and Cortex-M4 (QEMU), RISC-V (QEMU) and wasm (wasmtime).
"""
import shutil

import numpy as np
import pytest

from conftest import import_or_skip, needs
from test_ops import convert, weights  # the op grid's TFLite conversion of small TensorFlow functions

from tinydigits import codegen, lowbit, tflite
from tinydigits.codegen.ops.dense import kernel_layout, kernel_layout_int4
from tinydigits.errors import TinyDigitsError
from tinydigits.runtimes import TFLM, tflm_refuses
from tinydigits.targets import family, find, missing_packages
from tinydigits.targets.host import compile_host, run_batch

INPUTS = 64


def snapped(seed, shape, axes, sd=0.5):
    return lowbit.snap(weights(seed, shape, sd), axes, 4).astype(np.float32)


def int4(fn, shape, lo=-1.0, hi=2.0) -> bytes:
    return lowbit.narrow_to_int4(convert(fn, shape, lo, hi))


def dense(depth, units, act="relu", softmax=False):
    def build():
        import tensorflow as tf

        w, b = snapped(6, (depth, units), (0,), 0.3), weights(7, (units,), 0.1)
        f = tf.nn.relu if act == "relu" else tf.identity
        g = tf.nn.softmax if softmax else tf.identity
        return int4(lambda x: g(f(tf.matmul(tf.reshape(x, [1, -1]), w) + b)), (depth,), -1.0, 1.0)
    return build


def conv(cin, cout, k, stride, padding, hw=9):
    def build():
        import tensorflow as tf

        w, b = snapped(1, (k, k, cin, cout), (0, 1, 2)), weights(2, (cout,), 0.1)
        return int4(lambda x: tf.nn.relu(tf.nn.conv2d(x, w, stride, padding) + b), (hw, hw, cin))
    return build


def depthwise(cin, mult, k, stride, padding, hw=8):
    def build():
        import tensorflow as tf

        w, b = snapped(3, (k, k, cin, mult), (0, 1)), weights(4, (cin * mult,), 0.1)
        return int4(lambda x: tf.nn.depthwise_conv2d(x, w, [1, stride, stride, 1], padding) + b, (hw, hw, cin))
    return build


CASES = {  # ragged on purpose: depths not a multiple of 8, unit counts not a multiple of 4, odd weight counts
    "dense-37x13-relu": ("FULLY_CONNECTED", dense(37, 13)),           # 4 groups of 8 + 5; 3 blocks of 4 rows + 1
    "dense-64x6": ("FULLY_CONNECTED", dense(64, 6, "none")),          # whole groups; a block of 4 + 2 rows
    "dense-100x22-relu": ("FULLY_CONNECTED", dense(100, 22)),         # the shape XNNPACK takes
    "conv3x3-s1-same-relu": ("CONV_2D", conv(3, 5, 3, 1, "SAME")),    # depth 27
    "conv3x3-s2-valid": ("CONV_2D", conv(2, 8, 3, 2, "VALID", hw=11)),
    "conv1x1-pointwise": ("CONV_2D", conv(8, 4, 1, 1, "VALID", hw=5)),  # in place, depth 8
    "depthwise3x3-s1-same": ("DEPTHWISE_CONV_2D", depthwise(3, 1, 3, 1, "SAME")),  # 27 weights: a half byte left
    "depthwise3x3-s2-same-mult2": ("DEPTHWISE_CONV_2D", depthwise(2, 2, 3, 2, "SAME")),
    "depthwise5x5-s2-valid-mult3": ("DEPTHWISE_CONV_2D", depthwise(1, 3, 5, 2, "VALID", hw=11)),
}


@pytest.fixture(scope="module")
def models():
    return {}


def model_of(models, name) -> bytes:
    if name not in models:
        models[name] = CASES[name][1]()
    return models[name]


def litert_reference(model: bytes, inputs: np.ndarray) -> np.ndarray:
    """LiteRT's reference kernels on any input shape (runtimes.LiteRT takes digit models only)."""
    from ai_edge_litert.interpreter import Interpreter, OpResolverType

    interpreter = Interpreter(model_content=model, experimental_op_resolver_type=OpResolverType.BUILTIN_REF)
    interpreter.allocate_tensors()
    i, o = interpreter.get_input_details()[0], interpreter.get_output_details()[0]
    out = []
    for x in inputs:
        interpreter.set_tensor(i["index"], x.reshape(i["shape"]))
        interpreter.invoke()
        out.append(interpreter.get_tensor(o["index"]).ravel())
    return np.array(out)


def random_inputs(model: bytes, n: int = INPUTS, seed: int = 0) -> np.ndarray:
    size = codegen.plan(model).io["input"]["size"]
    return np.random.default_rng(seed).integers(-128, 128, (n, size), dtype=np.int64).astype(np.int8)


# ---- the stored values --------------------------------------------------------------------------

def test_pack_int4_is_tflites_packing_low_nibble_first():
    values = np.arange(-8, 8)
    packed = lowbit.pack_int4(values)
    assert packed.tolist() == [(a & 0xF) | (b & 0xF) << 4 for a, b in zip(values[0::2], values[1::2])]
    assert packed[:2].tolist() == [0x98, 0xBA] and packed[-1] == 0x76
    odd = np.array([3, -1, -8, 7, 1])                                # an odd count ends in a zero nibble
    assert lowbit.pack_int4(odd).tolist() == [0xF3, 0x78, 0x01]
    for shape in [(16,), (5,), (3, 3, 3)]:                           # tflite.py reads back what was packed
        v = np.random.default_rng(len(shape)).integers(-8, 8, shape)
        assert np.array_equal(tflite._decode(lowbit.pack_int4(v).tobytes(), "int4", shape, "t"), v)
    with pytest.raises(TinyDigitsError, match=r"int4 values must be in \[-8, 7\], got \[-9, 0\]"):
        lowbit.pack_int4([-9, 0])


def test_the_converter_stores_exactly_the_grid_training_rounds_to():
    """The INT4 filter of a snapped kernel holds round(w / s) with s = max|w| / 7 per output channel, the
    values training's forward pass used; an unsnapped kernel is refused, not rounded twice."""
    import tensorflow as tf

    raw = weights(6, (37, 13), 0.3)
    w = lowbit.snap(raw, (0,), 4).astype(np.float32)
    model = int4(lambda x: tf.matmul(tf.reshape(x, [1, -1]), w), (37,), -1.0, 1.0)
    filt = next(n for n in tflite.read(model).nodes if n.op == "FULLY_CONNECTED").inputs[1]
    scale = np.abs(raw).max(axis=0) / 7
    assert filt.dtype == "int4" and filt.shape == (13, 37) and len(filt.scale) == 13
    assert np.allclose(filt.scale, scale, rtol=1e-6)
    assert np.array_equal(filt.data, np.round(raw / scale).T.astype(np.int8))
    assert filt.data.min() >= -7 and filt.data.max() <= 7 and set(np.abs(filt.data[:, 0])) != {7}
    with pytest.raises(TinyDigitsError, match="not on the 7-level grid"):
        lowbit.narrow_to_int4(convert(lambda x: tf.matmul(tf.reshape(x, [1, -1]), raw), (37,), -1.0, 1.0))


def test_training_rounds_to_the_same_grid_and_passes_gradients_straight_through():
    """train.fake_quantize at 4 and 2 bits is lowbit.snap (the converter's rounding), per output channel, with
    the identity as its gradient; int4 keeps each channel's largest |weight|, ternary is {-1, 0, 1} x mean|w|."""
    import jax

    from tinydigits.train import fake_quantize

    w = np.asarray(jax.random.normal(jax.random.key(0), (3, 3, 4, 6))) * np.linspace(0.1, 2, 6, dtype=np.float32)
    q4 = np.asarray(fake_quantize(w, (0, 1, 2), 4))
    steps = np.abs(w).max(axis=(0, 1, 2)) / 7
    snapped_here = lowbit.snap(w, (0, 1, 2), 4)  # float32 rounding apart (w + (q - w) in JAX), the same values
    assert np.array_equal(np.round(q4 / steps), np.round(snapped_here / steps)) and np.allclose(q4, snapped_here, atol=1e-6)
    assert np.allclose(q4 / steps, np.round(q4 / steps), atol=1e-4) and np.abs(q4 / steps).max() <= 7 + 1e-4
    assert np.allclose(np.abs(q4).max(axis=(0, 1, 2)), np.abs(w).max(axis=(0, 1, 2)), rtol=1e-6)
    q2 = np.asarray(fake_quantize(w, (0, 1, 2), 2))
    mean = np.abs(w).mean(axis=(0, 1, 2))
    assert np.allclose(np.unique(np.round(q2 / mean, 4)), [-1, 0, 1])
    assert np.array_equal(jax.grad(lambda v: fake_quantize(v, (0, 1, 2), 4).sum())(w), np.ones_like(w))


def test_ternary_weights_are_stored_as_int4_minus_one_zero_one():
    import tensorflow as tf

    raw = weights(6, (37, 13), 0.3)
    model = lowbit.narrow_to_int4(convert(lambda x: tf.matmul(tf.reshape(x, [1, -1]), lowbit.snap(raw, (0,), 2)),
                                          (37,), -1.0, 1.0), bits=2)
    filt = next(n for n in tflite.read(model).nodes if n.op == "FULLY_CONNECTED").inputs[1]
    assert filt.dtype == "int4" and set(np.unique(filt.data)) == {-1, 0, 1}
    assert np.allclose(filt.scale, np.abs(raw).mean(axis=0), rtol=1e-5)


def test_int4_weights_equal_ai_edge_quantizers():
    """ai-edge-quantizer's int4 weights of the same float kernels (FULLY_CONNECTED and CONV_2D: it writes
    no int4 DEPTHWISE_CONV_2D) are ours, value for value and scale for scale."""
    import_or_skip("ai_edge_quantizer")
    import tensorflow as tf
    from ai_edge_quantizer import qtyping, quantizer

    wc, wd = weights(1, (3, 3, 1, 6)), weights(6, (6 * 8 * 8, 10), 0.3)

    def net(x, wc, wd):
        return tf.matmul(tf.reshape(tf.nn.relu(tf.nn.conv2d(x, wc, 2, "SAME")), [1, -1]), wd)

    f = tf.function(lambda x: net(x, wc, wd), input_signature=[tf.TensorSpec([1, 16, 16, 1], tf.float32)])
    quantize = quantizer.Quantizer(bytes(tf.lite.TFLiteConverter.from_concrete_functions([f.get_concrete_function()]).convert()))
    for op in (qtyping.TFLOperationName.FULLY_CONNECTED, qtyping.TFLOperationName.CONV_2D):
        quantize.add_weight_only_config(".*", op, 4)
    theirs = tflite.read(bytes(quantize.quantize().quantized_model))
    ours = int4(lambda x: net(x, lowbit.snap(wc, (0, 1, 2), 4).astype(np.float32),
                              lowbit.snap(wd, (0,), 4).astype(np.float32)), (16, 16, 1), 0.0, 1.0)
    filters = lambda g: [t for t in g.tensors if t.dtype == "int4"]  # noqa: E731
    assert sorted(t.shape for t in filters(theirs)) == sorted(t.shape for t in filters(tflite.read(ours))) == \
        [(6, 3, 3, 1), (10, 384)]
    by_shape = {t.shape: t for t in filters(tflite.read(ours))}
    for t in filters(theirs):
        assert np.array_equal(t.data, by_shape[t.shape].data), t.shape
        assert np.allclose(t.scale, by_shape[t.shape].scale, rtol=1e-6), t.shape


def test_kernel_layout_int4_reads_back_with_an_independent_decoder():
    """Rows in blocks of 4, 4 bytes per row at a time; 8 weights per 4 bytes: w_j low, w_{j+4} high."""
    w = np.random.default_rng(0).integers(-8, 8, (13, 37))
    stream = kernel_layout_int4(w)
    padded = -(-37 // 8) * 8
    assert stream.dtype == np.uint8 and len(stream) == 13 * padded // 2  # two weights per byte
    nibble = lambda b, high: ((int(b) >> (4 if high else 0)) & 0xF ^ 8) - 8  # noqa: E731
    decoded = np.zeros((13, padded), np.int64)
    for first in range(0, 13, 4):
        rows = min(4, 13 - first)
        block = stream[first * padded // 2:]
        for r in range(rows):
            for g in range(padded // 8):
                word = block[g * 4 * rows + 4 * r:][:4]
                for j in range(4):
                    decoded[first + r, 8 * g + j] = nibble(word[j], False)
                    decoded[first + r, 8 * g + j + 4] = nibble(word[j], True)
    assert np.array_equal(decoded[:, :37], w) and not decoded[:, 37:].any()


# ---- every int4 op on the host ------------------------------------------------------------------

def test_every_weighted_op_has_int4_cases():
    assert {op for op, _ in CASES.values()} == set(lowbit.NARROWED_OPS)


@pytest.mark.parametrize("name", sorted(CASES))
def test_int4_op_c_reference_litert_and_tflm_agree(models, name, tmp_path):
    op, _ = CASES[name]
    model = model_of(models, name)
    plan = codegen.plan(model)
    step = next(s for s in plan.steps if s.node.op == op)
    assert step.node.inputs[1].dtype == "int4" and step.params["weight_bits"] == 4
    inputs = random_inputs(model)
    codegen.write_standalone(model, tmp_path / "c", name, "tests/test_int4.py")
    c_out = run_batch(compile_host(tmp_path / "c", sanitize=True, optimization="-O1"), inputs)
    reference = codegen.reference_outputs(plan, inputs)
    assert (c_out == reference).all(), f"{name}: C != numpy reference on {(c_out != reference).any(axis=1).sum()} inputs"
    assert len(np.unique(reference)) > 3, "a degenerate case: the outputs hardly vary"
    litert = litert_reference(model, inputs)
    if op == "FULLY_CONNECTED":  # LiteRT rounds once: the C's LiteRT build; TFLM refuses (runtimes.tflm_refuses)
        c_litert = run_batch(compile_host(tmp_path / "c", sanitize=True, optimization="-O1", match_litert=True), inputs)
        assert (c_litert == litert).all(), f"{name}: C (LiteRT's arithmetic) != LiteRT on {(c_litert != litert).any(axis=1).sum()}"
        assert not (c_litert == reference).all(), "a case where rounding once or twice makes no difference"
        assert tflm_refuses(model)
        with pytest.raises(RuntimeError):
            TFLM(model, arena_size=1 << 18)
    else:
        assert (reference == litert).all(), f"{name}: reference != LiteRT on {(reference != litert).any(axis=1).sum()} inputs"
        assert not tflm_refuses(model)
        tflm = TFLM(model, arena_size=1 << 18).run(inputs)
        assert (reference == tflm).all(), f"{name}: reference != TFLM on {(reference != tflm).any(axis=1).sum()} inputs"


def test_int4_weights_take_half_the_flash(models):
    """weight_bytes (the facts every report reads) counts the packed bytes: half the int8 layout's, but for
    the padding of each row to 8 weights (int8: to 4)."""
    plan = codegen.plan(model_of(models, "dense-37x13-relu"))
    fc = next(s for s in plan.steps if s.node.op == "FULLY_CONNECTED")
    assert fc.constants["weights"][0].dtype == np.uint8 and fc.params["per_channel"]
    assert fc.weight_bytes == 13 * 40 // 2 + 13 * (4 + 4 + 1)  # weights, then bias, multiplier, shift per unit
    int8_layout = kernel_layout(fc.params["weights"])
    assert int8_layout.nbytes == 13 * 40 and fc.constants["weights"][0].nbytes == int8_layout.nbytes // 2
    dw = next(s for s in codegen.plan(model_of(models, "depthwise3x3-s1-same")).steps if s.node.op == "DEPTHWISE_CONV_2D")
    assert dw.constants["weights"][0].nbytes == 14  # 27 weights


# ---- every target family ------------------------------------------------------------------------

def all_ops_model(full_range: bool = False) -> bytes:
    """784 int8 in, 10 out: CONV_2D 3x3 s2 (depth 9), DEPTHWISE 3x3 s2 (x2), CONV_2D 1x1 (depth 10),
    FULLY_CONNECTED (depth 7 * 7 * 12 = 588: 73 groups of 8 + 4, more than the AVR kernel's 63 per call;
    10 units: 2 blocks + 2 rows), every int4 kernel with its fast paths and tails. `full_range`: the FULLY_CONNECTED filter then holds every
    nibble, -8 to 7 (TFLite's INT4 range; tinydigits itself stores [-7, 7])."""
    import tensorflow as tf

    c1, dw = snapped(1, (3, 3, 1, 5), (0, 1, 2)), snapped(3, (3, 3, 5, 2), (0, 1))
    c2, fc = snapped(5, (1, 1, 10, 12), (0, 1, 2)), snapped(6, (7 * 7 * 12, 10), (0,), 0.2)

    def net(x):
        x = tf.nn.relu(tf.nn.conv2d(tf.reshape(x, [1, 28, 28, 1]), c1, 2, "SAME") + weights(2, (5,), 0.1))
        x = tf.nn.relu(tf.nn.depthwise_conv2d(x, dw, [1, 2, 2, 1], "SAME"))
        x = tf.nn.relu(tf.nn.conv2d(x, c2, 1, "VALID"))
        return tf.matmul(tf.reshape(x, [1, -1]), fc) + weights(7, (10,), 0.1)

    model = int4(net, (28, 28), 0.0, 1.0)
    if full_range:
        model = with_every_nibble(model)
    return model


def with_every_nibble(model: bytes) -> bytes:
    """The model with its FULLY_CONNECTED's packed int4 bytes replaced by every nibble value in turn."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    m = flatbuffer_utils.read_model_from_bytearray(bytearray(model))
    sub = m.subgraphs[0]
    for op in sub.operators:
        if m.operatorCodes[op.opcodeIndex].builtinCode == schema.BuiltinOperator.FULLY_CONNECTED:
            buffer = m.buffers[sub.tensors[op.inputs[1]].buffer]
            n = len(buffer.data)
            values = np.random.default_rng(9).permutation(np.resize(np.arange(-8, 8), 2 * n))
            buffer.data = lowbit.pack_int4(values)
    return bytes(flatbuffer_utils.convert_object_to_bytearray(m))


@pytest.fixture(scope="module")
def target_models(tmp_path_factory):
    """(name, C folder, inputs, host outputs) of the two 784 -> 10 int4 models."""
    out = []
    for full_range in (False, True):
        model = all_ops_model(full_range)
        name = "full-range" if full_range else "symmetric"
        c_dir = tmp_path_factory.mktemp(f"int4-{name}") / "c"
        codegen.write_standalone(model, c_dir, name, "tests/test_int4.py")
        inputs = random_inputs(model, 24, seed=2)
        host = run_batch(compile_host(c_dir, sanitize=True, optimization="-O1"), inputs)
        assert (host == codegen.reference_outputs(codegen.plan(model), inputs)).all(), name
        out.append((name, c_dir, inputs, host))
    assert "TINYDIGITS_INT4_WEIGHTS_SYMMETRIC 1" in (out[0][1] / "tinydigits_model.c").read_text()
    assert "TINYDIGITS_INT4_WEIGHTS_SYMMETRIC 0" in (out[1][1] / "tinydigits_model.c").read_text()
    return out


def toolchain(key):
    board = find(key)
    tools = family(board)
    return pytest.param(key, id=key, marks=needs(missing_packages(tools.TOOLS, tools.HEADERS),
                                                  f"{board.toolchain} toolchain not installed"))


@pytest.mark.parametrize("key", [toolchain(k) for k in ("uno", "microbit", "nano33ble", "esp32c3")])
def test_int4_on_every_board_family_equals_the_host(target_models, key, tmp_path):
    board = find(key)
    for name, c_dir, inputs, host in target_models:
        firmware = family(board).build(c_dir, board, tmp_path / name)
        outputs, _ = family(board).run(firmware, inputs)
        assert (outputs == host).all(), f"{name} on {key}: differs from the host on {(outputs != host).any(axis=1).sum()} inputs"


@needs(shutil.which("clang") is None or shutil.which("wasm-ld") is None, "clang and lld (wasm-ld)")
def test_int4_in_wasm_equals_the_host(target_models, tmp_path):
    from tinydigits.targets import wasm

    import_or_skip("wasmtime")
    for name, c_dir, inputs, host in target_models:
        module = wasm.build(c_dir, tmp_path / name).read_bytes()
        assert (wasm.run(module, inputs) == host).all(), name


# ---- end to end ---------------------------------------------------------------------------------

@needs(any(missing_packages(family(find(k)).TOOLS, family(find(k)).HEADERS) for k in ("uno", "nano33ble")),
       "avr and arm toolchains")
def test_train_convert_export_and_boards_with_int4_weights(tmp_path, capsys):
    """`train --weight-bits 4` -> convert -> export-c -> boards: int4 filters in model_int8.tflite, every
    form scored but TFLM's (marked, with the reason), half the weight bytes of the same model stored in
    int8, and the Uno's and the Nano 33 BLE's outputs equal to the host's."""
    import json

    from tinydigits.cli import main
    from tinydigits.convert import calibration_images, to_tflite
    from tinydigits.runs import Run

    run = tmp_path / "run4"
    assert main(["train", "--weight-bits", "4", "--epochs", "2", "--quiet", "--out", str(run)]) == 0
    assert "h20-relu-ce-w4-e2-qat1" in capsys.readouterr().out
    assert main(["convert", str(run)]) == 0
    assert "TFLM int8          " in capsys.readouterr().out
    report = json.loads((run / "deploy.json").read_text())
    forms = {f["form"]: f for f in report["forms"]}
    assert report["weight_bits"] == 4 and "FULLY_CONNECTED with int4 weights" in forms["TFLM int8"]["skipped"]
    assert forms["LiteRT int8"]["accuracy"] > 0.9 and abs(forms["LiteRT int8"]["accuracy"] - forms["Keras float32"]["accuracy"]) < 0.02
    graph = tflite.read((run / "model_int8.tflite").read_bytes())
    assert [n.inputs[1].dtype for n in graph.nodes if n.op == "FULLY_CONNECTED"] == ["int4", "int4"]

    assert main(["export-c", str(run), "--out", str(tmp_path / "out")]) == 0
    assert "no " + str(tmp_path / "out" / "tflm") + "/: TFLite Micro runs no FULLY_CONNECTED" in capsys.readouterr().out
    facts = codegen.read_facts(tmp_path / "out" / "c")
    int8 = codegen.plan(to_tflite(Run(run).model(), calibration_images(Run(run).dataset().x_train, 100)))
    assert facts["weight_bytes"] < 0.55 * int8.weight_bytes  # 784 x 20 weights: 7,840 bytes instead of 15,680

    assert main(["boards", str(run), "--board", "uno", "--board", "nano33ble", "--images", "40", "--json"]) == 0
    rows = {r["key"]: r for r in json.loads(capsys.readouterr().out)["boards"]}
    assert all(rows[b]["status"] == "PASS" and rows[b]["matches_host"] == 40 for b in ("uno", "nano33ble")), rows
