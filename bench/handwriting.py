"""Real handwriting: the lesson model and 8 KB designs on MNIST *test* digits rendered three ways.

    python bench/handwriting.py measure runs/lesson runs/better      # each run on crops, ink, photos
    python bench/handwriting.py sweep --out /tmp/hw/sweep             # trains the augmentation variants (--variant NAME)
    python bench/handwriting.py calibrate                             # MNIST's stroke and slant ranges

The pictures come from tinydigits.synthetic (seed 0, N digits from the start of the test set), each
preprocessed by tinydigits.preprocess exactly as `predict` does; the 28x28 results are cached in
the cache folder. Accuracy is the Keras (float) model's; `sweep` trains every variant of the 8 KB
winner's design (10px-h48x16, bench/README.md) with the better recipe plus each augmentation.
"""
import argparse
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

import tinydigits
from tinydigits import preprocess
from tinydigits.data import default_cache_dir, load_dataset
from tinydigits.model import RECIPES, Recipe
from tinydigits.predict import predict_digits
from tinydigits.runs import Run
from tinydigits.synthetic import RENDERINGS, render_set

WINNER_8KB = {"hidden": (48, 16), "input_size": 10}
VARIANTS = {  # augmentation on top of RECIPES["better"]
    "better": {},
    "slant5": {"slant": 5.0},
    "pen0.5": {"thickness": 0.5},
    "elastic1": {"elastic": 1.0},
    "slant10-pen0.7": {"slant": 10.0, "thickness": 0.7},
    "slant15-pen1-rot10-zoom0.1-shift2": {"slant": 15.0, "thickness": 1.0, "rotate": 10.0, "scale": 0.1, "shift": 2.0},
    "slant15-pen1-rot10-zoom0.1-shift2-elastic1.5": {"slant": 15.0, "thickness": 1.0, "rotate": 10.0, "scale": 0.1,
                                                      "shift": 2.0, "elastic": 1.5},
}


def rendered(n: int) -> dict[str, np.ndarray]:
    """rendering -> (n, 28, 28) uint8 preprocessed, cached by n and the preprocess module's bytes."""
    import hashlib

    ds = load_dataset("mnist")
    key = hashlib.sha1(Path(preprocess.__file__).read_bytes() + Path(tinydigits.synthetic.__file__).read_bytes()).hexdigest()[:10]
    out = {"mnist": ds.x_test[:n]}
    for rendering in RENDERINGS:
        path = default_cache_dir() / "handwriting" / f"{rendering}-{n}-{key}.npy"
        if not path.exists():
            path.parent.mkdir(parents=True, exist_ok=True)
            start = time.perf_counter()
            seen = np.stack([preprocess.mnist_like(Image.fromarray(p)) for p in render_set(ds.x_test[:n], rendering, 0)])
            np.save(path, seen)
            print(f"# {rendering}: {n} pictures rendered and preprocessed in {time.perf_counter() - start:.0f} s", file=sys.stderr)
        out[rendering] = np.load(path)
    return out


def scores(model, sets: dict, labels: np.ndarray) -> dict:
    return {name: float((predict_digits(model, x).argmax(1) == labels).mean()) for name, x in sets.items()}


def line(name: str, s: dict) -> str:
    return f"{name:48} " + "  ".join(f"{k} {100 * v:5.1f}%" for k, v in s.items())


def main(argv=None):
    tinydigits.single_thread_xla()
    parser = argparse.ArgumentParser()
    parser.add_argument("command", choices=("measure", "sweep", "calibrate"))
    parser.add_argument("runs", nargs="*", type=Path)
    parser.add_argument("-n", type=int, default=1000, help="test digits per rendering")
    parser.add_argument("--out", type=Path, default=Path("/tmp/tinydigits-handwriting"))
    parser.add_argument("--variant", action="append", choices=sorted(VARIANTS), help="sweep only these (repeatable)")
    args = parser.parse_args(argv)
    ds = load_dataset("mnist")
    labels = ds.y_test[:args.n]
    if args.command == "calibrate":
        rows = [preprocess.steps_of_gray(d.astype(np.float32) / 255) for d in ds.x_train[:3000]]
        print("MNIST stroke width / longer side, percentiles 10 25 50 75 90:",
              np.round(np.percentile([r.stroke for r in rows], [10, 25, 50, 75, 90]), 3))
        return
    sets = rendered(args.n)
    if args.command == "measure":
        for folder in args.runs:
            run = Run(folder)
            print(line(str(folder), scores(run.model(), sets, labels)), flush=True)
            if run.converted:  # the int8 model a board runs, through LiteRT
                from tinydigits.runtimes import LiteRT

                int8 = LiteRT(run.int8_model())
                print(line(f"{folder} (int8)", {k: float((int8.predict(x).argmax(1) == labels).mean()) for k, x in sets.items()}),
                      flush=True)
        return
    from tinydigits.train import save_run, train

    for name, changes in VARIANTS.items():
        if args.variant and name not in args.variant:
            continue
        recipe = Recipe(**{**RECIPES["better"], **WINNER_8KB, **changes})
        result = train(recipe, ds, verbose=0)
        save_run(result, args.out / name, force=True)
        print(line(f"10px-h48x16 {name}", scores(result.model, sets, labels)), flush=True)


if __name__ == "__main__":
    main()
