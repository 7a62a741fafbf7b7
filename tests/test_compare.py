import json

import numpy as np
import pytest

from tinydigits.cli import main
from tinydigits.compare import PRESETS, compare, explanations, parse_variant, variants, variants_from_file
from tinydigits.errors import TinyDigitsError
from tinydigits.model import Recipe


def test_parse_variant_and_file_forms(tmp_path):
    assert parse_variant("hidden=64,32 activation=tanh lr=0.01") == {"hidden": (64, 32), "activation": "tanh", "lr": 0.01}
    assert parse_variant("hidden=64x32")["hidden"] == (64, 32)
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
    assert {"h20-linear-ce", "h20-relu-mse", "h256-relu-ce"} <= set(names) and all(r.epochs == 2 for r in recipes)


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
    assert code == 0 and "h8-relu-ce" in stdout and "h16-relu-mse" in stdout
    rows = json.loads((out / "comparison.json").read_text())
    assert [r["name"] for r in rows] == ["h8-relu-ce", "h16-relu-mse"]
    for r in rows:
        assert {"name", "test_accuracy", "test_loss", "params", "int8_bytes", "train_seconds", "history"} <= set(r)
        assert len(r["history"]["val_accuracy"]) == 1
    assert "val_crossentropy" in rows[1]["history"]  # the MSE variant's curve is drawn in cross-entropy
    assert rows[0]["params"] == 784 * 8 + 8 + 90
    for name in ("comparison.md", "comparison.png", "calibration.png"):
        assert (out / name).stat().st_size > 0
    assert main(["compare", "--preset", "loss", "--out", str(out)]) == 2  # never overwrites a report
    assert "already exists" in capsys.readouterr().err
