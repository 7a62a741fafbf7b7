"""Training speed of a CNN: Keras' own model.fit vs tinydigits' compiled loop (train.fit), same model, same run.

Both train the same Keras model (model.build_model of the recipe: by default `--conv 8 16`,
conv 8 -> pool -> conv 16 -> pool -> Dense(10)) with Adam, batch 32, on all 60,000 training images,
validating on the test set each epoch. model.fit runs on Keras' TensorFlow backend (the lesson's
default) and on its JAX backend with their defaults; tinydigits runs train.fit (one compiled
lax.scan per epoch) as `tinydigits train` does, with its XLA compilation cache cold. Each is a fresh
process per seed; the time is the training loop's, compilation included, data loading excluded.

    TINYDIGITS_DATA=../shared/datasets python bench/train_speed_conv.py --seeds 0 1 2 --epochs 2
"""
import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

FIT = """
import json, sys, time
import keras
from tinydigits.data import load_dataset, normalize
from tinydigits.model import Recipe, build_model, make_optimizer
recipe = Recipe.from_dict(json.loads(sys.argv[1]))
keras.utils.set_random_seed(recipe.seed)
ds = load_dataset("mnist")
model = build_model(recipe)
model.compile(make_optimizer(recipe, 1875), "sparse_categorical_crossentropy", metrics=["accuracy"])
x, xt = normalize(ds.x_train), normalize(ds.x_test)
start = time.perf_counter()
model.fit(x, ds.y_train, batch_size=recipe.batch_size, epochs=recipe.epochs, validation_data=(xt, ds.y_test), verbose=0)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "test_accuracy": float(model.evaluate(xt, ds.y_test, verbose=0)[1])}))
"""


def keras_fit(recipe: dict, backend: str) -> dict:
    env = {**os.environ, "KERAS_BACKEND": backend}
    out = subprocess.run([sys.executable, "-c", FIT, json.dumps(recipe)], capture_output=True, text=True, check=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def tinydigits(recipe: dict) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
        env["JAX_COMPILATION_CACHE_DIR"] = f"{tmp}/cache"
        args = ["--seed", str(recipe["seed"]), "--epochs", str(recipe["epochs"]), "--conv", *map(str, recipe["conv"]),
                "--hidden", *map(str, recipe["hidden"])]
        subprocess.run([sys.executable, "-m", "tinydigits", "train", *args, "--quiet", "--out", f"{tmp}/run"],
                       check=True, capture_output=True, env=env)
        m = json.loads(open(f"{tmp}/run/metrics.json").read())
    return {"seconds": m["train_seconds"], "test_accuracy": m["test_accuracy"]}


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--conv", type=int, nargs="+", default=[8, 16])
    parser.add_argument("--hidden", type=int, nargs="*", default=[])
    args = parser.parse_args()
    from tinydigits.model import Recipe

    rows = []
    for seed in args.seeds:
        recipe = Recipe(conv=tuple(args.conv), hidden=tuple(args.hidden), epochs=args.epochs, seed=seed).to_dict()
        tf_fit, jax_fit, ours = keras_fit(recipe, "tensorflow"), keras_fit(recipe, "jax"), tinydigits(recipe)
        rows.append((tf_fit, jax_fit, ours))
        print(f"seed {seed}: model.fit TF {tf_fit['seconds']:6.1f} s ({tf_fit['test_accuracy']:.4f}) | model.fit JAX "
              f"{jax_fit['seconds']:6.1f} s ({jax_fit['test_accuracy']:.4f}) | tinydigits {ours['seconds']:6.1f} s "
              f"({ours['test_accuracy']:.4f})", flush=True)
    mean = lambda i: statistics.mean(r[i]["seconds"] for r in rows)  # noqa: E731
    print(f"{Recipe.from_dict(recipe).design}, {args.epochs} epochs, mean of {len(rows)} seeds: model.fit TF {mean(0):.1f} s, "
          f"JAX {mean(1):.1f} s, tinydigits {mean(2):.1f} s: {mean(0) / mean(2):.1f}x and {mean(1) / mean(2):.1f}x "
          f"faster (goal >= 3x)")


if __name__ == "__main__":
    main()
