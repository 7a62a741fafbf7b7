"""End-to-end: the CLI on the real MNIST, as a user runs it."""
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from conftest import tree

from tinydigits.cli import _recipe_from, build_parser, main
from tinydigits.errors import TinyDigitsError


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_lesson_run_folder(lesson_run):
    names = {p.name for p in lesson_run.iterdir()}
    assert {"model.keras", "history.json", "metrics.json", "curves.png"} <= names
    assert [n for n in names if n.startswith(".")] == [".tinydigits.json"]  # the manifest, no temp leftovers
    assert not [p for p in lesson_run.parent.iterdir() if p.name.startswith(".")]
    metrics = json.loads((lesson_run / "metrics.json").read_text())
    history = json.loads((lesson_run / "history.json").read_text())
    assert metrics["test_accuracy"] >= 0.90, metrics  # 3 of the lesson's 20 epochs already get there
    assert metrics["params"] == 15910 and metrics["recipe"]["hidden"] == [20]
    assert set(history) >= {"loss", "accuracy", "val_loss", "val_accuracy"}
    assert len(history["loss"]) == 3 and history["loss"][-1] < history["loss"][0]
    assert history["val_accuracy"][-1] == pytest.approx(metrics["test_accuracy"], abs=1e-6)


def test_train_same_seed_same_result(mnist):
    from tinydigits.model import Recipe
    from tinydigits.train import train

    subset = type(mnist)(mnist.name, mnist.x_train[:6000], mnist.y_train[:6000], mnist.x_test[:1000],
                         mnist.y_test[:1000], mnist.folder)
    a, b = (train(Recipe(epochs=1, seed=7), subset, verbose=0) for _ in range(2))
    for wa, wb in zip(a.model.get_weights(), b.model.get_weights()):
        assert np.array_equal(wa, wb)
    c = train(Recipe(epochs=1, seed=8), subset, verbose=0)
    assert not np.array_equal(a.model.get_weights()[0], c.model.get_weights()[0])


def test_train_cli_refuses_to_overwrite(tmp_path, capsys, lesson_run):
    before = (lesson_run / "metrics.json").read_bytes()
    code, _, err = run_cli(capsys, "train", "--epochs", "1", "--out", lesson_run)
    assert code == 2 and err.strip().startswith("error:") and "already exists" in err and len(err.strip().splitlines()) == 1
    assert (lesson_run / "metrics.json").read_bytes() == before


def test_train_cli_variant_and_summary(tmp_path, capsys):
    out = tmp_path / "deep"
    code, stdout, _ = run_cli(capsys, "train", "--hidden", "16", "8", "--activation", "tanh", "--epochs", "1",
                              "--quiet", "--out", out)
    assert code == 0 and "h16x8-tanh-ce-e1: test accuracy" in stdout
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["recipe"]["hidden"] == [16, 8] and metrics["params"] == 784 * 16 + 16 + 16 * 8 + 8 + 90


def test_evaluate_json(lesson_run, capsys):
    code, out, _ = run_cli(capsys, "evaluate", lesson_run, "--json")
    report = json.loads(out)
    confusion = np.array(report["confusion"])
    assert code == 0 and confusion.sum() == 10000 and confusion.shape == (10, 10)
    assert report["accuracy"] == pytest.approx(np.trace(confusion) / 10000)
    metrics = json.loads((lesson_run / "metrics.json").read_text())
    assert report["accuracy"] == pytest.approx(metrics["test_accuracy"], abs=1e-4)
    assert report["loss"] == pytest.approx(metrics["test_loss"], rel=1e-3)
    assert len(report["precision"]) == 10 and (lesson_run / "confusion.png").exists() and (lesson_run / "mistakes.png").exists()


def test_predict_index_prints_the_lessons_output(lesson_run, capsys):
    code, out, _ = run_cli(capsys, "predict", lesson_run, "--index", "0")
    assert code == 0 and "true label 7" in out and "predicted 7" in out
    code, out, _ = run_cli(capsys, "predict", lesson_run, "--index", "0", "--json")
    result = json.loads(out)
    assert result["label"] == 7 and result["digit"] == 7 and sum(result["probabilities"]) == pytest.approx(1, abs=1e-4)


def test_predict_files_in_other_sizes_and_polarities(lesson_run, mnist, tmp_path, capsys):
    """Test digits saved as a person would (bigger, dark on light, colour, JPEG) get the raw images' answers."""
    from tinydigits.predict import predict_digits
    from tinydigits.runs import Run

    n = 200
    raw = predict_digits(Run(lesson_run).model(), mnist.x_test[:n]).argmax(axis=1)
    files = []
    for i in range(n):
        digit = mnist.x_test[i]
        size = (56, 84, 112, 200)[i % 4]
        image = Image.fromarray(digit).resize((size, size), Image.Resampling.BICUBIC)
        if i % 2:  # dark ink on light paper
            image = Image.fromarray(255 - np.asarray(image))
        if i % 3 == 0:
            image = image.convert("RGB")
        path = tmp_path / f"digit{i:03d}.{('png', 'jpg', 'bmp', 'gif')[i % 4]}"
        image.save(path)
        files.append(path)
    code, out, _ = run_cli(capsys, "predict", lesson_run, *files, "--json", "--save-preprocessed", tmp_path / "seen")
    results = json.loads(out)
    agree = np.mean([r["digit"] == d for r, d in zip(results, raw)])
    assert code == 0 and len(results) == n and agree >= 0.95, agree
    assert len(list((tmp_path / "seen").glob("*.png"))) == n


@pytest.mark.parametrize("argv, message", [
    (["evaluate", "{tmp}/nothing"], "no such run folder"),
    (["evaluate", "{tmp}"], "not a run folder"),
    (["predict", "{run}", "{tmp}/garbage.png"], "not a readable image"),
    (["predict", "{run}", "--index", "10000"], "outside the test set"),
    (["train", "--epochs", "0", "--out", "{tmp}/x"], "epochs must be at least 1"),
    (["train", "--activation", "swish"], "invalid choice"),
    (["train", "--data-dir", "{tmp}", "--out", "{tmp}/x"], "not a dataset folder"),
    (["train", "--seed", "-1", "--out", "{tmp}/x"], "seed must be in"),
    (["train", "--thickness", "5", "--out", "{tmp}/x"], "thickness must be in [0, 3] pixels"),
    (["train", "--init", "{tmp}", "--out", "{tmp}/x"], "not a run folder (no model.keras)"),
    (["train", "--extra-data", "{tmp}/none", "--out", "{tmp}/x"], "no such folder"),
    (["train", "--extra-data", "{tmp}/garbage.png", "--out", "{tmp}/x"], "not a folder"),
    (["evaluate", "{run}", "--images", "{tmp}/none"], "no such folder"),
    (["evaluate", "{run}", "--images", "{tmp}"], "no images in"),
])
def test_bad_input_is_one_line_and_exit_2(argv, message, tmp_path, lesson_run, capsys):
    (tmp_path / "garbage.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    argv = [a.format(tmp=tmp_path, run=lesson_run) for a in argv]
    code, out, err = run_cli(capsys, *argv)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1 and err.startswith("error: ")
    assert not (tmp_path / "x").exists()


def test_corrupt_model_file(tmp_path, lesson_run, capsys):
    """Keras itself answers a damaged archive with a misleading 'File not found'."""
    run = tmp_path / "run"
    shutil.copytree(lesson_run, run)
    whole = (run / "model.keras").read_bytes()
    for damaged in (b"PK\x03\x04 truncated zip", whole[: len(whole) // 2], whole[:-200]):
        (run / "model.keras").write_bytes(damaged)
        for argv in (["evaluate", run], ["predict", run, "--index", "0"], ["convert", run]):
            code, _, err = run_cli(capsys, *argv)
            assert code == 2 and f"{run}/model.keras: not a Keras model archive" in err and "File not found" not in err, err
            assert len(err.strip().splitlines()) == 1


def test_real_process_exit_code_and_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "tinydigits", "evaluate", str(tmp_path / "none")],
                          capture_output=True, text=True, env={**os.environ})
    assert proc.returncode == 2 and proc.stderr.strip().splitlines()[-1].startswith("error:")
    assert "Traceback" not in proc.stderr


def test_any_folder_of_idx_files_with_data_dir(mnist, tmp_path, capsys):
    """A user's own IDX folder (here a small MNIST subset, uncompressed) trains, and later stages find it again."""
    from conftest import idx_bytes
    from tinydigits.data import FILES

    folder = tmp_path / "mydigits"
    folder.mkdir()
    arrays = {"x_train": mnist.x_train[:3000], "y_train": mnist.y_train[:3000],
              "x_test": mnist.x_test[:500], "y_test": mnist.y_test[:500]}
    for key, name in FILES.items():
        (folder / name[:-3]).write_bytes(idx_bytes(arrays[key]))
    code, out, _ = run_cli(capsys, "train", "--data-dir", folder, "--epochs", "2", "--quiet", "--out", tmp_path / "run")
    assert code == 0 and "3,000 train / 500 test images" in out
    code, out, _ = run_cli(capsys, "evaluate", tmp_path / "run", "--json")
    assert code == 0 and json.loads(out)["n"] == 500


def _images(folder):
    folder.mkdir()
    for i in range(10):
        Image.fromarray(np.full((28, 28), 25 * i, np.uint8)).save(folder / f"digit{i}.png")
    return folder


# (argv, what it says): every writing command refuses a destination it must not touch, before any work
REFUSED = [
    (["train", "--out", "{tmp}/my_images", "--force"], "my_images: not a folder tinydigits wrote"),
    (["train", "--out", "{tmp}/a_file", "--force"], "a_file: is a file, not a folder tinydigits wrote"),
    (["train", "--out", "/proc/x"], "/proc/x: cannot be written"),
    (["train", "--out", "{tmp}/a_file/run"], "a_file is a file"),
    (["train", "--out", ".", "--force"], ".: is the current folder or one above it"),
    (["train", "--out", "{run}"], "already exists (use --force"),
    (["export-c", "{run}", "--out", ".", "--force"], ".: is the current folder or one above it"),
    (["export-c", "{run}", "--out", "..", "--force"], "..: is the current folder or one above it"),
    (["export-c", "{run}", "--out", "{tmp}/my_images", "--force"], "my_images: not a folder tinydigits wrote"),
    (["export-c", "{run}", "--out", "{tmp}/a_file", "--force"], "a_file: is a file"),
    (["export-c", "{run}", "--out", "/proc/x"], "/proc/x: cannot be written"),
    (["export-c", "{run}", "--out", "{run}", "--force"], "holds the run"),
    (["export-c", "{run}", "--out", "{tmp}/h64", "--force"], "h64: is a run folder, not an export folder"),
    (["export-web", "{run}", "--out", "{tmp}/my_images", "--force"], "my_images: not a folder tinydigits wrote"),
    (["export-web", "{run}", "--out", "{tmp}/h64", "--force"], "h64: is a run folder, not a web folder"),
    (["export-web", "{run}", "--out", "{tmp}/a_file", "--force"], "a_file: is a file"),
    (["export-web", "{run}", "--out", "/proc/x"], "/proc/x: cannot be written"),
    (["export-web", "{run}", "--out", "{run}", "--force"], "holds the run"),
    (["export-arduino", "{run}", "--out", "{tmp}/my_images", "--force"], "my_images: not a folder tinydigits wrote"),
    (["export-arduino", "{run}", "--out", "{tmp}/h64", "--force"], "h64: is a run folder, not an export folder"),
    (["export-arduino", "{run}", "--out", "/proc/x"], "/proc/x: cannot be written"),
    (["export-arduino", "{run}", "--out", ".", "--force"], ".: is the current folder or one above it"),
    (["compare", "--variant", "hidden=8", "--out", "{tmp}/h64", "--force"], "h64: is a run folder, not a compare folder"),
    (["compare", "--variant", "hidden=8", "--out", "{tmp}/my_images", "--force"], "my_images: not a folder tinydigits wrote"),
    (["compare", "--variant", "hidden=8", "--out", "/proc/x"], "/proc/x: cannot be written"),
    (["search", "--flash-kb", "8", "--out", "{tmp}/my_images"], "my_images: exists and is not a search folder"),
    (["search", "--flash-kb", "8", "--out", "{tmp}/a_file/s"], "a_file is a file"),
]


@pytest.mark.parametrize("argv, message", REFUSED)
def test_a_destination_it_must_not_touch_is_refused_before_work(argv, message, tmp_path, lesson_run, capsys, monkeypatch):
    import tinydigits.compare
    import tinydigits.train

    def no_work(*args, **kwargs):
        raise AssertionError("the work started before the destination was checked")

    monkeypatch.setattr(tinydigits.train, "train", no_work)
    monkeypatch.setattr(tinydigits.compare, "compare", no_work)
    work = tmp_path / "cwd"
    work.mkdir()
    monkeypatch.chdir(work)
    _images(tmp_path / "my_images")
    (tmp_path / "a_file").write_text("a user's notes\n")
    shutil.copytree(lesson_run, tmp_path / "h64")  # a trained run that no export may replace
    before, run_before = tree(tmp_path), tree(lesson_run)
    code, out, err = run_cli(capsys, *[a.format(tmp=tmp_path, run=lesson_run) for a in argv])
    assert code == 2 and err.startswith("error: ") and len(err.strip().splitlines()) == 1 and message in err, err
    assert tree(tmp_path) == before and tree(lesson_run) == run_before  # untouched, nothing half-written


def test_force_replaces_a_run_folder_even_one_from_before_manifests(tmp_path, lesson_run, capsys, monkeypatch):
    import tinydigits.train
    from tinydigits.artifacts import MANIFEST
    from tinydigits.runs import Run
    from tinydigits.train import TrainResult

    run = Run(lesson_run)
    result = TrainResult(run.model(), run.recipe, run.history, run.metrics)
    monkeypatch.setattr(tinydigits.train, "train", lambda *a, **k: result)  # the saving is under test, not the training
    old = tmp_path / "old"
    shutil.copytree(lesson_run, old)
    (old / MANIFEST).unlink()
    (old / "notes.txt").write_text("written by hand into a run folder")
    code, out, err = run_cli(capsys, "train", "--out", old, "--force", "--quiet")
    assert code == 0 and err == "" and f"-> {old}" in out
    assert not (old / "notes.txt").exists() and Run(old).metrics == run.metrics
    assert json.loads((old / MANIFEST).read_text())["created_by"] == f"tinydigits train --out {old} --force --quiet"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["old"]


def test_cli_prints_the_files_it_wrote_from_the_run(lesson_run, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(lesson_run, run)
    code, out, _ = run_cli(capsys, "evaluate", run)
    assert code == 0 and f"wrote {run}/confusion.png, {run}/mistakes.png, {run}/evaluation.json" in out
    assert json.loads((run / "evaluation.json").read_text())["n"] == 10000


def test_predict_16bit_png_blank_image_and_a_bad_file_among_good_ones(lesson_run, mnist, tmp_path, capsys):
    """A 16-bit scan of a 7 is a 7; a blank page is flagged; a non-image is reported and the rest predicted."""
    seven = 255 - mnist.x_test[0].astype(np.float64)  # dark ink on white paper
    scan = Image.frombytes("I;16", (28, 28), (5000 + seven / 255 * 55000).astype("<u2").tobytes())
    scan.resize((112, 112)).save(tmp_path / "seven16.png")
    Image.new("L", (64, 64), 255).save(tmp_path / "blank.png")
    (tmp_path / "notes.png").write_text("not an image")
    files = [tmp_path / "seven16.png", tmp_path / "notes.png", tmp_path / "blank.png"]

    code, out, err = run_cli(capsys, "predict", lesson_run, *files)
    assert code == 2
    assert f"{files[0]}: 7 (" in out and f"{files[2]}: " in out and "[blank image]" in out.splitlines()[-11]
    assert err.splitlines() == [f"error: {files[1]}: not a readable image (UnidentifiedImageError)",
                                f"warning: {files[2]}: no ink found (a blank or too faint image); its digit is a guess"]

    code, out, _ = run_cli(capsys, "predict", lesson_run, *files, "--json")
    results = json.loads(out)
    assert code == 2 and [r.get("digit") for r in results][:2] == [7, None] and "not a readable image" in results[1]["error"]
    assert [r.get("blank") for r in results] == [False, None, True]


def test_save_preprocessed_into_a_file_is_one_line(lesson_run, tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("a user's notes")
    Image.new("L", (40, 40), 255).save(tmp_path / "page.png")
    for target in ("notes.txt", "notes.txt/seen"):
        code, _, err = run_cli(capsys, "predict", lesson_run, tmp_path / "page.png", "--save-preprocessed", tmp_path / target)
        assert code == 2 and err.startswith(f"error: --save-preprocessed {tmp_path / target}: cannot be created"), err
        assert len(err.strip().splitlines()) == 1 and (tmp_path / "notes.txt").read_text() == "a user's notes"


def test_hidden_without_a_value_means_no_hidden_layer():
    """`train --conv 8 16 --hidden`: the conv blocks straight into Dense(10), as the CNN issue asks."""
    args = build_parser().parse_args(["train", "--conv", "8", "16", "--hidden", "--epochs", "1"])
    recipe = _recipe_from(args)
    assert recipe.hidden == () and recipe.conv == (8, 16) and recipe.design == "c8x16-hnone-relu-ce"
    assert _recipe_from(build_parser().parse_args(["train", "--conv", "8"])).hidden == (20,)  # --hidden absent: the lesson's


def test_input_size_and_stride_reach_the_recipe_and_the_model_still_takes_28x28():
    """`--input-size 14 --stride 2`: the search's downsampled designs, trainable by hand (winners.json uses them)."""
    from tinydigits.model import build_model

    recipe = _recipe_from(build_parser().parse_args(["train", "--conv", "8", "16", "--stride", "2", "--input-size", "14",
                                                     "--hidden"]))
    assert recipe.input_size == 14 and recipe.stride == 2 and recipe.design == "14px-c8x16-s2-hnone-relu-ce"
    model = build_model(recipe)
    assert tuple(model.input_shape) == (None, 28, 28) and tuple(model.layers[2].output.shape) == (None, 7, 7, 8)
    with pytest.raises(TinyDigitsError, match="--input-size: invalid choice: 13"):
        build_parser().parse_args(["train", "--input-size", "13"])


def test_fewer_epochs_than_the_better_recipes_qat_tail_shortens_the_tail():
    """`--recipe better --epochs 3` means 3 epochs, the last 3 quantization-aware; an explicit --qat-epochs still wins."""
    args = build_parser().parse_args(["train", "--recipe", "better", "--epochs", "3"])
    assert (_recipe_from(args).epochs, _recipe_from(args).qat_epochs) == (3, 3)
    args = build_parser().parse_args(["train", "--recipe", "better", "--epochs", "3", "--qat-epochs", "1"])
    assert _recipe_from(args).qat_epochs == 1
    args = build_parser().parse_args(["train", "--recipe", "better", "--epochs", "3", "--qat-epochs", "4"])
    with pytest.raises(TinyDigitsError, match="qat epochs"):
        _recipe_from(args)


def test_save_preprocessed_and_explain_keep_each_files_relative_path(lesson_run, mnist, tmp_path, capsys):
    """photo/0000.jpg and ink/0000.png, both of a 7: two 28x28s and two step strips, none overwritten."""
    from tinydigits.synthetic import write_image_folder

    for rendering in ("photo", "ink"):
        write_image_folder(tmp_path / "mine" / rendering, mnist.x_test[:1], mnist.y_test[:1], rendering)
    files = [tmp_path / "mine" / "photo" / "7" / "0000.jpg", tmp_path / "mine" / "ink" / "7" / "0000.png"]
    code, out, _ = run_cli(capsys, "predict", lesson_run, *files, "--save-preprocessed", tmp_path / "seen", "--explain")
    assert code == 0 and f"{files[0]}: 7 (" in out and f"{files[1]}: 7 (" in out
    written = sorted(str(p.relative_to(tmp_path / "seen")) for p in (tmp_path / "seen").rglob("*.png"))
    assert written == ["ink/7/0000.28x28.png", "ink/7/0000.explain.png", "photo/7/0000.28x28.png", "photo/7/0000.explain.png"]
    assert f"wrote {tmp_path / 'seen' / 'photo' / '7' / '0000.explain.png'}" in out
    seen = np.asarray(Image.open(tmp_path / "seen" / "photo" / "7" / "0000.28x28.png"))
    assert seen.shape == (28, 28) and seen.max() > 200
    code, out, _ = run_cli(capsys, "predict", lesson_run, files[0], "--explain")  # no DIR: into the run folder
    assert code == 0 and (lesson_run / "explain" / "0000.explain.png").is_file()


def test_evaluate_images_scores_your_own_folder(lesson_run, mnist, tmp_path, capsys):
    """A folder of ink-on-paper pictures (DIR/<digit>/), then the same files listed in a labels.csv."""
    from tinydigits.synthetic import write_image_folder

    paths = write_image_folder(tmp_path / "scans", mnist.x_test[:40], mnist.y_test[:40], "ink")
    code, out, _ = run_cli(capsys, "evaluate", lesson_run, "--images", tmp_path / "scans")
    report = json.loads((lesson_run / "evaluations" / "scans" / "evaluation.json").read_text())
    assert code == 0 and out.startswith(f"{tmp_path / 'scans'} accuracy") and "(40 images)" in out
    assert report["n"] == 40 and report["accuracy"] >= 0.85 and np.array(report["confusion"]).sum() == 40
    assert all(m["label"] != m["digit"] for m in report["mistakes"])
    assert (lesson_run / "evaluations" / "scans" / "mistakes.png").is_file()
    listed = tmp_path / "listed"
    listed.mkdir()
    lines = ["file,label"] + [f"../scans/{p.parent.name}/{p.name},{p.parent.name}" for p in paths[:5]]
    (listed / "labels.csv").write_text("\n".join(lines) + "\n")
    code, out, _ = run_cli(capsys, "evaluate", lesson_run, "--images", listed, "--json")
    assert code == 0 and json.loads(out)["n"] == 5
    (tmp_path / "scans" / "seven").mkdir()
    code, _, err = run_cli(capsys, "evaluate", lesson_run, "--images", tmp_path / "scans")
    assert code == 2 and "must be named by its digit" in err and len(err.strip().splitlines()) == 1


# ---- what people type ------------------------------------------------------------------------------

def test_bare_tinydigits_lists_every_command_with_an_example():
    proc = subprocess.run([sys.executable, "-m", "tinydigits"], capture_output=True, text=True)
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and proc.stderr == "" and lines[0].startswith("usage: tinydigits")
    commands = list(build_parser()._subparsers._group_actions[0].choices)
    listed = [line.split()[0] for line in lines if line.startswith("  ")]
    assert listed == commands and len(commands) >= 12
    for line in (line for line in lines if line.startswith("  ")):
        name, example = line.split(maxsplit=1)
        assert example.startswith(f"tinydigits {name}"), line
    assert max(map(len, lines)) <= 100
    version = subprocess.run([sys.executable, "-m", "tinydigits", "--version"], capture_output=True, text=True)
    assert version.returncode == 0 and version.stdout == f"tinydigits {__import__('tinydigits').__version__}\n"


@pytest.mark.parametrize("argv, expected", [
    (["predict", "R", "--json", "a.png"], {"run": "R", "images": ["a.png"], "json": True}),
    (["predict", "R", "a.png", "--json", "b.png", "--top", "3"], {"images": ["a.png", "b.png"], "top": 3}),
    (["predict", "--index", "0", "R"], {"run": "R", "index": 0, "images": []}),
    (["export-c", "--out", "fw", "R"], {"run": "R", "out": "fw"}),
    (["evaluate", "--json", "R"], {"run": "R", "json": True}),
    (["convert", "--calibration", "100", "R"], {"run": "R", "calibration": 100}),
    (["boards", "--board", "Uno", "R", "--board", "PICO", "--wide"], {"run": "R", "board": ["uno", "pico"], "wide": True}),
    (["mcu", "--images", "5", "R"], {"run": "R", "images": 5}),
    (["serve", "--port", "9000", "R"], {"run": "R", "port": 9000}),
    (["export-web", "--force", "R", "--out", "s"], {"run": "R", "out": "s", "force": True}),
    (["train", "--hidden", "64", "32", "--epochs", "2"], {"hidden": [64, 32], "epochs": 2}),
    (["--verbose", "train", "--quiet"], {"verbose": True, "quiet": True}),
    (["train", "--quiet", "--verbose"], {"verbose": True}),
])
def test_options_may_follow_positionals_in_every_command(argv, expected):
    from tinydigits.cli import parse_args

    args = parse_args(build_parser(), argv)
    got = {k: (str(v) if isinstance(v, os.PathLike) else [str(x) for x in v] if isinstance(v, list) and k == "images"
               else v) for k, v in vars(args).items()}
    assert {k: got[k] for k in expected} == expected


def test_options_after_positionals_end_to_end(lesson_run, tmp_path, capsys):
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "a.png")
    code, out, _ = run_cli(capsys, "predict", lesson_run, "--json", tmp_path / "a.png")
    assert code == 0 and json.loads(out)[0]["file"] == str(tmp_path / "a.png")


def test_a_wrong_board_lists_the_valid_names(capsys):
    code, _, err = run_cli(capsys, "boards", "R", "--board", "Arduino")
    assert code == 2 and err.strip().endswith("unknown board 'Arduino' (known: uno, mega2560, microbit, pico, "
                                              "nano33ble, stm32f746, nrf5340, esp32c3, pico2-riscv, ch32v003)")
    code, _, err = run_cli(capsys, "frobnicate")
    assert code == 2 and "unknown command 'frobnicate' (commands: train, import, evaluate, predict" in err
