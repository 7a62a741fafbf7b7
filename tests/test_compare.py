import json

import numpy as np
import pytest

from tinydigits.cli import main
from tinydigits.compare import PRESETS, compare, explanations, over_seeds, parse_variant, table, variants, variants_from_file
from tinydigits.errors import TinyDigitsError
from tinydigits.model import RECIPES, Recipe


def test_parse_variant_and_file_forms(tmp_path):
    assert parse_variant("hidden=64,32 activation=tanh lr=0.01") == {"hidden": (64, 32), "activation": "tanh", "lr": 0.01}
    assert parse_variant("hidden=64x32")["hidden"] == (64, 32)
    assert parse_variant("schedule=onecycle shift=1 qat_epochs=5 label_smoothing=0.1") == \
        {"schedule": "onecycle", "shift": 1.0, "qat_epochs": 5, "label_smoothing": 0.1}
    (tmp_path / "v.toml").write_text('[[variant]]\nhidden = [64, 32]\n\n[[variant]]\nactivation = "tanh"\nepochs = 3\n')
    assert variants_from_file(tmp_path / "v.toml") == [{"hidden": (64, 32)}, {"activation": "tanh", "epochs": 3}]
    (tmp_path / "v.json").write_text('[{"hidden": [16]}, {"loss": "mse"}]')
    assert variants_from_file(tmp_path / "v.json") == [{"hidden": (16,)}, {"loss": "mse"}]


@pytest.mark.parametrize("text, message", [("hidden", "expected key=value"), ("epochs=many", "bad value for 'epochs'"),
                                           ("dropout=0.1", "unknown recipe field 'dropout'")])
def test_bad_variants(text, message):
    with pytest.raises(TinyDigitsError, match=message):
        variants([parse_variant(text)], Recipe())


def test_lesson_preset_covers_every_claim_without_duplicates():
    recipes = variants(PRESETS["lesson"], Recipe(epochs=2))
    names = [r.name for r in recipes]
    assert len(names) == len(set(names)) == 9
    assert {"h20-linear-ce-e2", "h20-relu-mse-e2", "h256-relu-ce-e2"} <= set(names) and all(r.epochs == 2 for r in recipes)


def test_relu_beats_linear_and_softmax_sums_to_one(mnist, tmp_path):
    """The lesson's first claim, measured: without a non-linearity the network is a linear classifier."""
    rows = compare(variants(PRESETS["activation"][:2], Recipe(epochs=2)), mnist, progress=lambda line: None)
    relu, linear = rows
    assert relu["test_accuracy"] > linear["test_accuracy"] + 0.015
    assert linear["test_accuracy"] < 0.93  # softmax regression's ceiling on MNIST
    assert relu["softmax_sum_max_error"] < 1e-5
    assert relu["top_probability"]["right_mean"] > relu["top_probability"]["wrong_mean"]
    assert relu["int8_bytes"] > relu["params"] and relu["int8_test_accuracy"] > 0.9
    assert "softmax regression in disguise" in explanations(rows)[0]


def test_compare_cli_parallel_jobs_and_report(tmp_path, capsys):
    out = tmp_path / "cmp"
    code = main(["compare", "--variant", "hidden=8", "--variant", "hidden=16 loss=mse", "--epochs", "1",
                 "--jobs", "2", "--out", str(out)])
    stdout = capsys.readouterr().out
    assert code == 0 and "h8-relu-ce-e1" in stdout and "h16-relu-mse-e1" in stdout
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in rows] == ["h8-relu-ce-e1", "h16-relu-mse-e1"]
    for r in rows:
        assert {"name", "test_accuracy", "test_loss", "params", "int8_bytes", "train_seconds", "history"} <= set(r)
        assert len(r["history"]["val_accuracy"]) == 1
    assert "val_crossentropy" in rows[1]["history"]  # the MSE variant's curve is drawn in cross-entropy
    assert rows[0]["params"] == 784 * 8 + 8 + 90
    for name in ("comparison.md", "comparison.png", "calibration.png"):
        assert (out / name).stat().st_size > 0
    assert main(["compare", "--preset", "loss", "--out", str(out)]) == 2  # never overwrites a report
    assert "already exists" in capsys.readouterr().err


def test_recipe_preset_is_each_technique_alone_then_all_together():
    recipes = variants(PRESETS["recipe"], Recipe())
    assert recipes[0] == Recipe() and recipes[-1] == Recipe(**RECIPES["better"])
    changed = [{k for k, v in r.to_dict().items() if v != Recipe().to_dict()[k]} for r in recipes[1:-1]]
    assert changed == [{"schedule", "lr"}, {"epochs", "batch_size"}, {"shift", "rotate", "scale"},
                       {"label_smoothing"}, {"qat_epochs"}]
    assert len({r.name for r in recipes}) == len(recipes)


def test_over_seeds_mean_and_sample_std():
    rows = [{"name": "a", "recipe": {"seed": s}, "test_accuracy": acc, "int8_test_accuracy": acc - 0.001,
             "test_loss": 0.1, "train_seconds": 2.0, "params": 10, "int8_bytes": 20} for s, acc in enumerate((0.96, 0.97, 0.98))]
    row = over_seeds(rows)
    assert row["seeds"] == [0, 1, 2] and row["test_accuracy"] == pytest.approx(0.97)
    assert row["test_accuracy_std"] == pytest.approx(0.01) and row["test_loss_std"] == pytest.approx(0.0)
    assert row["per_seed"]["int8_test_accuracy"] == pytest.approx([0.959, 0.969, 0.979])
    assert "0.9700 ± 0.0100" in table([row]) and "mean ± std over 3 seeds" in table([row])
    assert over_seeds(rows[:1]) is rows[0]


def test_compare_cli_seeds(tmp_path, capsys):
    out = tmp_path / "seeds"
    assert main(["compare", "--variant", "hidden=8", "--epochs", "1", "--batch-size", "256", "--seeds", "2",
                 "--seed", "5", "--out", str(out)]) == 0
    assert "seeds 5-6" in capsys.readouterr().out
    row, = json.loads((out / "comparison.json").read_text())
    assert row["seeds"] == [5, 6] and len(row["per_seed"]["test_accuracy"]) == 2
    assert row["test_accuracy"] == pytest.approx(np.mean(row["per_seed"]["test_accuracy"]))
    assert row["test_accuracy_std"] > 0  # two seeds, two different networks


@pytest.mark.parametrize("args, message", [(["--preset", "loss", "--epochs", "0"], "epochs must be at least 1"),
                                           (["--preset", "loss", "--seeds", "0"], "--seeds must be at least 1"),
                                           (["--preset", "loss", "--shift", "9"], "shift must be in")])
def test_compare_refuses_bad_values(args, message, tmp_path, capsys):
    assert main(["compare", *args, "--out", str(tmp_path / "x")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "x").exists()


def test_width_paragraph_compares_widths_trained_alike_only():
    """The recipe preset is seven trainings of one width: no 'width' paragraph; three widths of one training: one."""
    def row(recipe):
        return {"name": recipe.name, "recipe": recipe.to_dict(), "test_accuracy": 0.95, "params": 1000 * recipe.hidden[0],
                "int8_bytes": 1100 * recipe.hidden[0], "softmax_sum_max_error": 0.0,
                "top_probability": {"right_mean": 0.9, "wrong_mean": 0.6}}

    def has_width(rows):
        return any("hidden 10:" in p or "hidden 20:" in p for p in explanations(rows))

    same_width = [row(Recipe(**changes)) for changes in ({}, {"lr": 0.003, "schedule": "onecycle"}, {"shift": 1.0})]
    assert not has_width(same_width)
    assert has_width([row(Recipe(hidden=(h,))) for h in (10, 20, 64)])
    assert not has_width([row(Recipe(hidden=(10,))), row(Recipe(hidden=(20,), shift=1.0)), row(Recipe(hidden=(64,)))])
