"""Training speed: the lesson's code as written vs `tinydigits train`, same recipe, same run.

Both train Flatten -> Dense(20, relu) -> Dense(10, softmax) with Adam (lr 0.001), batch 32, 20
epochs, validating on the test set each epoch. The lesson runs on Keras' TensorFlow backend with
its defaults; tinydigits on JAX, one compiled call per epoch (train.fit). Each is a fresh process
per seed; the time is the training loop's, compilation included (imports and data loading
excluded for both). tinydigits runs twice per seed: "cold" with an empty XLA compilation cache
(a first run: it compiles), then "warm" with the programs the cold run cached (every later run of
the same design, as the CLI keeps them in ~/.cache/tinydigits/xla).

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


def tinydigits(seed: int, epochs: int, cache: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["JAX_COMPILATION_CACHE_DIR"] = cache
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
        with tempfile.TemporaryDirectory() as cache:
            a = lesson(seed, args.epochs)
            cold, warm = tinydigits(seed, args.epochs, cache), tinydigits(seed, args.epochs, cache)
        rows.append((seed, a, cold, warm))
        print(f"seed {seed}: lesson {a['seconds']:6.2f} s acc {a['test_accuracy']:.4f} | tinydigits cold "
              f"{cold['seconds']:5.2f} s, warm {warm['seconds']:5.2f} s, acc {cold['test_accuracy']:.4f}", flush=True)
    mean = lambda key, i: statistics.mean(r[i][key] for r in rows)  # noqa: E731
    gap = 100 * (mean("test_accuracy", 2) - mean("test_accuracy", 1))
    print(f"mean over {len(rows)} seeds: lesson {mean('seconds', 1):.2f} s, {100 * mean('test_accuracy', 1):.2f}% | "
          f"tinydigits cold {mean('seconds', 2):.2f} s, warm {mean('seconds', 3):.2f} s, {100 * mean('test_accuracy', 2):.2f}%")
    print(f"speed-up cold {mean('seconds', 1) / mean('seconds', 2):.1f}x, warm {mean('seconds', 1) / mean('seconds', 3):.1f}x "
          f"(goal >= 10x); accuracy difference {gap:+.2f} points (goal: not lower by more than 0.3)")


if __name__ == "__main__":
    main()
