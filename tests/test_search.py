import json
import shutil

import numpy as np
import pytest

from tinydigits.model import Recipe
from tinydigits.errors import TinyDigitsError
from tinydigits.search import Budget, candidates, flash_estimate, load_progress, mark_front, save_progress, search
from tinydigits.search_space import DENSE_CODE_BYTES, UNIT_BYTES, estimate

needs_toolchain = pytest.mark.skipif(not (shutil.which("arm-none-eabi-gcc") and shutil.which("qemu-system-arm")),
                                     reason="gcc-arm-none-eabi / qemu-system-arm not installed")


def test_candidates_fit_by_estimate_and_hold_out_validation():
    budget = Budget(flash=8 * 1024, ram=2048)
    cs = candidates(budget, Recipe(epochs=3), space="dense")
    assert cs and all(estimate(r).weight_bytes + DENSE_CODE_BYTES < flash_estimate(r) <= budget.flash for r in cs)
    assert {r.weight_bits for r in cs} == {4, 8} and cs[0].weight_bits == 4  # int4: twice the weights per byte
    wide = Recipe(hidden=(64,))
    assert flash_estimate(wide) - flash_estimate(wide.replace(weight_bits=4)) == (784 * 64 + 640) // 2
    assert {r.input_size for r in cs} == {28, 14, 12, 10, 7} and cs[0].input_size in (10, 12)
    assert max(len(r.hidden) for r in cs) == 3
    assert all(r.validation_split > 0 and r.epochs == 3 and r.activation == "relu" for r in cs)
    assert estimate(Recipe()).weights == 784 * 20 + 200 and estimate(Recipe()).arena == 784 + 20
    assert len({r.name for r in cs}) == len(cs)


def test_conv_candidates_come_first_and_their_estimates_follow_the_generator():
    """The estimate of a CNN's weights and activations is the generated C's (the op table's count)."""
    from tinydigits import codegen
    from tinydigits.convert import to_tflite
    from tinydigits.model import build_model

    cs = candidates(Budget(flash=16 * 1024, ram=64 * 1024), Recipe(epochs=3))
    assert cs[0].conv and {r.stride for r in cs if r.conv} == {1, 2} and any(r.separable for r in cs)
    assert any(not r.conv for r in cs) and all(estimate(r).ram <= 64 * 1024 for r in cs)
    for recipe in (Recipe(conv=(4, 8), hidden=()), Recipe(conv=(4, 6), stride=2, separable=True, hidden=(8,))):
        images = np.random.default_rng(0).integers(0, 256, (20, 28, 28), dtype=np.uint8)
        facts = codegen.generate(to_tflite(build_model(recipe), images), "x", "y").facts
        e = estimate(recipe)
        assert abs(e.arena - facts["arena_bytes"]) <= 0.15 * facts["arena_bytes"], (recipe.design, e, facts["arena_bytes"])
        constants = e.weights + UNIT_BYTES * e.channels  # the C pads each row of weights to 4 bytes: a little more
        assert constants <= facts["weight_bytes"] <= 1.15 * constants, (recipe.design, e, facts["weight_bytes"])


def test_pareto_front():
    rows = [{"flash_bytes": 100, "validation_accuracy": 0.90}, {"flash_bytes": 200, "validation_accuracy": 0.95},
            {"flash_bytes": 300, "validation_accuracy": 0.93}, {"flash_bytes": 150, "validation_accuracy": 0.89}]
    assert [r["on_front"] for r in mark_front(rows)] == [True, True, False, False]


@needs_toolchain
def test_search_measures_resumes_and_saves_a_usable_best_run(mnist, tmp_path, capsys):
    from tinydigits.targets.host import compile_host, run_batch
    from tinydigits.cli import main
    from tinydigits.codegen import plan, reference_outputs
    from tinydigits.runtimes import TFLM, LiteRT, tflm_refuses

    out = tmp_path / "s"
    # 12 KB: the first candidates tried fit with the model's code and constants (~1.9 KB on the
    # Cortex-M4 with the fast kernels)
    budget = Budget(flash=12 * 1024, ram=2048)
    rows = search(mnist, budget, out, Recipe(epochs=1, batch_size=128), max_candidates=2, progress=lambda line: None,
                  space="dense")
    saved = json.loads((out / "search.json").read_text())
    assert len(rows) == len(saved["candidates"]) == 2 and (out / "pareto.png").exists()
    for r in saved["candidates"]:
        # measured: weights (int4: half a byte each) + code
        assert r["flash_bytes"] > estimate(Recipe.from_dict(r["recipe"])).weight_bytes
        assert 0 < r["ram_bytes"] < 2048 and 0.8 < r["validation_accuracy"] < 1 and "on_front" in r
        assert r["emulator_agrees_with_litert"] >= 0.9 and r["board"] == "nano33ble" and r["macs"] > 0
    # resume: the two done candidates are kept, one more is added
    rows = search(mnist, budget, out, Recipe(epochs=1, batch_size=128), max_candidates=1, progress=lambda line: None,
                  space="dense")
    with pytest.raises(TinyDigitsError, match="trained differently"):  # never mixed with other training
        search(mnist, budget, out, Recipe(epochs=2, batch_size=128), max_candidates=1, progress=lambda line: None)
    with pytest.raises(TinyDigitsError, match="measured on nano33ble, not uno"):  # nor with another board's figures
        search(mnist, Budget(flash=12 * 1024, ram=2048, board="uno"), out, Recipe(epochs=1, batch_size=128),
               max_candidates=1, progress=lambda line: None)
    assert len(rows) == 3 and [r["name"] for r in rows[:2]] == [r["name"] for r in saved["candidates"]]
    assert saved["best"] and (out / "best" / "model.keras").exists()
    from tinydigits.artifacts import manifest_kind
    from tinydigits.runs import Run

    best = Run(out / "best")  # written by save_run, as train writes runs, with its int8 model
    assert manifest_kind(out) == "search" and manifest_kind(out / "best") == "run" and best.converted
    assert best.recipe.name == json.loads((out / "search.json").read_text())["best"]
    assert LiteRT(best.int8_model()).predict(mnist.x_test[:1]).shape == (1, 10)
    assert not [p for p in out.iterdir() if p.name.startswith(".") and p.name != ".tinydigits.json"]
    # the best run is a normal run folder: convert and export it; a pooled model's C still equals TFLM
    assert main(["convert", str(out / "best")]) == 0
    assert main(["export-c", str(out / "best"), "--out", str(tmp_path / "fw")]) == 0
    int8 = (out / "best" / "model_int8.tflite").read_bytes()
    q = LiteRT(int8).prepare(mnist.x_test[:2000])
    # TFLM's Python interpreter refuses int4 FULLY_CONNECTED (the space tries int4 first): then the op table's numpy
    # reference, which the C equals op by op in tests/test_int4.py, stands for it
    deployed = reference_outputs(plan(int8), q) if tflm_refuses(int8) else TFLM(int8).run(q)
    assert np.array_equal(run_batch(compile_host(tmp_path / "fw" / "c"), q), deployed)
    assert np.array_equal(run_batch(compile_host(tmp_path / "fw" / "c", match_litert=True), q), LiteRT(int8).run(q))
    capsys.readouterr()


@needs_toolchain
def test_search_on_ray_tune(mnist, tmp_path):
    pytest.importorskip("ray")
    from tinydigits.search_ray import search_with_ray

    out = tmp_path / "ray"
    rows = search_with_ray(mnist, Budget(flash=4 * 1024, ram=2048), out, Recipe(epochs=1), max_candidates=2,
                           progress=lambda line: None)
    assert len(rows) == 2 and all(r["flash_bytes"] > 0 for r in rows)
    assert json.loads((out / "search.json").read_text())["candidates"][0]["name"] == rows[0]["name"]


def test_resuming_with_a_different_training_is_refused(tmp_path):
    budget = Budget(flash=8 * 1024, ram=2048)
    row = {"name": "h8-relu-ce", "recipe": Recipe(hidden=(8,)).to_dict(), "flash_bytes": 7000, "ram_bytes": 100,
           "validation_accuracy": 0.9, "test_accuracy": 0.9}
    save_progress(tmp_path, [row], budget, Recipe(epochs=3))
    assert load_progress(tmp_path, Recipe(epochs=3, hidden=(64,)))[0]["name"] == "h8-relu-ce"  # designs differ: fine
    for other in (Recipe(epochs=4), Recipe(epochs=3, shift=1.0), Recipe(epochs=3, seed=1)):
        with pytest.raises(TinyDigitsError, match="trained differently"):
            load_progress(tmp_path, other)


def test_a_search_json_from_before_training_was_recorded_resumes_with_its_own_recipe(tmp_path):
    """Older search.json files have no 'training': the rows' own recipe (here 5 epochs) is what they were trained with."""
    row = {"name": "h8-relu-ce-e5", "recipe": Recipe(hidden=(8,), epochs=5).to_dict(), "flash_bytes": 7000,
           "ram_bytes": 100, "validation_accuracy": 0.9, "test_accuracy": 0.9}
    (tmp_path / "search.json").write_text(json.dumps({"candidates": [row]}))
    assert load_progress(tmp_path, Recipe(epochs=5))[0]["name"] == "h8-relu-ce-e5"
    with pytest.raises(TinyDigitsError, match="trained differently"):
        load_progress(tmp_path, Recipe())


@pytest.mark.parametrize("args, message", [(["--epochs", "0"], "epochs must be at least 1"),
                                           (["--recipe", "lesson", "--lr", "0"], "learning rate"),
                                           (["--max-candidates", "0"], "--max-candidates must be at least 1"),
                                           (["--seed", "x"], "invalid int value")])
def test_search_refuses_bad_values(args, message, tmp_path, capsys):
    from tinydigits.cli import main

    assert main(["search", "--flash-kb", "8", *args, "--out", str(tmp_path / "s")]) == 2
    assert message in capsys.readouterr().err and not (tmp_path / "s").exists()


@pytest.mark.skipif(not shutil.which("avr-gcc"), reason="gcc-avr not installed")
def test_a_conv_search_on_the_uno_measures_its_ram_with_the_stack(mnist, tmp_path):
    """--board uno --space conv: a CNN built with avr-gcc and run in simavr; its RAM is the arena (.bss)
    plus the stack simavr saw, and it fits the 2 KB that a sketch leaves."""
    small = mnist.__class__(mnist.name, mnist.x_train[:12000], mnist.y_train[:12000], mnist.x_test[:2000],
                            mnist.y_test[:2000], mnist.folder)
    budget = Budget(flash=24 * 1024, ram=1700, board="uno")
    rows = search(small, budget, tmp_path / "s", Recipe(epochs=1, batch_size=64), max_candidates=1,
                  progress=lambda line: None, space="conv")
    r = rows[0]
    assert r["recipe"]["conv"] and r["board"] == "uno" and "cycles_per_inference" in r
    assert r["arena_bytes"] < r["ram_bytes"] <= 1700 and r["flash_bytes"] <= budget.flash
    assert r["validation_accuracy"] > 0.8 and json.loads((tmp_path / "s" / "search.json").read_text())["board"] == "uno"
