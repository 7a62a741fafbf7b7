"""Training speed: the lesson's code as written vs `tinydigits train`, same recipe, same run, side by side.

Both train Flatten -> Dense(20, relu) -> Dense(10, softmax) with Adam (lr 0.001), batch 32, 20
epochs, validating on the test set each epoch. The lesson runs on Keras' TensorFlow backend with
its defaults; tinydigits on JAX, one compiled call per epoch (train.fit). Each is a fresh process
per seed, and two times are taken of each:
- fit: the training loop's, compilation included (imports and data loading excluded for both);
- process: the whole process, from its start to its exit, as a user waits for it: interpreter,
  imports, data, training, evaluation, saving (tinydigits writes its whole run folder).
tinydigits runs twice per seed: "cold" with an empty XLA compilation cache (a first run: it
compiles), then "warm" with the programs the cold run cached (every later run of the same design,
as the CLI keeps them in ~/.cache/tinydigits/xla).

    TINYDIGITS_DATA=../shared/datasets python bench/train_speed.py --seeds 0 1 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def timed(cmd: list[str], **kwargs) -> tuple[subprocess.CompletedProcess, float]:
    start = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True, check=True, **kwargs)
    return proc, time.perf_counter() - start


def lesson(seed: int, epochs: int) -> dict:
    proc, wall = timed([sys.executable, str(HERE / "lesson.py"), "--seed", str(seed), "--epochs", str(epochs)])
    return {**json.loads(proc.stdout.strip().splitlines()[-1]), "process": wall}


def tinydigits(seed: int, epochs: int, cache: str) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["JAX_COMPILATION_CACHE_DIR"] = cache
        _, wall = timed([sys.executable, "-m", "tinydigits", "train", "--seed", str(seed), "--epochs", str(epochs),
                         "--quiet", "--out", f"{tmp}/run"], env=env)
        m = json.loads(Path(f"{tmp}/run/metrics.json").read_text())
    return {"seconds": m["train_seconds"], "test_accuracy": m["test_accuracy"], "process": wall}


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
        print(f"seed {seed}: lesson fit {a['seconds']:6.2f} s, process {a['process']:6.2f} s, acc {a['test_accuracy']:.4f}"
              f" | tinydigits fit cold {cold['seconds']:5.2f} s, warm {warm['seconds']:5.2f} s; process cold "
              f"{cold['process']:5.2f} s, warm {warm['process']:5.2f} s, acc {cold['test_accuracy']:.4f}", flush=True)
    mean = lambda key, i: statistics.mean(r[i][key] for r in rows)  # noqa: E731
    gap = 100 * (mean("test_accuracy", 2) - mean("test_accuracy", 1))
    print(f"mean over {len(rows)} seeds: lesson fit {mean('seconds', 1):.2f} s, process {mean('process', 1):.2f} s, "
          f"{100 * mean('test_accuracy', 1):.2f}% | tinydigits fit cold {mean('seconds', 2):.2f} s, warm "
          f"{mean('seconds', 3):.2f} s; process cold {mean('process', 2):.2f} s, warm {mean('process', 3):.2f} s, "
          f"{100 * mean('test_accuracy', 2):.2f}%")
    print(f"fit speed-up cold {mean('seconds', 1) / mean('seconds', 2):.1f}x, warm {mean('seconds', 1) / mean('seconds', 3):.1f}x "
          f"(goal >= 10x); whole process cold {mean('process', 1) / mean('process', 2):.1f}x, warm "
          f"{mean('process', 1) / mean('process', 3):.1f}x (goal >= 8x); accuracy difference {gap:+.2f} points "
          "(goal: not lower by more than 0.3)")


if __name__ == "__main__":
    main()
