"""int4 against int8 weights on the chips: the same networks' weights stored both ways, built and run.

    python bench/int4_speed.py                      # nano33ble (Cortex-M4, QEMU) and mega2560 (AVR, simavr)
    python bench/int4_speed.py --boards nano33ble,uno,microbit

For a dense net (784-32-10) and a small CNN (conv 3x3x8, pool, conv 3x3x16, pool, FC), with random
weights (the speed does not depend on their values), the int8 model TFLite's converter writes and
the int4 model tinydigits writes from the same kernels (lowbit.snap, then narrow_to_int4). Prints,
per board, the weight bytes, the instructions (Cortex-M, QEMU -icount) or cycles (AVR, simavr) per
inference and per multiply-accumulate, and the int4 / int8 ratio measured in this run.
The dense net is an AVR's worst case of the two: all its MACs are in the dot kernels.
"""
import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from test_ops import convert, weights  # noqa: E402  (TFLite's converter on small TensorFlow functions)

from tinydigits import codegen, lowbit  # noqa: E402
from tinydigits.targets import family, find  # noqa: E402


def network(kind: str, bits: int) -> bytes:
    import tensorflow as tf

    snap = (lambda w, axes: lowbit.snap(w, axes, 4).astype(np.float32)) if bits == 4 else (lambda w, axes: w)
    if kind == "dense":
        w1, w2 = snap(weights(1, (784, 32), 0.1), (0,)), snap(weights(2, (32, 10), 0.3), (0,))
        fn = lambda x: tf.matmul(tf.nn.relu(tf.matmul(tf.reshape(x, [1, -1]), w1)), w2)  # noqa: E731
    else:
        c1, c2 = snap(weights(1, (3, 3, 1, 8)), (0, 1, 2)), snap(weights(2, (3, 3, 8, 16), 0.3), (0, 1, 2))
        d = snap(weights(3, (7 * 7 * 16, 10), 0.1), (0,))

        def fn(x):
            x = tf.reshape(x, [1, 28, 28, 1])
            x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, c1, 1, "SAME")), 2, 2, "VALID")
            x = tf.nn.max_pool2d(tf.nn.relu(tf.nn.conv2d(x, c2, 1, "SAME")), 2, 2, "VALID")
            return tf.matmul(tf.reshape(x, [1, -1]), d)
    model = convert(fn, (28, 28), 0.0, 1.0)
    return lowbit.narrow_to_int4(model) if bits == 4 else model


def measure(model: bytes, key: str, work: Path) -> tuple[int, str]:
    board = find(key)
    c_dir = work / "c"
    codegen.write_standalone(model, c_dir, "bench/int4_speed.py", "python bench/int4_speed.py")
    inputs = np.random.default_rng(0).integers(-128, 128, (2, 784)).astype(np.int8)
    firmware = family(board).build(c_dir, board, work / key)
    _, figures = family(board).run(firmware, inputs)
    unit = "cycles" if "cycles_per_inference" in figures else "instructions"
    return figures[f"{unit}_per_inference"], unit


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--boards", default="nano33ble,mega2560")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for kind in ("dense", "cnn"):
            models = {bits: network(kind, bits) for bits in (8, 4)}
            plans = {bits: codegen.plan(m) for bits, m in models.items()}
            macs = plans[8].macs
            print(f"{kind}: {macs:,} MACs; weight bytes int8 {plans[8].weight_bytes:,}, int4 {plans[4].weight_bytes:,} "
                  f"({plans[4].weight_bytes / plans[8].weight_bytes:.2f}x)")
            for key in args.boards.split(","):
                (n8, unit), (n4, _) = (measure(models[b], key, Path(tmp) / f"{kind}{b}") for b in (8, 4))
                print(f"  {key:10} int8 {n8:>10,} {unit} ({n8 / macs:5.2f} per MAC)   int4 {n4:>10,} ({n4 / macs:5.2f} per MAC)"
                      f"   int4 / int8 = {n4 / n8:.2f}")


if __name__ == "__main__":
    main()
