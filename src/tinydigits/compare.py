"""Train variants of the lesson side by side and show what each of its claims looks like in numbers.

Presets answer the lesson: `activation` (relu vs linear vs sigmoid vs tanh: why a non-linearity),
`loss` (cross-entropy vs MSE on one-hot softmax outputs: "from regression to classification"),
`width` (hidden 10..256, with the int8 bytes each costs) and `lesson` (all of them); `recipe` shows
what each training technique buys on 784-20-10; `conv` sets the lesson's dense net beside CNNs of
its parameter count and fewer, each also built and run on the Nano 33 BLE (flash, RAM, MACs,
instructions): why convolutions share weights. Every variant gets the same data and seeds; with
several seeds a row holds the mean and the standard deviation. Output: comparison.json / .md /
.png and calibration.png.

    rows = compare(variants(PRESETS["lesson"], Recipe(epochs=5)), load_dataset(), seeds=3)
"""
from __future__ import annotations

import dataclasses
import json
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np

from .errors import TinyDigitsError
from .model import RECIPES, Recipe

PRESETS = {
    "activation": [{"activation": a} for a in ("relu", "linear", "sigmoid", "tanh")],
    "loss": [{"loss": "crossentropy"}, {"loss": "mse"}],
    "width": [{"hidden": (w,)} for w in (10, 20, 64, 128, 256)],
}
PRESETS["lesson"] = PRESETS["activation"] + PRESETS["loss"] + PRESETS["width"]
# the lesson's dense net against CNNs of about its parameter count (c12x24: 14,506) and of fewer (9,098; 4,266)
PRESETS["conv"] = [{}, {"conv": (12, 24), "hidden": ()}, {"conv": (8, 16), "hidden": ()}, {"conv": (4, 8), "hidden": ()}]
MEASURED_ON = {"conv": "nano33ble"}  # presets whose rows are also built and run on a board: flash, RAM, instructions
# what each training technique buys on the lesson's 784-20-10 alone, then all of them (RECIPES["better"])
PRESETS["recipe"] = [{}, {"schedule": "onecycle", "lr": 0.003}, {"epochs": 60, "batch_size": 128},
                     {"shift": 1.0, "rotate": 5.0, "scale": 0.05}, {"label_smoothing": 0.1}, {"qat_epochs": 5},
                     RECIPES["better"]]
# the Recipe's own field types, read off its defaults, so a new field is coerced without a second list
INT_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe)  # qat_epochs: int | None, None its default
                   if type(f.default) is int or str(f.type) == "int | None")
FLOAT_FIELDS = tuple(f.name for f in dataclasses.fields(Recipe) if type(f.default) is float)

EXPLANATIONS = {
    "activation": (
        "Without a non-linearity the two Dense layers compose into one linear map, so the 'linear' "
        "network is softmax regression in disguise: {linear} test accuracy against {relu} for ReLU. "
        "Any non-linearity bends the decision boundaries (sigmoid {sigmoid}, tanh {tanh}); ReLU is also the "
        "cheapest on a microcontroller: a max, fused into the int8 FULLY_CONNECTED op, where sigmoid and tanh "
        "are ops of their own."),
    "loss": (
        "Both variants end in a softmax, but MSE scores the probabilities as if they were regression "
        "targets: when the network is confidently wrong its gradient vanishes, so it learns more slowly "
        "(epochs to come within half a point of cross-entropy's final accuracy, i.e. to reach {level}: "
        "cross-entropy {ce_epochs}, MSE {mse_epochs}; at the end {ce} vs {mse}). Cross-entropy is the negative log-likelihood of the right class and keeps pushing."),
    "width": (
        "Accuracy rises with the hidden layer's width and so does the cost: the first layer has 784 weights "
        "per unit, one byte each in int8. {widths}"),
    "conv": (
        "Convolutions share their weights: a 3x3 filter is 9 weights applied at every position of the image, "
        "where a dense unit has a weight for each of the 784 pixels. So the CNNs see more with less: {cnns}, "
        "against the dense net's {dense}. The cost moves from flash to arithmetic: the same filter runs "
        "at every pixel ({macs})."),
}


def parse_variant(text: str) -> dict:
    """'hidden=64,32 activation=tanh lr=0.01' -> recipe changes (hidden also accepts 64x32)."""
    changes = {}
    for item in text.split():
        key, sep, value = item.partition("=")
        if not sep:
            raise TinyDigitsError(f"variant {text!r}: expected key=value pairs, got {item!r}")
        changes[key] = value
    return coerce(changes, text)


def coerce(changes: dict, where: str) -> dict:
    """String or JSON values -> the recipe's field types (unknown fields are refused by Recipe.replace)."""
    out = {}
    try:
        for key, value in changes.items():
            if key == "separable" and isinstance(value, str):
                out[key] = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}[value.lower()]
            elif key in ("hidden", "conv"):
                out[key] = tuple(int(v) for v in (value.replace("x", ",").split(",") if isinstance(value, str) else value) if v != "")
            elif key in INT_FIELDS:
                out[key] = int(value)
            elif key in FLOAT_FIELDS:
                out[key] = float(value)
            else:
                out[key] = value
    except (TypeError, ValueError, KeyError):
        raise TinyDigitsError(f"variant {where!r}: bad value for {key!r}: {value!r}") from None
    return out


def variants_from_file(path: Path) -> list[dict]:
    """A JSON list of objects, or TOML with [[variant]] tables."""
    path = Path(path)
    try:
        text = path.read_text()
        if path.suffix == ".toml":
            import tomllib

            items = tomllib.loads(text).get("variant", [])
        else:
            items = json.loads(text)
    except (OSError, ValueError) as e:
        raise TinyDigitsError(f"{path}: cannot read variants ({e})") from None
    if not isinstance(items, list) or not all(isinstance(i, dict) for i in items):
        raise TinyDigitsError(f"{path}: expected a list of variant objects")
    return [coerce(item, str(path)) for item in items]


def variants(changes: list[dict], base: Recipe) -> list[Recipe]:
    """Recipes for each change set on top of `base`, duplicates removed, order kept."""
    recipes = []
    for c in changes:
        r = base.replace(**c)
        if r not in recipes:
            recipes.append(r)
    return recipes


def on_board(int8: bytes, ds, key: str, name: str) -> dict:
    """The int8 model built for board `key` and run on 20 test images in its emulator: flash, RAM, cost."""
    import tempfile

    from .codegen import read_facts, write_standalone
    from .runtimes import LiteRT
    from .targets import family, find

    board = find(key)
    tools = family(board)
    tools.require()
    with tempfile.TemporaryDirectory() as tmp:
        write_standalone(int8, Path(tmp) / "c", name, "tinydigits compare")
        firmware = tools.build(Path(tmp) / "c", board, Path(tmp) / "fw")
        _, figures = tools.run(firmware, LiteRT(int8).prepare(ds.x_test[:20]))
        facts = read_facts(Path(tmp) / "c")
    return {"board": key, "flash_bytes": firmware.flash_bytes, "ram_bytes": firmware.static_ram_bytes + figures["stack_bytes"],
            "macs": facts["macs"], "instructions_per_inference": figures.get("instructions_per_inference",
                                                                           figures.get("cycles_per_inference"))}


def measure(recipe: Recipe, ds, calibration: int = 300, board: str | None = None) -> dict:
    """Train one recipe, convert it to int8, and return its row of the comparison (with `board`: its build there)."""
    from .convert import calibration_images, to_tflite
    from .runtimes import LiteRT
    from .evaluate import cross_entropy
    from .predict import predict_digits
    from .train import train

    result = train(recipe, ds, verbose=0)
    probs = predict_digits(result.model, ds.x_test)
    int8 = to_tflite(result.model, calibration_images(ds.x_train, calibration, recipe.seed), weight_bits=recipe.weight_bits)
    int8_digits = LiteRT(int8).predict(ds.x_test).argmax(axis=1)
    correct = probs.argmax(axis=1) == ds.y_test
    return {
        "name": recipe.name, "recipe": recipe.to_dict(),
        "test_accuracy": result.metrics["test_accuracy"],
        "test_loss": cross_entropy(probs, ds.y_test),  # cross-entropy for every variant, so losses compare
        "trained_loss": result.metrics["test_loss"],    # the variant's own loss (MSE for the mse variant)
        "params": result.metrics["params"], "int8_bytes": len(int8),
        "int8_test_accuracy": float((int8_digits == ds.y_test).mean()),
        "train_seconds": result.metrics["train_seconds"], "history": result.history,
        "softmax_sum_max_error": float(np.abs(probs.sum(axis=1) - 1).max()),
        "top_probability": {"right_mean": float(probs.max(1)[correct].mean()),
                            "wrong_mean": float(probs.max(1)[~correct].mean()) if (~correct).any() else None},
        "_top": probs.max(axis=1), "_correct": correct,
        **(on_board(int8, ds, board, recipe.name) if board else {}),
    }


def _measure_in_worker(recipe_dict: dict, data_dir: str | None, board: str | None = None) -> dict:
    """Entry point of a --jobs worker process: its own Keras, its own copy of the data."""
    import tinydigits  # noqa: F401  (backend)
    from .data import load_dataset

    recipe = Recipe.from_dict(recipe_dict)
    return measure(recipe, load_dataset(recipe.dataset, data_dir=data_dir), board=board)


def compare(recipes: list[Recipe], ds=None, jobs: int = 1, progress=print, data_dir: Path | None = None,
            seeds: int = 1, board: str | None = None) -> list[dict]:
    """Measure every recipe with `seeds` seeds (from its own), in `jobs` processes; one row per recipe.

    `progress` gets one line per finished training. With jobs > 1 each worker loads the data itself
    (by name, or from `data_dir`).
    """
    runs = [r.replace(seed=r.seed + i) for r in recipes for i in range(seeds)]
    measured = []
    if jobs > 1:
        import multiprocessing

        folder = str(data_dir) if data_dir else None
        with ProcessPoolExecutor(jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            for row in pool.map(_measure_in_worker, [r.to_dict() for r in runs], [folder] * len(runs), [board] * len(runs)):
                measured.append(row)
                progress(row_line(row))
    else:
        for recipe in runs:
            measured.append(measure(recipe, ds, board=board))
            progress(row_line(measured[-1]))
    return [over_seeds(measured[i:i + seeds]) for i in range(0, len(measured), seeds)]


SEED_STATS = ("test_accuracy", "int8_test_accuracy", "test_loss", "train_seconds")


def over_seeds(rows: list[dict]) -> dict:
    """One variant's rows, one per seed -> the first seed's row with the mean (and `*_std`, sample
    standard deviation, and `per_seed` lists) of the scores. Curves and calibration stay the first seed's."""
    if len(rows) == 1:
        return rows[0]
    out = dict(rows[0])
    out["seeds"] = [r["recipe"]["seed"] for r in rows]
    out["per_seed"] = {k: [r[k] for r in rows] for k in SEED_STATS}
    for k in SEED_STATS:
        out[k] = float(np.mean(out["per_seed"][k]))
        out[f"{k}_std"] = float(np.std(out["per_seed"][k], ddof=1))
    return out


def row_line(row: dict) -> str:
    return (f"{row['name']:22} acc {row['test_accuracy']:.4f}  loss {row['test_loss']:.4f}  "
            f"params {row['params']:>7,}  int8 {row['int8_bytes']:>7,} B  {row['train_seconds']:6.1f} s")


def table(rows: list[dict]) -> str:
    seeds = max(len(r.get("seeds", [0])) for r in rows)
    spread = lambda r, k, f: f"{r[k]:{f}}" + (f" ± {r[k + '_std']:{f}}" if seeds > 1 else "")  # noqa: E731
    lines = ["| variant | test accuracy | int8 accuracy | test loss (CE) | params | int8 bytes | train s |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    if seeds > 1:
        lines[0] = lines[0].replace("| variant |", f"| variant (mean ± std over {seeds} seeds) |")
    boards = [r for r in rows if "flash_bytes" in r]
    if boards:
        lines[0] = lines[0].replace(" train s |", f" flash B | RAM B | MACs | instr. ({boards[0]['board']}) | train s |")
        lines[1] += "---:|" * 4
    for r in rows:
        board = (f"{r['flash_bytes']:,} | {r['ram_bytes']:,} | {r['macs']:,} | {r['instructions_per_inference']:,} | "
                 if "flash_bytes" in r else "")
        lines.append(f"| {r['name']} | {spread(r, 'test_accuracy', '.4f')} | {spread(r, 'int8_test_accuracy', '.4f')} | "
                     f"{spread(r, 'test_loss', '.4f')} | {r['params']:,} | {r['int8_bytes']:,} | {board}{r['train_seconds']:.1f} |")
    return "\n".join(lines)


def explanations(rows: list[dict]) -> list[str]:
    """The paragraphs whose variants were all run, with this run's numbers filled in."""
    by = {r["name"]: r for r in rows}
    base = Recipe.from_dict({k: v for k, v in rows[0]["recipe"].items() if k not in ("hidden", "activation", "loss", "input_size")})

    def acc(**c):
        r = by.get(base.replace(**c).name)
        return None if r is None else f"{100 * r['test_accuracy']:.1f}%"

    def epochs_to(level, **c):
        curve = by[base.replace(**c).name]["history"]["val_accuracy"]
        reached = [i + 1 for i, a in enumerate(curve) if a >= level]
        return str(reached[0]) if reached else f"not within {len(curve)}"

    out = []
    if acc(activation="linear") and acc():
        out.append(EXPLANATIONS["activation"].format(linear=acc(activation="linear"), relu=acc(),
                                                     sigmoid=acc(activation="sigmoid") or "not run",
                                                     tanh=acc(activation="tanh") or "not run"))
    if acc(loss="mse") and acc():
        level = by[base.name]["test_accuracy"] - 0.005
        out.append(EXPLANATIONS["loss"].format(level=f"{100 * level:.2f}%", ce_epochs=epochs_to(level),
                                               mse_epochs=epochs_to(level, loss="mse"), ce=acc(), mse=acc(loss="mse")))
    widths = [by[n] for n in by if by[n]["recipe"]["activation"] == "relu" and by[n]["recipe"]["loss"] == "crossentropy"
              and len(by[n]["recipe"]["hidden"]) == 1]
    widths = [r for r in widths if Recipe.from_dict(r["recipe"]).training_tag == base.training_tag]  # same training only
    if len({r["recipe"]["hidden"][0] for r in widths}) >= 3:
        widths.sort(key=lambda r: r["params"])
        out.append(EXPLANATIONS["width"].format(widths="; ".join(
            f"hidden {r['recipe']['hidden'][0]}: {100 * r['test_accuracy']:.1f}% in {r['int8_bytes']:,} int8 bytes" for r in widths) + "."))
    cnns = sorted((r for r in rows if r["recipe"].get("conv")), key=lambda r: -r["params"])
    dense = next((r for r in rows if not r["recipe"].get("conv")), None)
    if cnns and dense:
        say = lambda r: f"{r['name'].split('-relu')[0]} {100 * r['test_accuracy']:.1f}% with {r['params']:,} weights"  # noqa: E731
        macs = ", ".join(f"{r['name'].split('-relu')[0]} {r['macs']:,} MACs" for r in [dense, *cnns] if "macs" in r)
        out.append(EXPLANATIONS["conv"].format(cnns="; ".join(map(say, cnns)), dense=say(dense),
                                               macs=macs or "more MACs per weight"))
    if rows:
        worst = max(r["softmax_sum_max_error"] for r in rows)
        right = np.mean([r["top_probability"]["right_mean"] for r in rows])
        wrong = np.mean([r["top_probability"]["wrong_mean"] for r in rows if r["top_probability"]["wrong_mean"]])
        out.append(f"Softmax makes the outputs probabilities: over every test image of every variant they sum to 1 "
                   f"within {worst:.1e}. They are also informative: the top probability averages {right:.2f} "
                   f"when the answer is right and {wrong:.2f} when it is wrong (calibration.png).")
    return out


def write_report(rows: list[dict], out: Path, force: bool = False, title: str = "comparison",
                 command: str = "tinydigits compare") -> Path:
    from .artifacts import save_figure, staged_folder, write_json, write_text
    from .plots import calibration, overlay_curves

    with staged_folder(out, "compare", command, force) as tmp:
        write_json(tmp / "comparison.json", [{k: v for k, v in r.items() if not k.startswith("_")} for r in rows])
        write_text(tmp / "comparison.md", f"# {title}\n\n{table(rows)}\n\n" + "\n\n".join(explanations(rows)) + "\n")
        save_figure(overlay_curves({r["name"]: r["history"] for r in rows}), tmp / "comparison.png")
        first = rows[0]
        save_figure(calibration(first["_top"], first["_correct"], f"({first['name']})"), tmp / "calibration.png")
    return out


def default_out() -> Path:
    return Path("runs") / f"compare-{time.strftime('%Y%m%d-%H%M%S')}"
