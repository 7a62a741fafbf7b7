"""Training speed: the lesson's code as written vs `tinydigits train`, same recipe, same run.

Both train Flatten -> Dense(20, relu) -> Dense(10, softmax) with Adam (lr 0.001), batch 32, 20
epochs, validating on the test set each epoch. The lesson runs on Keras' TensorFlow backend with
its defaults; tinydigits on JAX with XLA and 200 steps per compiled call. Each is a fresh process
per seed; the time is model.fit's (imports and data loading excluded for both).

    TINYDIGITS_DATA=../shared/datasets python bench/train_speed.py --seeds 0 1 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent


def lesson(seed: int, epochs: int) -> dict:
    out = subprocess.run([sys.executable, str(HERE / "lesson.py"), "--seed", str(seed), "--epochs", str(epochs)],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tinydigits(seed: int, epochs: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        subprocess.run([sys.executable, "-m", "tinydigits", "train", "--seed", str(seed), "--epochs", str(epochs),
                        "--quiet", "--out", f"{tmp}/run"], check=True, capture_output=True, env=env)
        m = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
    return {"seconds": m["train_seconds"], "test_accuracy": m["test_accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=20)
    args = parser.parse_args()
    rows = []
    for seed in args.seeds:
        a, b = lesson(seed, args.epochs), tinydigits(seed, args.epochs)
        rows.append((seed, a, b))
        print(f"seed {seed}: lesson {a['seconds']:6.2f} s acc {a['test_accuracy']:.4f} | "
              f"tinydigits {b['seconds']:5.2f} s acc {b['test_accuracy']:.4f}", flush=True)
    mean = lambda key, i: statistics.mean(r[i][key] for r in rows)  # noqa: E731
    ratio = mean("seconds", 1) / mean("seconds", 2)
    gap = 100 * (mean("test_accuracy", 2) - mean("test_accuracy", 1))
    print(f"mean over {len(rows)} seeds: lesson {mean('seconds', 1):.2f} s, {100 * mean('test_accuracy', 1):.2f}% | "
          f"tinydigits {mean('seconds', 2):.2f} s, {100 * mean('test_accuracy', 2):.2f}%")
    print(f"speed-up {ratio:.1f}x (goal >= 8x); accuracy difference {gap:+.2f} points (goal within 0.3)")


if __name__ == "__main__":
    main()
