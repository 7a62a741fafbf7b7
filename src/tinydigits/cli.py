"""The `tinydigits` command: flags in, library calls, printed results, exit codes.

Exit 0 on success; exit 2 with one `error: ...` line on stderr for bad input (no traceback).
`tinydigits` alone lists the commands with an example each (exit 0); every command's --help has
its flags and more examples. Options may come before or after the positionals
(`tinydigits predict RUN --json a.png`). stderr carries only tinydigits' own lines unless
`--verbose` (process.py). Bad flags and a missing run folder are refused before Keras, JAX or
TensorFlow is imported: the commands import what they need inside their functions.

A new command: a `cmd_NAME(args)` function and a `command("NAME", cmd_NAME, help, examples)`
block in build_parser; the first example is the one the bare usage shows.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import shlex
import sys
import time
from pathlib import Path

from . import __version__, process
from .artifacts import preflight
from .atomic import claim
from .errors import TinyDigitsError
from .interrupt import ctrl_c_stops

DESCRIPTION = "From the first TinyML lesson to a digit classifier on a microcontroller."


class Parser(argparse.ArgumentParser):
    """argparse with the project's one-line error and exit 2."""

    def error(self, message):
        raise TinyDigitsError(f"{self.prog}: {message}")


def open_run(folder: Path):
    """runs.Run(folder), imported on first use: runs.py imports numpy, which the supervising parent
    process (process.supervise) does not need."""
    from .runs import Run

    return Run(folder)


def board_key(name: str) -> str:
    """--board NAME: any case ("Uno"); an unknown name is refused with the list of known ones."""
    from .targets import find

    try:
        return find(name).key
    except TinyDigitsError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def _examples(*lines: str) -> str:
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


def _data_flags(p):
    p.add_argument("--dataset", default="mnist", help="mnist (default) or fashion-mnist")
    p.add_argument("--data-dir", type=Path, help="a folder holding the four IDX files (gzip or plain)")


def _design_flags(p):
    from .model import ACTIVATIONS, INPUT_SIZES, LOSSES, POOLS

    p.add_argument("--hidden", type=int, nargs="*", help="hidden layer sizes (default 20; several = several layers; "
                                                           "none: no hidden layer)")
    p.add_argument("--conv", type=int, nargs="+", metavar="FILTERS",
                   help="convolution blocks before the dense layers, each a 3x3 Conv2D with this many filters and a 2x2 pool")
    p.add_argument("--kernel", type=int, help="convolution kernel side (default 3)")
    p.add_argument("--pool", choices=POOLS, help="the pooling after each convolution (default max)")
    p.add_argument("--separable", action="store_true", default=None,
                   help="blocks after the first as depthwise + pointwise convolutions (SeparableConv2D)")
    p.add_argument("--stride", type=int, choices=(1, 2), help="2: a stride-2 convolution instead of convolution + pooling")
    p.add_argument("--input-size", type=int, choices=INPUT_SIZES, metavar="PX",
                   help="pixels per side the network sees, downsampled in the graph (28 default; 14, 7: average-pooled; "
                        "12, 10: pooled, then the border cropped): the model still takes the 28x28 image")
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
    p.add_argument("--slant", type=float, help="augmentation: rows sheared by up to N degrees, as hands slant")
    p.add_argument("--thickness", type=float, help="augmentation: strokes thickened or thinned by up to N pixels")
    p.add_argument("--extra-data", type=Path, metavar="DIR", help="your own digits mixed into training: "
                   "DIR/<digit>/*.png|jpg or DIR/labels.csv (what the web page's collect mode saves)")
    p.add_argument("--extra-repeat", type=int, help="with --extra-data: each of those images N times per epoch (default 1)")
    p.add_argument("--init", type=Path, metavar="RUN", help="start from this run's weights (fine-tuning; same design)")
    p.add_argument("--label-smoothing", type=float, help="targets (1-e) one-hot + e/10 (default 0)")
    p.add_argument("--teacher", type=Path, help="a run folder to distill from (a larger trained model)")
    p.add_argument("--distill-weight", type=float, help="with --teacher: the share of the loss that follows it (default 0.5)")
    p.add_argument("--weight-bits", type=int, choices=(8, 4, 2), help="bits per stored weight: 8 (default), 4 (int4, "
                   "two per byte) or 2 (ternary); fewer than 8 train the last half of the epochs quantization-aware")
    p.add_argument("--qat-epochs", type=int, help="the last N epochs train through the weights as stored (rounded to "
                   "--weight-bits)")
    p.add_argument("--seed", type=int, help="random seed (default 0); same seed, same result on CPU")


def _recipe_from(args):
    """The named recipe (--recipe), then each flag given; bad values are refused by Recipe with one line."""
    from .model import RECIPES, Recipe

    for flag in ("teacher", "init"):
        folder = getattr(args, flag, None)
        if folder is not None and not (folder / "model.keras").is_file():
            raise TinyDigitsError(f"--{flag} {folder}: not a run folder (no model.keras)")
    if args.extra_data is not None:
        from .folders import check_image_folder

        check_image_folder(args.extra_data)  # a folder without labelled images is refused before training
    fields = {"hidden": getattr(args, "hidden", None), "activation": getattr(args, "activation", None),
              **{k: getattr(args, k, None) for k in ("conv", "kernel", "pool", "separable", "stride", "input_size")},
              "loss": getattr(args, "loss", None), "epochs": args.epochs, "batch_size": args.batch_size,
              "lr": args.lr, "schedule": args.schedule, "shift": args.shift, "rotate": args.rotate, "scale": args.scale,
              "elastic": args.elastic, "slant": args.slant, "thickness": args.thickness,
              "extra_data": str(args.extra_data.resolve()) if args.extra_data is not None else None,
              "extra_repeat": args.extra_repeat, "init": str(args.init.resolve()) if args.init is not None else None,
              "label_smoothing": args.label_smoothing,
              "teacher": str(args.teacher.resolve()) if args.teacher is not None else None,
              "distill_weight": args.distill_weight, "qat_epochs": args.qat_epochs,
              "weight_bits": args.weight_bits, "seed": args.seed,
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
        process.import_keras()
        print(f"training {recipe.name} on {ds.name} ({len(ds.x_train):,} train / {len(ds.x_test):,} test images), "
              f"{recipe.epochs} epochs of batch {recipe.batch_size}", flush=True)
        result = train(recipe, ds, verbose=0 if args.quiet else 1)
        save_run(result, out, force=args.force, command=args.command_line)
    print(summary_line(result, out))


def cmd_import(args):
    from .import_model import import_model

    out = args.out or Path("runs") / Path(args.model).stem
    metrics = import_model(args.model, out, args.dataset, args.data_dir, args.pixels, args.command_line, args.force)
    extra = f", int8 {metrics['int8_test_accuracy']:.4f}" if "int8_test_accuracy" in metrics else ""
    print(f"imported {args.model} ({metrics['imported']['format']}, {metrics['params']:,} params): "
          f"test accuracy {metrics['test_accuracy']:.4f}{extra} on {metrics['dataset']['name']} -> {out}")


def cmd_evaluate(args):
    from .evaluate import evaluate_folder, evaluate_run, format_report

    run = open_run(args.run)
    process.import_keras()
    if args.images is not None:
        report, class_names, written = evaluate_folder(run, args.images, args.command_line)
    else:
        report, class_names = evaluate_run(run, args.command_line)
        written = [run.paths.confusion, run.paths.mistakes, run.paths.evaluation]
    if args.json:
        print(json.dumps(report))
    else:
        print(format_report(report, class_names))
        print(f"\nwrote {', '.join(map(str, written))}")


def cmd_predict(args):
    import numpy as np

    from .predict import format_probabilities, predict_digits, predict_files, save_raw

    if args.index is None and not args.images:
        raise TinyDigitsError("predict: give --index N (a test image) or one or more image files")
    if args.top < 1:
        raise TinyDigitsError(f"--top must be at least 1, got {args.top}")
    if args.save_raw is not None and (len(args.images) + (args.index is not None)) != 1:
        raise TinyDigitsError("--save-raw writes one image: give one image file or --index N")
    run = open_run(args.run)
    process.import_keras()
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
        if args.save_raw is not None:
            save_raw(ds.x_test[args.index], args.save_raw)
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
    explain = None
    if args.explain:
        explain = args.save_preprocessed if args.save_preprocessed is not None else run.folder / "explain"
    results = predict_files(run.model(), args.images, args.save_preprocessed, explain, raw_file=args.save_raw)
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
            if "explained" in r:
                print(f"  wrote {r['explained']}: each preprocessing step beside the probabilities")
    return 2 if any("error" in r for r in results) else 0


def cmd_convert(args):
    if args.calibration < 1:
        raise TinyDigitsError(f"--calibration must be at least 1, got {args.calibration}")
    from .convert import convert_run
    from .verify import explain_quantization, format_forms

    run = open_run(args.run)
    report = convert_run(run, calibration=args.calibration, command=args.command_line)
    print(format_forms(report))
    print("\nquantization (int8 = round(real / scale) + zero_point):")
    print(explain_quantization(report["quantization"]))
    flips = report["flips"]
    print(f"\n{len(flips)} test images change their digit from float to int8"
          + (f": {', '.join(str(f['index']) for f in flips[:12])}{' ...' if len(flips) > 12 else ''}" if flips else ""))
    print(f"wrote {run.paths.float_model}, {run.paths.int8_model}, {run.paths.deploy}, {run.paths.flips}")


def cmd_export_c(args):
    from .export import PIXELS, export_c
    from .runtimes import tflm_refuses

    command = f"tinydigits export-c {args.run} --out {args.out}"  # the banner of every file: no --force in it
    files = export_c(open_run(args.run), args.out, command, force=args.force)
    samples = [path for path in files if path.parent.name == "samples"]
    for path in files:
        if path not in samples:
            print(f"{path}  ({path.stat().st_size:,} bytes)")
    print(f"{samples[0].parent}/  ({len(samples)} sample images: {samples[0].name} ... {samples[-1].name}, "
          f"{PIXELS} bytes each)")
    if not any(path.parent.name == "tflm" for path in files):
        print(f"no {args.out / 'tflm'}/: {tflm_refuses(open_run(args.run).int8_model())}")


def cmd_export_web(args):
    from .web import export_web

    command = f"tinydigits export-web {args.run} --out {args.out}"
    files = export_web(open_run(args.run), args.out, command, force=args.force)
    for path in files:
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    total = sum(path.stat().st_size for path in files)
    print(f"{len(files)} files, {total / 1024:.0f} KB; try it: open {args.out / 'index.html'} in a browser "
          f"(one self-contained file), or serve the folder: python -m http.server -d {args.out}")


def cmd_export_arduino(args):
    from .codegen import read_facts
    from .export import ARDUINO_EXAMPLE, avr_fit, export_arduino

    command = f"tinydigits export-arduino {args.run} --out {args.out}"
    for path in export_arduino(open_run(args.run), args.out, command, force=args.force):
        print(f"{path}  ({path.stat().st_size:,} bytes)")
    for line in avr_fit(read_facts(args.out / "src")):
        print(line)
    print(f"an Arduino library: copy {args.out} into your Arduino libraries folder (or Sketch > Include Library > "
          f"Add .ZIP Library), then File > Examples > TinyDigits > {ARDUINO_EXAMPLE}")


def cmd_mcu(args):
    if args.images < 1:
        raise TinyDigitsError(f"--images must be at least 1, got {args.images}")
    from .mcu import format_report, run_on_mcu

    run = open_run(args.run)
    report = run_on_mcu(run, args.images, args.command_line)
    print(format_report(report, wide=args.wide))
    print(f"wrote {run.paths.mcu}")


def cmd_boards(args):
    if args.images < 1:
        raise TinyDigitsError(f"--images must be at least 1, got {args.images}")
    from .boards import format_boards, measure_boards

    run = open_run(args.run)
    report = measure_boards(run, args.board, args.images, args.command_line)  # raises if no board could be built
    if args.json:
        print(json.dumps(report))
        return
    print(format_boards(report, wide=args.wide))
    print(f"wrote {run.paths.boards}, {run.paths.boards_plot} and {run.paths.firmware}/<board>/")


def cmd_upload(args):
    from .targets import find
    from .upload import format_upload, upload

    report = upload(open_run(args.run), find(args.board), args.port, args.command_line)
    print(format_upload(report))
    print(f"next: tinydigits send {report['port']} IMAGE... --run {args.run}")


def cmd_send(args):
    from .serial_link import BoardLink, HostBuild, format_result, new_images, send_file

    if not args.images and args.watch is None:
        raise TinyDigitsError("send: give one or more image files, or --watch DIR")
    with (HostBuild(open_run(args.run)) if args.run else contextlib.nullcontext()) as host, BoardLink(args.port) as board:
        print(f"{args.port}: {board.ready}", flush=True)
        results = []

        def show(result):  # a file that is not an image is an error line; the others are still sent
            print(format_result(result), file=sys.stderr if "error" in result else sys.stdout, flush=True)
            return result

        for path in args.images:
            results.append(show(send_file(board, host, path)))
        if args.watch is not None:
            print(f"watching {args.watch} for new images (Ctrl-C stops)", flush=True)
            for path in new_images(args.watch):
                show(send_file(board, host, path))
    failed = [r for r in results if "error" in r or not r.get("same", True)]
    if host is not None and results and not failed:
        print(f"{len(results)} image{'s' * (len(results) > 1)}: the board's outputs are the host build's, byte for byte")
    if any(r.get("same") is False for r in results):
        print(f"error: {sum(r.get('same') is False for r in results)} of {len(results)} images: the board's outputs "
              "differ from the host build's (is this run the one uploaded to the board?)", file=sys.stderr)
    return 2 if failed else 0


def cmd_compare(args):
    from .compare import MEASURED_ON, PRESETS, compare, default_out, parse_variant, table, variants, variants_from_file, write_report

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
    from .targets import find

    board = find(args.board)
    ram_kb = args.ram_kb if args.ram_kb is not None else board.ram_bytes / 1024
    if args.flash_kb <= 0 or ram_kb <= 0 or args.minutes <= 0:
        raise TinyDigitsError("--flash-kb, --ram-kb and --minutes must be positive")
    if args.max_candidates is not None and args.max_candidates < 1:
        raise TinyDigitsError(f"--max-candidates must be at least 1, got {args.max_candidates}")
    budget = Budget(flash=int(args.flash_kb * 1024), ram=int(ram_kb * 1024), board=board.key)
    base = _recipe_from(args)
    out = args.out or Path("runs") / f"search-{args.flash_kb:g}k"
    with claim(out, wait=False, command=args.command_line):  # a second search into DIR stops with one line
        preflight(out, resume="search")
        load_progress(out, base, board.key)  # a folder searched with another training or board is refused first
    ds = _load_data(args)
    print(f"searching {args.space} designs for <= {budget.flash:,} B flash and <= {budget.ram:,} B RAM on {board.name}, "
          f"{args.recipe} recipe{f' ({base.training_tag[1:]})' if base.training_tag else ''}, "
          f"up to {args.minutes:g} min -> {out}", flush=True)
    if args.engine == "ray":
        from .search_ray import search_with_ray

        rows = search_with_ray(ds, budget, out, base, args.minutes, args.max_candidates,
                               progress=lambda l: print(l, flush=True), data_dir=args.data_dir,
                               command=args.command_line, space=args.space)
    else:
        rows = search(ds, budget, out, base, args.minutes, args.max_candidates, progress=lambda l: print(l, flush=True),
                      command=args.command_line, space=args.space)
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

    serve(open_run(args.run), args.host, args.port, args.workers, announce=lambda line: print(line, flush=True))


# ------------------------------------------------------------------------------------ parser

VERBOSE_HELP = "also show what TensorFlow, JAX and the interpreters print on stderr"


def build_parser() -> Parser:
    parser = Parser(prog="tinydigits", description=DESCRIPTION, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    parser.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)

    def command(name, func, help, examples):
        p = sub.add_parser(name, help=help, description=help, epilog=_examples(*examples),
                           formatter_class=argparse.RawDescriptionHelpFormatter)
        p.add_argument("--verbose", action="store_true", help=VERBOSE_HELP)
        p.set_defaults(func=func)
        p.examples = examples  # the first is the bare usage's
        return p

    p = command("train", cmd_train, "train a model (default: the lesson's recipe) and write a run folder",
                ["tinydigits train --out runs/lesson", "tinydigits train --hidden 64 32 --activation tanh --epochs 5 --out runs/deep",
                 "tinydigits train --conv 8 16 --hidden --out runs/cnn   # conv 8 -> pool -> conv 16 -> pool -> Dense(10)",
                 "tinydigits train --loss mse --out runs/mse", "tinydigits train --dataset fashion-mnist --out runs/fashion",
                 "tinydigits train --recipe better --out runs/better   # 60 epochs, one-cycle, augmentation, QAT",
                 "tinydigits train --schedule onecycle --lr 0.003 --shift 1 --rotate 5 --out runs/onecycle",
                 "tinydigits train --recipe better --slant 5 --thickness 0.5 --out runs/hand   # + slanted hands, other pens",
                 "tinydigits train --init runs/lesson --extra-data my_digits/ --extra-repeat 20 --epochs 3 --out runs/mine"])
    _design_flags(p)
    _training_flags(p)
    _data_flags(p)
    p.add_argument("--out", type=Path, help="run folder (default runs/<timestamp>)")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")
    p.add_argument("--quiet", action="store_true", help="no Keras progress bar")

    p = command("import", cmd_import, "bring your own model: a Keras .keras/.h5 file (Sequential or functional) or an "
                "int8 .tflite becomes a run folder every command takes",
                ["tinydigits import my_cnn.keras --out runs/mine", "tinydigits import model.h5 --pixels 0-255 --out runs/h5",
                 "tinydigits import model_int8.tflite --out runs/tfl"])
    p.add_argument("model", type=Path, help="a .keras, .h5 or int8 .tflite file taking a 28x28 digit image")
    p.add_argument("--pixels", default="auto", choices=("auto", "0-1", "0-255", "-1-1"),
                   help="the pixel range the model expects, folded into its first layer (default auto: 0-255 if it "
                        "starts with a Rescaling layer, else 0-1, the lesson's /255)")
    p.add_argument("--out", type=Path, help="run folder (default runs/<model file name>)")
    p.add_argument("--force", action="store_true", help="replace an existing folder that tinydigits wrote")
    _data_flags(p)

    p = command("evaluate", cmd_evaluate, "test accuracy, per-class precision/recall, confusion matrix, worst mistakes",
                ["tinydigits evaluate runs/lesson", "tinydigits evaluate runs/lesson --json",
                 "tinydigits evaluate runs/lesson --images my_digits/   # my_digits/<digit>/*.png|jpg or labels.csv"])
    p.add_argument("run", type=Path)
    p.add_argument("--images", type=Path, metavar="DIR", help="your own images instead of the test set: DIR/<digit>/*.png|jpg, "
                   "DIR/labels.csv (file,label) or a zip of the digit folders; reports in RUN/evaluations/<DIR's name>/")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")

    p = command("predict", cmd_predict, "softmax probabilities of a test image or of your own image files",
                ["tinydigits predict runs/lesson --index 0", "tinydigits predict runs/lesson my_seven.png --top 3",
                 "tinydigits predict runs/lesson *.png --json --save-preprocessed seen/",
                 "tinydigits predict runs/lesson photo.jpg --explain   # runs/lesson/explain/photo.explain.png"])
    p.add_argument("run", type=Path)
    p.add_argument("images", nargs="*", type=Path, help="PNG/JPEG/BMP/GIF files, any size, either polarity")
    p.add_argument("--index", type=int, help="a test-set image instead of files")
    p.add_argument("--top", type=int, default=10, help="show the K most likely digits")
    p.add_argument("--json", action="store_true")
    p.add_argument("--save-preprocessed", type=Path, metavar="DIR", help="write the 28x28 image the model saw "
                   "(DIR/<the file's path>.28x28.png)")
    p.add_argument("--explain", action="store_true", help="write each preprocessing step beside the probabilities "
                   "(<path>.explain.png in --save-preprocessed DIR, else in RUN/explain/)")
    p.add_argument("--save-raw", type=Path, metavar="FILE",
                   help="write the 28x28 input the model saw as 784 raw uint8 bytes (what the C's main.c reads)")

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
    p.add_argument("--wide", action="store_true", help="the full table: long column names, whole-firmware sizes")

    from .targets import BOARDS

    p = command("boards", cmd_boards, "build the model for real boards (Uno, Mega, micro:bit, Pico, Nano 33 BLE, ...) and "
                "run it in their emulators: flash, RAM, fits, latency, same answers as the host",
                ["tinydigits boards runs/lesson", "tinydigits boards runs/lesson --board uno --board pico --images 300",
                 "tinydigits boards runs/lesson --json"])
    p.add_argument("run", type=Path)
    p.add_argument("--board", action="append", metavar="NAME", type=board_key,
                   help=f"a board (repeatable, any case; default all): {', '.join(b.key for b in BOARDS)}")
    p.add_argument("--images", type=int, default=100, help="test images to run on each emulated chip (default 100)")
    p.add_argument("--json", action="store_true", help="print the report as one JSON object")
    p.add_argument("--wide", action="store_true", help="the full table: board names, chip memory, spare bytes, notes")

    p = command("upload", cmd_upload, "build the Arduino sketch (export-arduino) and flash it on a board over USB, "
                "through its bootloader (avrdude): flash used, written and verified",
                ["tinydigits upload runs/lesson --board uno --port /dev/ttyACM0",
                 "tinydigits upload runs/lesson --board uno --port auto      # the board found by its USB IDs",
                 "tinydigits upload runs/lesson --board mega2560 --port /dev/ttyACM0"])
    p.add_argument("run", type=Path)
    p.add_argument("--board", required=True, metavar="NAME", help="uno or mega2560")
    p.add_argument("--port", required=True, help="the board's serial port (/dev/ttyACM0, COM3), or auto")

    p = command("send", cmd_send, "classify image files on a board running the uploaded sketch: the digit and "
                "probabilities it computed, beside the host build's answer",
                ["tinydigits send /dev/ttyACM0 seven.png two.png --run runs/lesson",
                 "tinydigits send /dev/ttyACM0 --watch drawings/ --run runs/lesson   # each image saved there from now on"])
    p.add_argument("port", help="the board's serial port (/dev/ttyACM0, COM3)")
    p.add_argument("images", nargs="*", type=Path, help="PNG/JPEG/BMP/GIF files, preprocessed as predict does")
    p.add_argument("--run", type=Path, help="the run on the board: the host build's answer is printed beside the "
                   "board's and must equal it, byte for byte")
    p.add_argument("--watch", type=Path, metavar="DIR", help="then send each new image saved into DIR (Ctrl-C stops)")

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
                ["tinydigits search --flash-kb 8 --ram-kb 2", "tinydigits search --board uno --flash-kb 30 --ram-kb 1.7 --space conv",
                 "tinydigits search --flash-kb 32 --minutes 30 --out runs/search-32k",
                 "tinydigits search --flash-kb 8 --out runs/search-8k   # again: resumes where it stopped",
                 "tinydigits search --flash-kb 8 --recipe lesson        # every candidate trained as the lesson",
                 "tinydigits search --flash-kb 8 --engine ray            # trials on a Ray cluster (pip install tinydigits[ray])"])
    p.add_argument("--flash-kb", type=float, required=True, help="flash budget for model code + weights (KiB), as built "
                   "for --board")
    p.add_argument("--ram-kb", type=float, help="RAM budget: data + bss (the activations) + the inference's stack, "
                   "measured on --board (KiB; default: the board's RAM)")
    p.add_argument("--board", default="nano33ble", type=board_key, metavar="NAME",
                   help="the board whose build is measured (default nano33ble, the Cortex-M4)")
    p.add_argument("--space", choices=("all", "conv", "dense"), default="all",
                   help="the designs to try: convolutional, dense or both (default all, convolutions first)")
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


def usage(parser: Parser) -> str:
    """What `tinydigits` alone prints: the commands, each with its first example."""
    commands = _commands(parser)
    lines = [f"usage: tinydigits [--verbose] [--version] COMMAND ...", "", DESCRIPTION, "",
             "commands, each with an example:"]
    for name, p in commands.items():
        example = p.examples[0].split("  #")[0].rstrip()
        lines.append(f"  {name:15} {example}")
    lines += ["", "tinydigits COMMAND --help: what it does, its flags, more examples", f"--verbose: {VERBOSE_HELP}"]
    return "\n".join(lines)


def _commands(parser: Parser) -> dict[str, Parser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


def parse_args(parser: Parser, argv: list[str]) -> argparse.Namespace | None:
    """The top-level options, then the command's own, parsed intermixed: options may follow positionals
    (`predict RUN --json a.png`). None when there is no command (bare usage)."""
    split = next((i for i, arg in enumerate(argv) if not arg.startswith("-")), len(argv))
    top = parser.parse_args(argv[:split])
    if split == len(argv):
        return None if not top.version else top
    commands = _commands(parser)
    name = argv[split]
    if name not in commands:
        raise TinyDigitsError(f"tinydigits: unknown command {name!r} (commands: {', '.join(commands)})")
    args = commands[name].parse_intermixed_args(argv[split + 1:], namespace=top)
    args.command = name
    return args


def main(argv=None) -> int:
    """The `tinydigits` command. Called with no arguments it is the process's entry point: unless
    --verbose, the command then runs in a supervised child process (process.py)."""
    entry = argv is None
    argv = sys.argv[1:] if entry else [str(a) for a in argv]
    verbose = "--verbose" in argv
    if entry and process.is_child():
        process.adopt_stderr()
    elif entry and not verbose and process.can_supervise():
        return process.supervise(argv)
    process.settings(verbose, quiet_python=entry and not verbose)
    try:
        parser = build_parser()
        args = parse_args(parser, argv)
        if args is None:
            print(usage(parser))
            return 0
        if args.version:
            print(f"tinydigits {__version__}")
            return 0
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
