"""The fully-connected kernels: the weight layout they read, and each core's kernel byte-identical to TFLM.

Each core has a fast path beside the portable reference (c_templates/kernels/dot.c): the Cortex-M DSP intrinsics
(M4, M7, M33), Cortex-M0 assembly, AVR assembly. Each is run in its emulator on 300 inputs and must
give TFLM's bytes, and must be the one that ran (fewer instructions or cycles than the reference).
The lesson's model has friendly shapes (depths 784 and 20, 20 and 10 rows); the model here has the
awkward ones: depths 49, 15 and 9 (not multiples of 4: zero-padded groups and 1-3 leftover inputs),
blocks ending in 3, 1 and 2 rows, and group counts that enter the unrolled loops at each place.
"""
import dataclasses
from importlib import resources

import numpy as np
import pytest

from tinydigits.codegen import kernel_layout, write_standalone
from tinydigits.codegen.ops.dense import ROWS_PER_BLOCK
from tinydigits.runtimes import TFLM, LiteRT
from tinydigits.targets import family, find, missing_packages
from tinydigits.targets.host import compile_host, run_batch

CORES = ("microbit", "nano33ble", "stm32f746", "nrf5340", "uno")  # Cortex-M0, M4, M7, M33, AVR: one board each
NAIVE = "-DTINYDIGITS_NAIVE_KERNELS=1"


def on_core(key):
    tools = family(find(key))
    return pytest.param(key, id=find(key).core, marks=pytest.mark.skipif(
        bool(missing_packages(tools.TOOLS, tools.HEADERS)), reason=f"{find(key).toolchain} toolchain not installed"))


def run_on(key: str, c_dir, inputs, work, *flags):
    """Build `c_dir` for the board `key` (plus `flags`) and run it on `inputs`: (outputs, instructions or cycles)."""
    board = find(key)
    board = dataclasses.replace(board, cflags=board.cflags + flags)
    tools = family(board)
    outputs, figures = tools.run(tools.build(c_dir, board, work), inputs)
    return outputs, figures.get("cycles_per_inference", figures.get("instructions_per_inference"))


def layout_index(units: int, depth: int) -> np.ndarray:
    """Where kernels/dot.c reads w[u][d]: the block of rows `first`.. starts at first * padded depth; inside it,
    the 4 bytes of row r at depth d - d % 4 are at (d - d % 4) * rows + 4 * r."""
    padded = -(-depth // 4) * 4
    u, d = np.meshgrid(np.arange(units), np.arange(depth), indexing="ij")
    first = u - u % ROWS_PER_BLOCK
    rows = np.minimum(ROWS_PER_BLOCK, units - first)
    return first * padded + (d - d % 4) * rows + 4 * (u - first) + d % 4


@pytest.mark.parametrize("units, depth", [(20, 784), (10, 20), (15, 49), (9, 15), (10, 9), (1, 1), (3, 2)])
def test_kernel_layout_reorders_the_weights_and_pads_only(units, depth):
    weights = np.random.default_rng(units * depth).integers(-127, 128, (units, depth), dtype=np.int8)
    laid = kernel_layout(weights)
    index = layout_index(units, depth)
    assert laid.dtype == np.int8 and len(laid) == units * (-(-depth // 4) * 4)
    assert np.array_equal(laid[index], weights)
    padding = np.ones(len(laid), bool)
    padding[index.ravel()] = False
    assert padding.sum() == units * (-depth % 4) and not laid[padding].any()


@pytest.fixture(scope="module")
def awkward(mnist, tmp_path_factory):
    """7x7 input (pooled inside the model), hidden layers of 15 and 9: its int8 model, its C, TFLM's outputs."""
    from tinydigits.convert import to_tflite
    from tinydigits.model import Recipe
    from tinydigits.train import train

    small = type(mnist)(mnist.name, mnist.x_train[:5000], mnist.y_train[:5000], mnist.x_test[:500], mnist.y_test[:500],
                        mnist.folder)
    model = train(Recipe(input_size=7, hidden=(15, 9), epochs=2), small, verbose=0).model
    int8 = to_tflite(model, calibration=mnist.x_train[:200])
    c_dir = tmp_path_factory.mktemp("awkward") / "c"
    write_standalone(int8, c_dir, "awkward.tflite", "tests/test_kernels.py")
    lite = LiteRT(int8)
    test_q = lite.prepare(mnist.x_test)
    random_q = np.random.default_rng(1).integers(-128, 128, (3000, 28, 28), dtype=np.int8)
    micro = TFLM(int8)
    return c_dir, test_q, micro.run(test_q), random_q, micro.run(random_q), int8


def test_awkward_shapes_are_what_this_file_is_about(awkward):
    source = (awkward[0] / "tinydigits_model.c").read_text()
    assert "average_pool_2d(" in source
    for depth, units in ((49, 15), (15, 9), (9, 10)):
        assert f", {depth}, {units}, weights" in source


@pytest.mark.parametrize("sanitize", [False, True], ids=["strict", "asan-ubsan"])
def test_awkward_shapes_are_byte_identical_to_tflm_on_the_host(awkward, sanitize):
    c_dir, test_q, tflm_test, random_q, tflm_random, _ = awkward
    exe = compile_host(c_dir, sanitize=sanitize)
    assert np.array_equal(run_batch(exe, test_q), tflm_test)        # all 10,000 test images
    assert np.array_equal(run_batch(exe, random_q), tflm_random)    # 3,000 random int8 inputs


@pytest.mark.parametrize("key", [on_core(k) for k in CORES])
def test_awkward_shapes_on_each_cores_fast_kernel_match_tflm(awkward, key, tmp_path):
    c_dir, test_q, tflm_test, random_q, tflm_random, _ = awkward
    inputs = np.concatenate([test_q[:200], random_q[:100]]).reshape(300, -1)
    fast, fast_count = run_on(key, c_dir, inputs, tmp_path / "fast")
    assert np.array_equal(fast, np.concatenate([tflm_test[:200], tflm_random[:100]]))
    _, naive_count = run_on(key, c_dir, inputs[:10], tmp_path / "naive", NAIVE)
    assert fast_count < naive_count  # the fast kernel is the one that ran


@pytest.mark.parametrize("key", [on_core("nano33ble")])
def test_awkward_shapes_on_the_dsp_kernel_built_for_speed_match_tflm(awkward, key, tmp_path):
    """-O2, as `tinydigits mcu` also builds: GCC schedules the same intrinsics differently."""
    c_dir, test_q, tflm_test, random_q, tflm_random, _ = awkward
    inputs = np.concatenate([test_q[:200], random_q[:100]]).reshape(300, -1)
    outputs, _ = run_on(key, c_dir, inputs, tmp_path, "-O2")
    assert np.array_equal(outputs, np.concatenate([tflm_test[:200], tflm_random[:100]]))


@pytest.mark.parametrize("key", [on_core(k) for k in CORES])
def test_the_lesson_model_on_each_cores_fast_kernel_matches_tflm(converted_run, mnist, key, tmp_path):
    int8 = (converted_run / "model_int8.tflite").read_bytes()
    inputs = LiteRT(int8).prepare(mnist.x_test[:300])
    write_standalone(int8, tmp_path / "c", "lesson", "test")
    outputs, count = run_on(key, tmp_path / "c", inputs.reshape(300, -1), tmp_path / "fast")
    assert np.array_equal(outputs, TFLM(int8).run(inputs))
    _, naive_count = run_on(key, tmp_path / "c", inputs[:10].reshape(10, -1), tmp_path / "naive", NAIVE)
    assert count < naive_count / 2  # at least twice as fast as the portable kernel on every core


@pytest.mark.parametrize("key", [on_core("uno")])
def test_a_weight_of_minus_128_keeps_the_avr_on_the_portable_kernel(awkward, key, tmp_path):
    """The AVR kernel adds two products in 16 bits, which needs weights in [-127, 127] (TFLite's range).
    A -128 (patched into the .tflite's weight buffer) makes the generator say so, and the AVR build then
    runs the portable kernel: the host's bytes."""
    from tinydigits.tflite import read

    model = awkward[5]
    weights = next(n for n in read(model).nodes if n.op == "FULLY_CONNECTED").inputs[1].data
    at = model.find(weights.tobytes()[:32])
    assert at > 0 and model.find(weights.tobytes()[:32], at + 1) == -1  # the buffer, found once
    patched = model[:at] + b"\x80" + model[at + 1:]
    assert next(n for n in read(patched).nodes if n.op == "FULLY_CONNECTED").inputs[1].data[0, 0] == -128
    c_dir = tmp_path / "c"
    write_standalone(patched, c_dir, "test", "test")
    assert "#define TINYDIGITS_WEIGHTS_SYMMETRIC 0" in (c_dir / "tinydigits_model.c").read_text()
    inputs = awkward[1][:50].reshape(50, -1)
    outputs, cycles = run_on(key, c_dir, inputs, tmp_path / "build")
    assert np.array_equal(outputs, run_batch(compile_host(c_dir), inputs))
    _, fast_cycles = run_on(key, awkward[0], inputs[:10], tmp_path / "fast")
    assert cycles > fast_cycles  # the portable kernel ran


ZERO_COPY = """
static int8_t in_buf[TINYDIGITS_INPUT_SIZE], out_buf[TINYDIGITS_OUTPUT_SIZE];
int8_t *tinydigits_input(void) {{ return in_buf; }}
int tinydigits_invoke(void) {{ return tinydigits_predict(in_buf, out_buf); }}
const int8_t *tinydigits_output(void) {{ return out_buf; }}
"""


def kernels_program(model_dir, c_dir, template: str, files=("common",)):
    """A standalone C folder whose tinydigits_model.c is `template` around the kernel `files` (main.c and the
    facts from `model_dir`), with the zero-copy API the board firmware calls."""
    c_dir.mkdir()
    for name in ("tinydigits_model.h", "main.c", "tinydigits_model.json"):
        (c_dir / name).write_text((model_dir / name).read_text())
    kernels = "".join(resources.files("tinydigits").joinpath(f"c_templates/kernels/{f}.c").read_text() for f in files)
    (c_dir / "tinydigits_model.c").write_text((template + ZERO_COPY).format(kernels=kernels))
    return c_dir


SRDHM_TEST = """#include "tinydigits_model.h"
#define TINYDIGITS_MATCH_LITERT 0
#define TINYDIGITS_NAIVE_KERNELS 0
{kernels}
/* The input is 98 pairs of little-endian int32 (a, b); the output, a hash of the 98 srdhm(a, b). */
int tinydigits_predict(const int8_t *input, int8_t *output) {{
    uint32_t hash = 0;
    (void)requantize;
    for (int i = 0; i < 784; i += 8) {{
        uint32_t a = 0, b = 0;
        for (int k = 3; k >= 0; --k) a = (a << 8) | (uint8_t)input[i + k], b = (b << 8) | (uint8_t)input[i + 4 + k];
        hash = hash * 31u + (uint32_t)srdhm((int32_t)a, (int32_t)b);
    }}
    for (int c = 0; c < 10; ++c) output[c] = (int8_t)(hash >> (3 * c));
    return 0;
}}
"""


@pytest.mark.parametrize("key", [on_core("uno"), on_core("microbit")])
def test_the_cores_own_rounding_multiply_equals_the_64_bit_one(awkward, key, tmp_path):
    """srdhm is AVR assembly on AVR and 16-bit pieces on a Cortex-M0: the host's 64-bit product is the judge,
    on 29,400 pairs: random, small, and the edges (0, +-1, +-2^15, +-2^16, +-2^30, INT32_MIN, INT32_MAX)."""
    c_dir = kernels_program(awkward[0], tmp_path / "c", SRDHM_TEST)
    rng = np.random.default_rng(0)
    edges = np.array([0, 1, -1, 2**15, -2**15, 2**16 - 1, -2**16, 2**30, -2**30, 2**31 - 1, -2**31, -2**31 + 1])
    pairs = rng.integers(-2**31, 2**31, (300, 196))
    pairs[:100] = rng.choice(edges, (100, 196))
    pairs[100:150] = rng.integers(-2**16, 2**16, (50, 196))
    inputs = pairs.astype("<i4").view(np.int8).reshape(300, 784)
    outputs, _ = run_on(key, c_dir, inputs, tmp_path / "build")
    assert np.array_equal(outputs, run_batch(compile_host(c_dir), inputs))


EXP_TEST = """#include "tinydigits_model.h"
#define TINYDIGITS_MATCH_LITERT 0
#define TINYDIGITS_NAIVE_KERNELS 0
#define TINYDIGITS_SOFTMAX_DEPTH 10
{kernels}
/* The input is the softmax's constants (3 little-endian int32: multiplier, left shift, diff_min) and a
   difference's magnitude (a byte); the output, the int32 softmax.c stores in exps[]. */
int tinydigits_predict(const int8_t *input, int8_t *output) {{
    int32_t p[3];
    for (int j = 0; j < 3; ++j) {{
        uint32_t v = 0;
        for (int k = 3; k >= 0; --k) v = (v << 8) | (uint8_t)input[4 * j + k];
        p[j] = (int32_t)v;
    }}
    int32_t diff = -(int32_t)(uint8_t)input[12];
    (void)requantize; (void)softmax;
    int32_t x = diff >= p[2] ? srdhm(diff * (INT32_C(1) << p[1]), p[0]) : INT32_MIN;  /* as in softmax() */
    uint32_t e = (uint32_t)(x > -(INT32_C(15) << 26) ? exp_on_negative_values(x) : 0);
    for (int c = 0; c < 10; ++c) output[c] = (int8_t)(c < 4 ? e >> (8 * c) : 0);
    return 0;
}}
"""


def test_the_m0s_exp_table_equals_the_exponentials_the_c_computes(awkward, converted_run, tmp_path):
    """The numpy fixed-point exp (codegen/fixedpoint.py) builds the Cortex-M0's table: the C on the host is
    the judge, for every difference 0..-255 and the softmax constants of input scales from 1/256 to 2."""
    from tinydigits.codegen import plan
    from tinydigits.codegen.fixedpoint import quantize_multiplier
    from tinydigits.codegen.ops.dense import exp_table, stored_exps

    constants = [tuple(step.params[k] for k in ("input_multiplier", "input_left_shift", "diff_min"))
                 for model in (awkward[5], (converted_run / "model_int8.tflite").read_bytes())
                 for step in plan(model).steps if step.node.op == "SOFTMAX"]
    for scale in (1 / 256, 1 / 64, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0):  # as the SOFTMAX entry derives them
        multiplier, shift = quantize_multiplier(min(scale * (1 << 26), (1 << 31) - 1.0))
        constants.append((multiplier, shift, -((31 << 26) >> shift)))
    assert len(constants) == 10
    c_dir = kernels_program(awkward[0], tmp_path / "c", EXP_TEST, files=("common", "softmax"))
    inputs = np.zeros((len(constants) * 256, 784), np.int8)
    for i, (multiplier, shift, diff_min) in enumerate(constants):
        inputs[256 * i:256 * (i + 1), :12] = np.array([multiplier, shift, diff_min], "<i4").view(np.int8)
        inputs[256 * i:256 * (i + 1), 12] = np.arange(256).astype(np.uint8).view(np.int8)
    c_exps = run_batch(compile_host(c_dir), inputs)[:, :4].copy().view("<u4").ravel().astype(np.int64)
    py_exps = np.concatenate([stored_exps(-np.arange(256), *consts) for consts in constants])
    assert np.array_equal(c_exps, py_exps)
    assert len(set(c_exps)) > 1000  # the constants reach many exponentials, not a few
    for i, consts in enumerate(constants):
        table = exp_table(*consts)
        assert table[0] == 2**31 - 1 and not c_exps[256 * i + len(table):256 * (i + 1)].any()
        assert list(c_exps[256 * i:256 * i + len(table)]) == table


@pytest.mark.parametrize("key", [on_core("microbit")])
def test_the_m0_reads_the_softmax_exponentials_from_the_table(converted_run, mnist, key, tmp_path):
    """The Cortex-M0 build's softmax reads the generator's table: TFLM's bytes on 300 images, and over
    2,000 instructions per inference fewer than the same build computing the exponentials."""
    int8 = (converted_run / "model_int8.tflite").read_bytes()
    inputs = LiteRT(int8).prepare(mnist.x_test[:300])
    write_standalone(int8, tmp_path / "c", "lesson", "test")
    source = (tmp_path / "c" / "tinydigits_model.c").read_text()
    assert "#if TINYDIGITS_SOFTMAX_EXP_TABLE && !TINYDIGITS_MATCH_LITERT\nstatic const int32_t exps3[" in source
    outputs, count = run_on(key, tmp_path / "c", inputs.reshape(300, -1), tmp_path / "table")
    assert np.array_equal(outputs, TFLM(int8).run(inputs))
    computed, computed_count = run_on(key, tmp_path / "c", inputs[:100].reshape(100, -1), tmp_path / "computed",
                                      "-DTINYDIGITS_SOFTMAX_EXP_TABLE=0")
    assert np.array_equal(computed, outputs[:100])
    _, table_count = run_on(key, tmp_path / "c", inputs[:100].reshape(100, -1), tmp_path / "table")
    assert computed_count - table_count > 2000
