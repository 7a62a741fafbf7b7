"""The `tinydigits` command: flags in, library calls, printed results, exit codes.

Exit 0 on success; exit 2 with one `error: ...` line on stderr for bad input (no traceback).
Every subcommand's --help has examples.
"""
from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from pathlib import Path

from . import single_thread_xla
from .artifacts import preflight
from .atomic import claim
from .data import default_cache_dir
from .errors import TinyDigitsError
from .interrupt import ctrl_c_stops
from .runs import Run


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error and exit 2."""

    def error(self, message):
        raise TinyDigitsError(f"{self.prog}: {message}")


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _data_flags(p):
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--data-dir", type=Path, help="a folder holding the four IDX files (gzip or plain)")


def _design_flags(p):
    from .model import ACTIVATIONS, LOSSES

    p.add_argument("--hidden", type=int, nargs="+", help="hidden layer sizes (default 20; several = several layers)")
    p.add_argument("--activation", choices=ACTIVATIONS, help="hidden activation (default relu)")
    p.add_argument("--loss", choices=LOSSES, help="crossentropy (default) or mse on one-hot targets")


def _training_flags(p, recipe_default="lesson"):
    from .model import RECIPES, SCHEDULES

    p.add_argument("--recipe", choices=sorted(RECIPES), default=recipe_default,
                   help=f"named training the flags below change (default {recipe_default}; better: "
                        + ", ".join(f"{k}={v}" for k, v in RECIPES["better"].items()) + ")")
    p.add_argument("--epochs", type=int, help="passes over the training set (lesson: 20)")
    p.add_argument("--batch-size", type=int, help="lesson: 32")
    p.add_argument("--lr", type=float, help="Adam learning rate (lesson: 0.001); the peak for a schedule")
    p.add_argument("--schedule", choices=SCHEDULES, help="learning rate per step (lesson: constant)")
    p.add_argument("--shift", type=float, help="augmentation: random shift up to N pixels (training only)")
    p.add_argument("--rotate", type=float, help="augmentation: random rotation up to N degrees")
    p.add_argument("--scale", type=float, help="augmentation: random zoom by up to this fraction (0.1: 90-110%%)")
    p.add_argument("--elastic", type=float, help="augmentation: elastic distortion strength in pixels")
    p.add_argument("--label-smoothing", type=float, help="targets (1-e) one-hot + e/10 (default 0)")
    p.add_argument("--teacher", type=Path, help="a run folder to distill from (a larger trained model)")
    p.add_argument("--distill-weight", type=float, help="with --teacher: the share of the loss that follows it (default 0.5)")
    p.add_argument("--qat-epochs", type=int, help="the last N epochs train through int8-rounded weights")
    p.add_argument("--seed", type=int, help="random seed (default 0); same seed, same result on CPU")


def _recipe_from(args):
    """The named recipe (--recipe), then each flag given; bad values are refused by Recipe with one line."""
    from .model import RECIPES, Recipe

    if getattr(args, "teacher", None) is not None and not (args.teacher / "model.keras").is_file():
        raise TinyDigitsError(f"--teacher {args.teacher}: not a run folder (no model.keras)")
    fields = {"hidden": getattr(args, "hidden", None), "activation": getattr(args, "activation", None),
              "loss": getattr(args, "loss", None), "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "schedule": args.schedule, "shift": args.shift, "rotate": args.rotate, "scale": args.scale,
              "elastic": args.elastic, "label_smoothing": args.label_smoothing,
              "teacher": str(args.teacher.resolve()) if args.teacher is not None else None,
              "distill_weight": args.distill_weight, "qat_epochs": args.qat_epochs, "seed": args.seed,
              "dataset": args.dataset}
    named = RECIPES[args.recipe]
    if args.epochs is not None and args.qat_epochs is None and named.get("qat_epochs", 0) > args.epochs:
        fields["qat_epochs"] = args.epochs  # the named recipe's QAT tail, cut to the epochs asked for
    return Recipe(**named).replace(**{k: v for k, v in fields.items() if v is not None})


def _load_data(args):
    from .data import load_dataset

    return load_dataset(args.dataset, data_dir=args.data_dir)


# ---------------------------------------------------------------------------------- commands

def cmd_train(args):
    from .train import save_run, summary_line, train

    recipe = _recipe_from(args)
    out = args.out or Path("runs") / time.strftime("%Y%m%d-%H%M%S")
    with claim(out, wait=False, command=args.command_line):  # a second `train --out` there stops with one line
        preflight(out, args.force, kind="run")  # fail before training, not after
        ds = _load_data(args)
        print(f"training {recipe.name} on {ds.name} ({len(ds.x_train):,} train / {len(ds.x_test):,} test images), "
              f"{recipe.epochs} epochs of batch {recipe.batch_size}", flush=True)
        result = train(recipe, ds, verbose=0 if args.quiet else 1)
        save_run(result, out, force=args.force, command=args.command_line)
    print(summary_line(result, out))


def cmd_evaluate(args):
    from .evaluate import evaluate_run, format_report

    run = Run(args.run)
    report, class_names = evaluate_run(run, args.command_line)
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report, class_names))
        print(f"\nwrote {run.paths.confusion}, {run.paths.mistakes}, {run.paths.evaluation}")


def cmd_predict(args):
    import numpy as np

    from .predict import format_probabilities, predict_digits, predict_files

    if args.index is None and not args.images:
        raise TinyDigitsError("predict: give --index N (a test image) or one or more image files")
    if args.top < 1:
        raise TinyDigitsError(f"--top must be at least 1, got {args.top}")
    run = Run(args.run)
    if args.save_preprocessed is not None and args.index is None:  # a folder the user adds files to
        run.model()  # a damaged model is reported before the folder is made
        try:
            args.save_preprocessed.mkdir(parents=True, exist_ok=True)
        except OSError as e:
            raise TinyDigitsError(f"--save-preprocessed {args.save_preprocessed}: cannot be created "
                                  f"({e.strerror or type(e).__name__})") from None
    if args.index is not None:
        ds = run.dataset()
        if not 0 <= args.index < len(ds.x_test):
            raise TinyDigitsError(f"--index {args.index} is outside the test set (0..{len(ds.x_test) - 1})")
        probs = predict_digits(run.model(), ds.x_test[args.index])[0]
        label = int(ds.y_test[args.index])
        if args.json:
            print(json.dumps({"index": args.index, "label": label, "digit": int(probs.argmax()),
                              "probabilities": [round(float(p), 6) for p in probs]}))
            return
        np.set_printoptions(precision=4, suppress=True)
        print(f"test image {args.index}, true label {label}")
        print(f"softmax probabilities: {probs}  (sum {probs.sum():.4f})")
        print(f"predicted {int(probs.argmax())} with confidence {probs.max():.4f}")
        print(format_probabilities(probs, args.top, ds.class_names))
        return
    results = predict_files(run.model(), args.images, args.save_preprocessed)
    if args.json:
        print(json.dumps(results))
    for r in results:  # a file that is not an image is reported on its own line; the others are still predicted
        if "error" in r:
            print(f"error: {r['error']}", file=sys.stderr)
            continue
        if r["blank"]:
            print(f"warning: {r['file']}: no ink found (a blank or too faint image); its digit is a guess", file=sys.stderr)
        if not args.json:
            probs = np.array(r["probabilities"])
            print(f"{r['file']}: {r['digit']} ({probs.max():.4f}){'  [blank image]' if r['blank'] else ''}")
            print(format_probabilities(probs, args.top))
    return 2 if any("error" in r for r in results) else 0


def cmd_convert(args):
    from .verify import convert_run, explain_quantization, format_forms

    run = Run(args.run)
    report = convert_run(run, calibration=args.calibration, command=args.command_line)
    print(format_forms(report))
    print("\nquantization (int8 = round(real / scale) + zero_point):")
    print(explain_quantization(report["quantization"]))
    flips = report["flips"]
    print(f"\n{len(flips)} test images change their digit from float to int8"
          + (f": {', '.join(str(f['index']) for f in flips[:12])}{' ...' if len(flips) > 12 else ''}" if flips else ""))
    print(f"wrote {run.paths.float_model}, {run.paths.int8_model}, {run.paths.deploy}, {run.paths.flips}")


def cmd_export_c(args):
    from .export import export_c

    command = f"tinydigits export-c {args.run} --out {args.out}"  # the banner of every file: no --force in it
    files = export_c(Run(args.run), args.out, command, force=args.force)
    for path in files:
        print(f"{path}  ({path.stat().st_size:,} bytes)")


def cmd_export_web(args):
    from .web import export_web

    command = f"tinydigits export-web {args.run} --out {args.out}"
    files = export_web(Run(args.run), args.out, command, force=args.force)
    for path in files:
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    total = sum(path.stat().st_size for path in files)
    print(f"{len(files)} files, {total / 1024:.0f} KB; try it: python -m http.server -d {args.out}")


def cmd_export_arduino(args):
    from .export import ARDUINO_EXAMPLE, export_arduino

    command = f"tinydigits export-arduino {args.run} --out {args.out}"
    for path in export_arduino(Run(args.run), args.out, command, force=args.force):
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    print(f"an Arduino library: copy {args.out} into your Arduino libraries folder (or Sketch > Include Library > "
          f"Add .ZIP Library), then File > Examples > TinyDigits > {ARDUINO_EXAMPLE}")


def cmd_mcu(args):
    from .mcu import format_report, run_on_mcu

    run = Run(args.run)
    report = run_on_mcu(run, args.images, args.command_line)
    print(format_report(report))
    print(f"wrote {run.paths.mcu}")


def cmd_boards(args):
    from .boards import format_boards, measure_boards

    run = Run(args.run)
    report = measure_boards(run, args.board, args.images, args.command_line)  # raises if no board could be built
    if args.json:
        print(json.dumps(report))
        return
    print(format_boards(report))
    print(f"wrote {run.paths.boards} and {run.paths.firmware}/<board>/")


def cmd_compare(args):
    from .compare import PRESETS, compare, default_out, parse_variant, table, variants, variants_from_file, write_report

    changes = list(PRESETS[args.preset]) if args.preset else []
    changes += [parse_variant(v) for v in args.variant or []]
    if args.file:
        changes += variants_from_file(args.file)
    if not changes:
        raise TinyDigitsError("compare: give --preset, --variant or --file")
    if args.jobs < 1 or args.seeds < 1:
        raise TinyDigitsError(f"--jobs and --seeds must be at least 1, got {args.jobs} and {args.seeds}")
    base = _recipe_from(args)
    recipes = variants(changes, base)
    out = args.out or default_out()
    with claim(out, wait=False, command=args.command_line):  # a second `compare --out` there stops with one line
        preflight(out, args.force, kind="compare")
        ds = None if args.jobs > 1 else _load_data(args)
        seeds = f"seed {base.seed}" if args.seeds == 1 else f"seeds {base.seed}-{base.seed + args.seeds - 1}"
        print(f"comparing {len(recipes)} variants, {base.epochs} epochs each, {seeds}", flush=True)
        rows = compare(recipes, ds, jobs=args.jobs, progress=lambda line: print(line, flush=True),
                       data_dir=args.data_dir, seeds=args.seeds)
        write_report(rows, out, force=args.force, title=f"tinydigits compare ({args.preset or 'custom'})",
                     command=args.command_line)
    print()
    print(table(rows))
    print(f"\nwrote {out}/comparison.md, comparison.json, comparison.png, calibration.png")


def cmd_search(args):
    from .search import Budget, best, load_progress, search, table

    if args.flash_kb <= 0 or args.ram_kb <= 0 or args.minutes <= 0:
        raise TinyDigitsError("--flash-kb, --ram-kb and --minutes must be positive")
    if args.max_candidates is not None and args.max_candidates < 1:
        raise TinyDigitsError(f"--max-candidates must be at least 1, got {args.max_candidates}")
    budget = Budget(flash=int(args.flash_kb * 1024), ram=int(args.ram_kb * 1024))
    base = _recipe_from(args)
    out = args.out or Path("runs") / f"search-{args.flash_kb:g}k"
    with claim(out, wait=False, command=args.command_line):  # a second search into DIR stops with one line
        preflight(out, resume="search")
        load_progress(out, base)  # a folder searched with another training is refused before any work
    ds = _load_data(args)
    print(f"searching designs for <= {budget.flash:,} B flash and <= {budget.ram:,} B RAM, "
          f"{args.recipe} recipe{f' ({base.training_tag[1:]})' if base.training_tag else ''}, "
          f"up to {args.minutes:g} min -> {out}", flush=True)
    if args.engine == "ray":
        from .search_ray import search_with_ray

        rows = search_with_ray(ds, budget, out, base, args.minutes, args.max_candidates,
                               progress=lambda l: print(l, flush=True), data_dir=args.data_dir,
                               command=args.command_line)
    else:
        rows = search(ds, budget, out, base, args.minutes, args.max_candidates, progress=lambda l: print(l, flush=True),
                      command=args.command_line)
    print()
    print(table(rows, budget))
    chosen = best(rows, budget)
    if chosen is None:
        print("\nno candidate fits the budget")
        return
    print(f"\nbest under budget: {chosen['name']}: int8 test accuracy {chosen['test_accuracy']:.4f} "
          f"(validation {chosen['validation_accuracy']:.4f}), {chosen['flash_bytes']:,} B flash, {chosen['ram_bytes']:,} B RAM")
    print(f"saved as a run folder: {out / 'best'}; wrote {out / 'search.json'}, {out / 'pareto.png'}")


def cmd_serve(args):
    from .serve import serve

    serve(Run(args.run), args.host, args.port, args.workers, announce=lambda line: print(line, flush=True))


# ------------------------------------------------------------------------------------ parser

def build_parser() -> Parser:
    parser = Parser(prog="tinydigits", description="From the first TinyML lesson to a digit classifier on a microcontroller.",
                    formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True, parser_class=Parser)

    def command(name, func, help, examples):
        p = sub.add_parser(name, help=help, description=help, epilog=_examples(*examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.set_defaults(func=func)
        return p

    p = command("train", cmd_train, "train a model (default: the lesson's recipe) and write a run folder",
                ["tinydigits train --out runs/lesson", "tinydigits train --hidden 64 32 --activation tanh --epochs 5 --out runs/deep",
                 "tinydigits train --loss mse --out runs/mse", "tinydigits train --dataset fashion-mnist --out runs/fashion",
                 "tinydigits train --recipe better --out runs/better   # 60 epochs, one-cycle, augmentation, QAT",
                 "tinydigits train --schedule onecycle --lr 0.003 --shift 1 --rotate 5 --out runs/onecycle"])
    _design_flags(p)
    _training_flags(p)
    _data_flags(p)
    p.add_argument("--out", type=Path, help="run folder (default runs/<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")
    p.add_argument("--quiet", action="store_true", help="no Keras progress bar")

    p = command("evaluate", cmd_evaluate, "test accuracy, per-class precision/recall, confusion matrix, worst mistakes",
                ["tinydigits evaluate runs/lesson", "tinydigits evaluate runs/lesson --json"])
    p.add_argument("run", type=Path)
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")

    p = command("predict", cmd_predict, "softmax probabilities of a test image or of your own image files",
                ["tinydigits predict runs/lesson --index 0", "tinydigits predict runs/lesson my_seven.png --top 3",
                 "tinydigits predict runs/lesson *.png --json --save-preprocessed seen/"])
    p.add_argument("run", type=Path)
    p.add_argument("images", nargs="*", type=Path, help="PNG/JPEG/BMP/GIF files, any size, either polarity")
    p.add_argument("--index", type=int, help="a test-set image instead of files")
    p.add_argument("--top", type=int, default=10, help="show the K most likely digits")
    p.add_argument("--json", action="store_true")
    p.add_argument("--save-preprocessed", type=Path, metavar="DIR", help="write the 28x28 image the model saw")

    p = command("convert", cmd_convert, "int8 and float32 .tflite, each form scored on the test set, TFLM arena size",
                ["tinydigits convert runs/lesson", "tinydigits convert runs/lesson --calibration 1000"])
    p.add_argument("run", type=Path)
    p.add_argument("--calibration", type=int, default=500, help="training images used to calibrate int8 ranges")

    p = command("export-c", cmd_export_c, "the int8 model as a TFLite Micro bundle and as standalone C99",
                ["tinydigits export-c runs/lesson --out firmware/", "make -C firmware/c && firmware/c/tinydigits digit.raw"])
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for tflm/ and c/")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")

    p = command("export-web", cmd_export_web, "a static web site: draw a digit, the int8 C runs in the browser as WebAssembly",
                ["tinydigits export-web runs/lesson --out site/", "python -m http.server -d site/   # then open http://localhost:8000/"])
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True, help="folder for the site (index.html, tinydigits.wasm, ...)")
    p.add_argument("--force", action="store_true", help="replace an existing site folder that tinydigits wrote")

    p = command("export-arduino", cmd_export_arduino, "the int8 model as an Arduino library with an example sketch "
                "(Uno, Mega, Nano 33 BLE Sense, ...): digits in over Serial, digit and probabilities out",
                ["tinydigits export-arduino runs/lesson --out ~/Arduino/libraries/TinyDigits"])
    p.add_argument("run", type=Path)
    p.add_argument("--out", type=Path, required=True, help="the library folder to write")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")

    p = command("mcu", cmd_mcu, "build the standalone C for Cortex-M4 and run it in QEMU: flash, RAM, instructions",
                ["tinydigits mcu runs/lesson", "tinydigits mcu runs/lesson --images 1000"])
    p.add_argument("run", type=Path)
    p.add_argument("--images", type=int, default=300, help="test images to run on the emulated chip")

    from .targets import BOARDS

    p = command("boards", cmd_boards, "build the model for real boards (Uno, Mega, micro:bit, Pico, Nano 33 BLE, ...) and "
                "run it in their emulators: flash, RAM, fits, latency, same answers as the host",
                ["tinydigits boards runs/lesson", "tinydigits boards runs/lesson --board uno --board pico --images 300",
                 "tinydigits boards runs/lesson --json"])
    p.add_argument("run", type=Path)
    p.add_argument("--board", action="append", metavar="NAME",
                   help=f"a board (repeatable; default all): {', '.join(b.key for b in BOARDS)}")
    p.add_argument("--images", type=int, default=100, help="test images to run on each emulated chip (default 100)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")

    from .compare import PRESETS

    p = command("compare", cmd_compare, "train variants side by side: the lesson's claims in numbers and plots",
                ["tinydigits compare --preset lesson", "tinydigits compare --preset activation --epochs 5 --out runs/act",
                 "tinydigits compare --preset recipe --seeds 3   # what each training technique buys on 784-20-10",
                 'tinydigits compare --variant "hidden=64 activation=tanh" --variant "hidden=64,32" --jobs 2',
                 "tinydigits compare --file variants.toml   # [[variant]] tables: hidden = [64, 32], lr = 0.01"])
    p.add_argument("--preset", choices=sorted(PRESETS))
    p.add_argument("--variant", action="append", metavar="'KEY=VALUE ...'", help="a custom variant (repeatable)")
    p.add_argument("--file", type=Path, help="variants from a JSON list or a TOML file of [[variant]] tables")
    _training_flags(p)
    p.add_argument("--seeds", type=int, default=1, help="train each variant with N seeds (from --seed): mean and std")
    p.add_argument("--jobs", type=int, default=1, help="variants trained in parallel processes")
    p.add_argument("--out", type=Path, help="report folder (default runs/compare-<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")
    _data_flags(p)

    p = command("search", cmd_search, "the most accurate int8 model whose measured flash and RAM fit a budget",
                ["tinydigits search --flash-kb 8 --ram-kb 2", "tinydigits search --flash-kb 32 --minutes 30 --out runs/search-32k",
                 "tinydigits search --flash-kb 8 --out runs/search-8k   # again: resumes where it stopped",
                 "tinydigits search --flash-kb 8 --recipe lesson        # every candidate trained as the lesson",
                 "tinydigits search --flash-kb 8 --engine ray            # trials on a Ray cluster (pip install tinydigits[ray])"])
    p.add_argument("--flash-kb", type=float, required=True, help="flash budget for model code + weights (KiB)")
    p.add_argument("--ram-kb", type=float, default=2.0, help="RAM budget: data + bss + inference stack (KiB, default 2)")
    p.add_argument("--minutes", type=float, default=10.0, help="time budget (default 10)")
    _training_flags(p, recipe_default="better")
    p.add_argument("--max-candidates", type=int, help="stop after this many new candidates")
    p.add_argument("--engine", choices=("local", "ray"), default="local", help="where trials run (default local)")
    p.add_argument("--out", type=Path, help="results folder (default runs/search-<F>k); resumed if it exists")
    _data_flags(p)

    p = command("serve", cmd_serve, "a local web app: draw a digit and watch the probabilities; plus an HTTP API",
                ["tinydigits serve runs/lesson", "tinydigits serve runs/lesson --port 8080",
                 "curl -s localhost:8000/api/predict -H 'Content-Type: application/json' -d @pixels.json"])
    p.add_argument("run", type=Path)
    p.add_argument("--host", default="127.0.0.1", help="default 127.0.0.1 (this machine only)")
    p.add_argument("--port", type=int, default=8000)
    p.add_argument("--workers", type=int, default=1, help="server processes (each loads the models)")
    return parser


def _process_settings() -> None:
    """What the CLI, a process of its own, sets for itself and the workers it starts; a library import sets neither.

    It also keeps XLA's compiled training programs between runs in ~/.cache/tinydigits/xla (JAX's
    persistent cache; JAX_COMPILATION_CACHE_DIR moves it): the second `train` of a design skips the
    compilation, about a third of the lesson's training time. Only before JAX is imported.
    """
    os.environ["MPLBACKEND"] = "Agg"  # figures go to files, never to a window
    if "matplotlib" in sys.modules:  # already imported (the CLI called from Python): switch it directly
        sys.modules["matplotlib"].use("Agg")
    single_thread_xla()
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(default_cache_dir() / "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")


def main(argv=None) -> int:
    _process_settings()
    argv = sys.argv[1:] if argv is None else [str(a) for a in argv]
    try:
        args = build_parser().parse_args(argv)
        args.command_line = "tinydigits " + shlex.join(argv)  # recorded in each folder's manifest
        with ctrl_c_stops():
            code = args.func(args) or 0  # a command returns 2 when it reported its own errors
    except TinyDigitsError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    return code
