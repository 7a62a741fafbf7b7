"""Find the most accurate int8 digit model that fits a microcontroller's flash and RAM.

Each candidate (search_space.py: convolutional designs of few channels, and dense ones of one to
three hidden ReLU layers, on 28px or smaller inputs) is trained on the training images minus a
held-out validation split, converted to full-integer int8, generated as standalone C, compiled
for the budget's board (the Nano 33 BLE's Cortex-M4 unless `--board`) with its own toolchain and
run in its emulator: its flash (model code + constant tables) and RAM (data + bss, which holds its
activations, + the stack measured during an inference) are measured, not estimated. Models are
chosen on validation accuracy only; the test accuracy of each is reported beside it.

Results are appended to DIR/search.json as they come, so a stopped search resumes where it was
(with the same training recipe: a different one is refused, never mixed in); the best model that
fits is kept as a normal run folder, DIR/best. Every candidate is trained with the base recipe's
training (the lesson's, or `RECIPES["better"]`); the search varies only the design.

    rows = search(load_dataset(), Budget(flash=8 * 1024, ram=2 * 1024), Path("runs/search-8k"))
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from . import search_space
from .errors import TinyDigitsError
from .model import Recipe
from .search_space import Budget, estimate, flash_estimate  # noqa: F401  (the budget and the estimates live there)

DESIGN_FIELDS = ("hidden", "activation", "loss", "input_size", "validation_split", "conv", "kernel", "pool", "separable",
                 "stride", "weight_bits")  # what the search varies
VALIDATION_SPLIT = 1 / 6  # the last 10,000 training images choose the model; the test set only reports
EMULATOR_IMAGES = 20      # images run on the emulated chip per candidate (stack depth and a sanity check)
SPACES = ("all", "conv", "dense")


def candidates(budget: Budget, base: Recipe, space: str = "all") -> list[Recipe]:
    """search_space.candidates, each holding out the validation split that chooses the model."""
    return [r.replace(validation_split=VALIDATION_SPLIT) for r in search_space.candidates(budget, base, space)]


def training_of(recipe: Recipe) -> dict:
    """The recipe's training alone (what every candidate of one search shares)."""
    return {k: v for k, v in recipe.to_dict().items() if k not in DESIGN_FIELDS}


def evaluate_candidate(recipe: Recipe, ds, verbose: int = 0, board: str = "nano33ble") -> tuple[dict, object, bytes]:
    """Train, convert, generate C, build for `board`, run in its emulator: the candidate's row, model and int8
    bytes. A candidate too big to link for the board still gets its row (its flash, and RAM without a stack)."""
    from .codegen import read_facts, write_standalone
    from .convert import calibration_images, to_tflite
    from .runtimes import LiteRT
    from .targets import family, find
    from .train import split_train, train

    result = train(recipe, ds, verbose=verbose)
    x_train, _, x_val, y_val = split_train(ds, recipe.validation_split)
    int8 = to_tflite(result.model, calibration_images(x_train, 300, recipe.seed), weight_bits=recipe.weight_bits)
    lite = LiteRT(int8)
    val_accuracy = float((lite.predict(x_val).argmax(1) == y_val).mean())
    test_accuracy = float((lite.predict(ds.x_test).argmax(1) == ds.y_test).mean())
    target = find(board)
    tools = family(target)
    with tempfile.TemporaryDirectory() as tmp:
        c_dir = Path(tmp) / "c"
        write_standalone(int8, c_dir, recipe.name, "tinydigits search")
        facts = read_facts(c_dir)
        firmware = tools.build(c_dir, target, Path(tmp) / "firmware")
        q = lite.prepare(x_val[:EMULATOR_IMAGES])
        outputs, figures = tools.run(firmware, q) if firmware.elf is not None else (None, {})
    row = {
        "name": recipe.name, "recipe": recipe.to_dict(), "params": result.metrics["params"], "board": board,
        "flash_bytes": firmware.flash_bytes,
        "ram_bytes": firmware.static_ram_bytes + figures.get("stack_bytes", 0),
        "macs": facts["macs"], "arena_bytes": facts["arena_bytes"],
        "validation_accuracy": val_accuracy, "test_accuracy": test_accuracy,
        "float_test_accuracy": result.metrics["test_accuracy"], "train_seconds": result.metrics["train_seconds"],
    }
    if outputs is None:
        row["problem"] = firmware.link_error
    else:
        count = "cycles_per_inference" if "cycles_per_inference" in figures else "instructions_per_inference"
        row[count] = figures[count]
        row["emulator_agrees_with_litert"] = float((outputs.argmax(1) == lite.run(q).argmax(1)).mean())
    return row, result, int8


def mark_front(rows: list[dict]) -> list[dict]:
    """on_front: no other candidate is both smaller in flash and at least as accurate on validation."""
    for r in rows:
        r["on_front"] = not any(o is not r and o["flash_bytes"] <= r["flash_bytes"] and
                                o["validation_accuracy"] >= r["validation_accuracy"] and
                                (o["flash_bytes"], o["validation_accuracy"]) != (r["flash_bytes"], r["validation_accuracy"])
                                for o in rows)
    return rows


def best(rows: list[dict], budget: Budget) -> dict | None:
    fitting = [r for r in rows if budget.fits(r)]
    return max(fitting, key=lambda r: (r["validation_accuracy"], -r["flash_bytes"])) if fitting else None


class Candidate(BaseModel):
    """One row of DIR/search.json: what resuming, choosing and reporting read (more fields are kept)."""

    model_config = ConfigDict(extra="allow")
    name: str
    flash_bytes: int = Field(ge=0)
    ram_bytes: int = Field(ge=0)
    validation_accuracy: float = Field(ge=0, le=1)
    test_accuracy: float = Field(ge=0, le=1)


def recipe_of(candidate: Candidate, path: Path) -> Recipe:
    """The recipe a search.json row was trained with (the lesson's where the row does not say)."""
    recorded = candidate.model_dump().get("recipe", {})
    try:
        return Recipe.from_dict(recorded if isinstance(recorded, dict) else {})
    except (TypeError, ValueError) as e:
        raise TinyDigitsError(f"{path}: cannot resume from it (recipe of {candidate.name!r}: {e})") from None


class Progress(BaseModel):
    candidates: list[Candidate]
    training: dict | None = None  # what every candidate was trained with; absent: its first candidate's recipe says
    board: str = "nano33ble"      # where every candidate was measured (before --board: the Nano 33 BLE)


def load_progress(out: Path, base: Recipe = Recipe(), board: str = "nano33ble") -> list[dict]:
    """The candidates a previous search of `out` measured ([] if none), validated; refused if they
    were trained differently from `base` or measured on another board."""
    path = out / "search.json"
    if not path.exists():
        return []
    try:
        progress = Progress.model_validate_json(path.read_bytes())
    except OSError as e:
        raise TinyDigitsError(f"{path}: cannot read it ({e.strerror})") from None
    except ValidationError as e:
        first = e.errors()[0]
        where = ".".join(str(part) for part in first["loc"]) or "top level"
        raise TinyDigitsError(f"{path}: cannot resume from it ({where}: {first['msg']})") from None
    if progress.training:
        training = progress.training
    elif progress.candidates:  # written before search.json recorded it: the candidates' own recipe says
        training = training_of(recipe_of(progress.candidates[0], path))
    else:
        training = training_of(Recipe())
    if progress.board != board:
        raise TinyDigitsError(f"{out}: its candidates were measured on {progress.board}, not {board}; "
                              f"resume with --board {progress.board}, or choose another --out")
    changed = [f"{k} {training.get(k)!r} -> {v!r}" for k, v in training_of(base).items() if training.get(k) != v]
    if changed:
        raise TinyDigitsError(f"{out}: its candidates were trained differently ({', '.join(changed)}); "
                              "resume with the same training, or choose another --out")
    return [c.model_dump() for c in progress.candidates]


def save_progress(out: Path, rows: list[dict], budget: Budget, base: Recipe) -> None:
    from .artifacts import save_figure, write_json
    from .plots import pareto

    mark_front(rows)
    chosen = best(rows, budget)
    write_json(out / "search.json", {"budget": {"flash_bytes": budget.flash, "ram_bytes": budget.ram}, "board": budget.board,
                                     "selection": "highest int8 validation accuracy that fits; test accuracy only reported",
                                     "training": training_of(base),
                                     "best": chosen["name"] if chosen else None, "candidates": rows})
    save_figure(pareto(rows, budget.flash, chosen), out / "pareto.png")


def search(ds, budget: Budget, out: Path, base: Recipe = Recipe(), minutes: float = 10.0,
           max_candidates: int | None = None, progress=print, command: str = "tinydigits search",
           space: str = "all") -> list[dict]:
    """Try candidates until time or candidates run out; resumable from DIR/search.json. A second search
    into DIR while this one runs stops with one line (two would overwrite each other's search.json)."""
    from .atomic import claim

    with claim(out, wait=False, command=command):
        return _search(ds, budget, out, base, minutes, max_candidates, progress, command, space)


def _search(ds, budget: Budget, out: Path, base: Recipe, minutes: float, max_candidates: int | None, progress,
            command: str, space: str) -> list[dict]:
    from .artifacts import resumable_folder
    from .targets import family, find

    family(find(budget.board)).require()
    out = resumable_folder(out, "search", command)
    rows = load_progress(out, base, budget.board)
    done = {r["name"] for r in rows}
    todo = [r for r in candidates(budget, base, space) if r.name not in done][:max_candidates]
    if rows:
        progress(f"resuming: {len(rows)} candidates already tried, {len(todo)} to go")
    deadline = time.monotonic() + 60 * minutes
    for recipe in todo:
        if time.monotonic() > deadline:
            progress(f"time budget of {minutes} min reached")
            break
        row, result, int8 = evaluate_candidate(recipe, ds, board=budget.board)
        previous = best(rows, budget)
        rows.append(row)
        if budget.fits(row) and (previous is None or best(rows, budget) is row):
            save_best(result, int8, out, command)
        save_progress(out, rows, budget, base)
        progress(row_line(row, budget))
    if rows:
        save_progress(out, rows, budget, base)
    return rows


def save_best(result, int8: bytes, out: Path, command: str) -> Path:
    """DIR/best: the chosen candidate as a normal run folder, with its int8 model, written as train writes runs."""
    from .train import save_run

    return save_run(result, Path(out) / "best", force=True, int8_model=int8, command=command)


def design(row: dict) -> str:
    """The candidate's network, `10px-h128x96x32-relu-ce` (its training is the search's, in search.json)."""
    return Recipe.from_dict(row["recipe"]).design


def row_line(r: dict, budget: Budget) -> str:
    fits = "fits" if budget.fits(r) else "too big"
    return (f"{design(r):30} flash {r['flash_bytes']:>7,} B  RAM {r['ram_bytes']:>6,} B  "
            f"val {r['validation_accuracy']:.4f}  test {r['test_accuracy']:.4f}  {fits}")


def table(rows: list[dict], budget: Budget) -> str:
    chosen = best(rows, budget)
    lines = ["| candidate | flash B | RAM B | int8 val acc | int8 test acc | front | fits |", "|---|---:|---:|---:|---:|:-:|:-:|"]
    for r in sorted(rows, key=lambda r: r["flash_bytes"]):
        mark = " **(best)**" if r is chosen else ""
        lines.append(f"| {design(r)}{mark} | {r['flash_bytes']:,} | {r['ram_bytes']:,} | {r['validation_accuracy']:.4f} | "
                     f"{r['test_accuracy']:.4f} | {'x' if r.get('on_front') else ''} | {'x' if budget.fits(r) else ''} |")
    return "\n".join(lines)
