"""Sweep training recipes and designs in float, many processes at once: how `RECIPES["better"]`
and the search's space were chosen.

Each experiment trains one recipe with `tinydigits.train.train` and writes one JSON line (name,
recipe, float validation and test accuracy, seconds). Float only: int8 accuracy and flash are
measured afterwards by `tinydigits compare` and `tinydigits search` on the chosen few. Plans:

- `ablation`: 784-20-10 on all 60,000 training images, seeds 0-2: the lesson, the better recipe,
  the better recipe minus each technique, and the lesson plus each technique;
- `designs`: candidate designs near 8, 16 and 32 KB of int8 weights (inputs 28/14/12/10/7 px, one
  to three hidden layers), better recipe, validation split as the search uses;
- `teachers`: 784-800-800-10 teachers (one on the search's training split, one on all images), then
  students distilled from them (needs a GPU to be quick).

    JAX_PLATFORMS=cpu python bench/recipe_sweep.py --plan ablation designs --workers 14 --out sweep.jsonl
    python bench/recipe_sweep.py --plan teachers --workers 2 --out teachers.jsonl --teachers runs/teachers
"""
import argparse
import json
import multiprocessing
import os
import time
from pathlib import Path

SEARCH_SPLIT = 1 / 6  # as tinydigits.search
BETTER = {"epochs": 60, "batch_size": 128, "lr": 0.003, "schedule": "onecycle", "shift": 2.0, "rotate": 10.0,
          "scale": 0.1, "label_smoothing": 0.1, "qat_epochs": 5}
NO_AUG = {"shift": 0.0, "rotate": 0.0, "scale": 0.0, "elastic": 0.0}
DESIGNS = {  # (input px, hidden): about 6.5k, 13k and 26k int8 weights
    8: [(14, (32,)), (14, (24, 16)), (14, (28, 16, 16)), (12, (40,)), (12, (32, 32)), (12, (40, 16)), (10, (64,)),
        (10, (56, 16)), (10, (48, 32)), (7, (96, 16)), (7, (64, 32, 32))],
    16: [(14, (64,)), (14, (56, 32)), (14, (48, 48, 32)), (12, (80,)), (12, (64, 64)), (12, (80, 32)), (10, (128,)),
         (10, (96, 64)), (10, (112, 32)), (28, (16,)), (7, (128, 64, 32))],
    32: [(14, (128,)), (14, (112, 64)), (14, (96, 96, 32)), (12, (160,)), (12, (144, 64)), (12, (128, 96, 32)),
         (10, (240,)), (10, (192, 96)), (10, (160, 128, 32)), (28, (32,))],
}


def plan(name: str, teachers: Path) -> list[dict]:
    """Experiments as dicts of Recipe fields (plus 'group')."""
    if name == "ablation":
        variants = {
            "lesson": {}, "better": BETTER,
            "better-no-aug": {**BETTER, **NO_AUG}, "better-no-ls": {**BETTER, "label_smoothing": 0.0},
            "better-constant-lr": {**BETTER, "schedule": "constant", "lr": 0.001},
            "better-no-qat": {**BETTER, "qat_epochs": 0}, "better+elastic": {**BETTER, "elastic": 34.0},
            "better-30-epochs": {**BETTER, "epochs": 30}, "better-100-epochs": {**BETTER, "epochs": 100},
            "lesson+onecycle": {"schedule": "onecycle", "lr": 0.003}, "lesson+aug": {k: BETTER[k] for k in ("shift", "rotate", "scale")},
            "lesson+ls": {"label_smoothing": 0.1}, "lesson+60x128": {"epochs": 60, "batch_size": 128},
            "lesson+qat": {"qat_epochs": 5},
        }
        return [{"group": g, "seed": s, **v} for g, v in variants.items() for s in (0, 1, 2)]
    if name == "designs":
        out = [{"group": f"{kb}k", "input_size": size, "hidden": list(hidden), "validation_split": SEARCH_SPLIT, **BETTER}
               for kb, designs in DESIGNS.items() for size, hidden in designs]
        out += [{**e, "group": e["group"] + "-120ep", "epochs": 120} for e in out
                if (e["input_size"], tuple(e["hidden"])) in {(14, (32,)), (12, (40,)), (14, (64,)), (12, (80,)), (14, (128,)), (12, (160,)), (10, (240,))}]
        strengths = {"aug-strong": {"shift": 3.0, "rotate": 15.0, "scale": 0.15}, "aug-elastic": {"elastic": 34.0},
                     "aug-mild": {"shift": 1.0, "rotate": 5.0, "scale": 0.05}, "lr0.002": {"lr": 0.002}, "lr0.006": {"lr": 0.006}}
        out += [{"group": f"16k-{k}", "input_size": 12, "hidden": [80], "validation_split": SEARCH_SPLIT, **BETTER, **v}
                for k, v in strengths.items()]
        return out
    if name == "teachers":
        big = {"hidden": [800, 800], **BETTER, "qat_epochs": 0}
        out = [{"group": "teacher", "save": str(teachers / "val"), "validation_split": SEARCH_SPLIT, **big},
               {"group": "teacher", "save": str(teachers / "full"), **big}]
        out += [{"group": "kd-designs", "teacher": str(teachers / "val"), "input_size": s, "hidden": list(h),
                 "validation_split": SEARCH_SPLIT, **BETTER} for s, h in [(14, (32,)), (12, (40,)), (14, (64,)), (12, (80,)), (14, (128,)), (12, (160,))]]
        out += [{"group": "kd-784-20", "teacher": str(teachers / "full"), "seed": s, **BETTER} for s in (0, 1, 2)]
        out += [{"group": "kd-784-20-lesson", "teacher": str(teachers / "full"), "seed": s} for s in (0, 1, 2)]
        return out
    better = {**BETTER, "label_smoothing": 0.0}  # round 1: label smoothing costs the small models accuracy
    mild = {"shift": 1.0, "rotate": 5.0, "scale": 0.05}
    if name == "round2":
        variants = {"b32-30ep": {**better, "batch_size": 32, "epochs": 30}, "b64-60ep": {**better, "batch_size": 64},
                    "lr0.005": {**better, "lr": 0.005}, "mild-aug": {**better, **mild},
                    "mild-aug-100ep": {**better, **mild, "epochs": 100}, "b32-40ep-lr0.002-mild": {**better, **mild, "batch_size": 32, "epochs": 40, "lr": 0.002}}
        out = [{"group": f"784-20-{g}", "seed": s, **v} for g, v in variants.items() for s in (0, 1, 2)]
        designs = [(14, (128,)), (14, (112, 64)), (12, (160,)), (12, (112, 96)), (12, (128, 64, 32)), (10, (240,)),
                   (10, (176, 64)), (10, (128, 96, 32))]
        out += [{"group": "32k", "input_size": s, "hidden": list(h), "validation_split": SEARCH_SPLIT, **better} for s, h in designs]
        out += [{"group": "32k-120ep", "input_size": s, "hidden": list(h), "validation_split": SEARCH_SPLIT, **better, "epochs": 120}
                for s, h in designs[2::3]]
        return out
    if name == "teachers2":
        big = {**better, "qat_epochs": 0}
        out = [{"group": "teacher", "save": str(teachers / "val"), "validation_split": SEARCH_SPLIT, "hidden": [800, 800], **big},
               {"group": "teacher", "save": str(teachers / "full"), "hidden": [800, 800], **big}]
        out += [{"group": "kd-784-20", "teacher": str(teachers / "full"), "seed": s, **better} for s in (0, 1, 2)]
        out += [{"group": "kd-designs", "teacher": str(teachers / "val"), "input_size": s, "hidden": list(h),
                 "validation_split": SEARCH_SPLIT, **better} for s, h in [(10, (240,)), (12, (160,)), (10, (128, 96, 32)), (12, (80, 32)), (10, (48, 32))]]
        out += [{"group": "kd-784-20-w0.8", "teacher": str(teachers / "full"), "seed": s, **better, "distill_weight": 0.8} for s in (0, 1)]
        return out
    raise SystemExit(f"unknown plan {name!r}")


def run(experiment: dict, deadline: float) -> dict | None:
    if time.time() > deadline:
        return None
    import tinydigits  # noqa: F401  (Keras backend)
    from tinydigits.data import load_dataset
    from tinydigits.model import Recipe
    from tinydigits.train import save_run, split_train, train

    fields = {k: v for k, v in experiment.items() if k not in ("group", "save")}
    if "teacher" in fields:  # wait for the teacher another worker is training
        while not (Path(fields["teacher"]) / "model.keras").exists():
            if time.time() > deadline:
                return None
            time.sleep(2)
    recipe = Recipe().replace(**fields)
    ds = load_dataset("mnist")
    result = train(recipe, ds, verbose=0)
    row = {"group": experiment["group"], "name": recipe.name, "recipe": recipe.to_dict(),
           "params": result.metrics["params"], "test_accuracy": result.metrics["test_accuracy"],
           "train_seconds": result.metrics["train_seconds"]}
    if recipe.validation_split:
        import numpy as np

        from tinydigits.predict import predict_digits

        _, _, x_val, y_val = split_train(ds, recipe.validation_split)
        row["validation_accuracy"] = float(np.mean(predict_digits(result.model, x_val).argmax(1) == y_val))
    if "save" in experiment:
        save_run(result, Path(experiment["save"]), force=True)
    return row


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", nargs="+", required=True, choices=("ablation", "designs", "teachers", "round2", "teachers2"))
    parser.add_argument("--workers", type=int, default=os.cpu_count())
    parser.add_argument("--minutes", type=float, default=6.0, help="start no experiment after this")
    parser.add_argument("--teachers", type=Path, default=Path("runs/teachers"))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    experiments = [e for name in args.plan for e in plan(name, args.teachers.resolve())]
    deadline = time.time() + 60 * args.minutes
    print(f"{len(experiments)} experiments on {args.workers} workers", flush=True)
    with multiprocessing.get_context("spawn").Pool(args.workers) as pool, open(args.out, "a") as out:
        for row in pool.imap_unordered(_run_star, [(e, deadline) for e in experiments]):
            if row is not None:
                out.write(json.dumps(row) + "\n")
                out.flush()
                print(f"{row['group']:18} {row['name']:60} test {row['test_accuracy']:.4f} "
                      f"val {row.get('validation_accuracy', float('nan')):.4f} {row['train_seconds']:6.1f} s", flush=True)


def _run_star(args):
    return run(*args)


if __name__ == "__main__":
    main()
