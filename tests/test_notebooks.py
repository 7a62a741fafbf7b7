"""The notebooks run top to bottom in a real Jupyter kernel (nbclient) on the real MNIST, with few epochs.

Each notebook has one cell tagged "parameters"; the test adds a cell after it that overrides them
(papermill's convention), so CI trains for 3 epochs instead of 20. The notebooks assert their own
key numbers (probabilities sum to 1, int8 within 1 point of float, the C byte-identical to TFLM);
a failing assert fails the test. Also: the notebooks are committed without outputs, and importing
tinydigits leaves a notebook's process alone.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient
from nbclient.exceptions import CellExecutionError

import tinydigits
from tinydigits.runs import RUN_FILES
from tinydigits.targets import BOARDS

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
FEW_EPOCHS = {"EPOCHS": 3, "CHIP_IMAGES": 30}
CELL_TIMEOUT_S = 300


def with_parameters(nb, values: dict):
    """Insert a cell after the one tagged "parameters" that sets `values`; each must be one it defines."""
    [index] = [i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", [])]
    defined = nb.cells[index].source
    unknown = [k for k in values if f"{k} =" not in defined]
    assert not unknown, f"the parameters cell does not define {unknown}: the override would be ignored"
    lines = [f"{k} = {v!r}" for k, v in values.items()]
    nb.cells.insert(index + 1, nbformat.v4.new_code_cell("\n".join(lines), metadata={"tags": ["injected-parameters"]}))
    return nb


def execute(path: Path, workdir: Path, values: dict, last_cell: str = ""):
    nb = with_parameters(nbformat.read(path, as_version=4), values)
    if last_cell:
        nb.cells.append(nbformat.v4.new_code_cell(last_cell))
    env = {k: v for k, v in os.environ.items() if k != "MPLBACKEND"}  # the kernel picks its own, as in Jupyter
    if env.get("TINYDIGITS_DATA"):  # CI gives a relative path; the kernel runs in `workdir`
        env["TINYDIGITS_DATA"] = str(Path(env["TINYDIGITS_DATA"]).resolve())
    client = NotebookClient(nb, timeout=CELL_TIMEOUT_S, kernel_name="python3", resources={"metadata": {"path": str(workdir)}})
    try:
        client.execute(env=env)
    except CellExecutionError as e:
        pytest.fail(f"{path.name}: a cell failed:\n{str(e)[-3000:]}")
    return nb


def outputs_of(nb, mime: str) -> list:
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs if mime in o.get("data", {})]


def cell_text(cell) -> str:
    if cell.cell_type != "code":
        return ""
    return "".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in cell.outputs)


# The drawing pad's callbacks run whenever the user draws, after any cell: no later cell may rebind their names.
PAD_AFTER_ALL_CELLS = """
clear()
pen_down(140, 40)
pen_move(140, 250)
pen_up(140, 250)
"""


@pytest.mark.slow
def test_lesson_notebook_runs_and_shows_its_figures_inline(tmp_path):
    nb = execute(ROOT / "notebooks" / "lesson.ipynb", tmp_path, {"EPOCHS": 3, "RUN": "runs/lesson", "CONV_EPOCHS": 1},
                 last_cell=PAD_AFTER_ALL_CELLS)
    assert (tmp_path / "runs" / "lesson" / "model_int8.tflite").exists()
    assert (tmp_path / "runs" / "lesson-export" / "c" / "tinydigits_model.c").exists()
    assert (tmp_path / "runs" / "lesson" / RUN_FILES.boards).exists()
    assert (tmp_path / "my_digit.png").exists()
    # each figure once, inline: gallery, curves, probabilities, overlay, confusion, mistakes, flips
    pngs = outputs_of(nb, "image/png")
    assert len(pngs) >= 7
    figure_cells = [c for c in nb.cells if c.cell_type == "code" and c.source.lstrip().startswith("plots.")]
    assert figure_cells and all(sum("image/png" in o.get("data", {}) for o in c.outputs) == 1 for c in figure_cells)
    # TrainResult's summary and the drawing pad, as a notebook shows them
    html = [o["data"]["text/html"] for o in outputs_of(nb, "text/html")]
    assert any("TrainResult" in h and "test accuracy" in h for h in html)
    assert outputs_of(nb, "application/vnd.jupyter.widget-view+json")
    # the lesson's printout of test image 0: ten probabilities, sum 1, a 7
    printout = next(cell_text(c) for c in nb.cells if "true label 7, predicted" in cell_text(c))
    assert "sum of the ten 1.0000" in printout


@pytest.mark.slow
def test_deploy_notebook_runs_every_step(tmp_path):
    nb = execute(ROOT / "notebooks" / "deploy.ipynb", tmp_path, {**FEW_EPOCHS, "RUN": "runs/quick"})
    run = tmp_path / "runs" / "quick"
    assert json.loads((run / "mcu.json").read_text())["builds"][0]["images"] == FEW_EPOCHS["CHIP_IMAGES"]
    text = "".join(cell_text(c) for c in nb.cells)
    assert any("<b>Run</b>" in o["data"]["text/html"] for o in outputs_of(nb, "text/html"))  # the run's summary
    assert "TFLM int8" in text and "C vs TFLM: 1000 of 1000 images byte-identical" in text
    boards = json.loads((run / RUN_FILES.boards).read_text())["boards"]
    assert len(boards) == len(BOARDS) and all(b["matches_host"] == FEW_EPOCHS["CHIP_IMAGES"] for b in boards)
    # every board holds the lesson's model but the CH32V003, whose 16 KB of flash its 15,880 B of weights overflow
    assert {b["key"]: b["status"] for b in boards if b["status"] != "PASS"} == {"ch32v003": "FAIL"}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebooks_are_committed_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert "widgets" not in nb.metadata  # no saved widget state either
    [parameters] = [c for c in code if "parameters" in c.metadata.get("tags", [])]
    assert "EPOCHS = 20" in parameters.source


def test_notebooks_exist():
    assert [p.name for p in NOTEBOOKS] == ["deploy.ipynb", "lesson.ipynb"]


IMPORT_LEAVES_PROCESS_ALONE = """
import gc, os, sys
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"  # what Jupyter sets
import tinydigits, tinydigits.plots, tinydigits.serve, tinydigits.train, tinydigits.data
import matplotlib, matplotlib.pyplot  # plots uses no pyplot; a user's pyplot has no figure of ours open
fig = tinydigits.plots.training_curves({"loss": [1.0, 0.5], "accuracy": [0.5, 0.9]})
print(matplotlib.get_backend(), os.environ.get("XLA_FLAGS"), gc.get_freeze_count(), len(matplotlib.pyplot.get_fignums()),
      type(fig).__name__)
"""


def test_import_leaves_the_process_alone():
    """Matplotlib keeps the notebook's backend, XLA its threads, the collector runs; figures are not left open."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", IMPORT_LEAVES_PROCESS_ALONE], capture_output=True, text=True,
                         env=env, check=True).stdout.split()
    assert out == ["module://matplotlib_inline.backend_inline", "None", "0", "0", "Figure"]


CLI_SETTINGS = """
import os
os.environ["MPLBACKEND"] = "module://matplotlib_inline.backend_inline"
from tinydigits.cli import main
assert main(["predict", "/nonexistent-run", "--index", "0"]) == 2
import matplotlib
print(matplotlib.get_backend().lower(), os.environ["XLA_FLAGS"])
"""


def test_the_cli_picks_agg_and_one_xla_thread_for_itself():
    env = {k: v for k, v in os.environ.items() if k not in ("MPLBACKEND", "XLA_FLAGS")}
    out = subprocess.run([sys.executable, "-c", CLI_SETTINGS], capture_output=True, text=True, env=env, check=True)
    assert out.stdout.split() == ["agg", tinydigits.SINGLE_THREAD_XLA_FLAGS]


def test_single_thread_xla_keeps_the_users_flags(monkeypatch):
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    tinydigits.single_thread_xla()
    assert os.environ["XLA_FLAGS"] == "--xla_cpu_multi_thread_eigen=false"
    monkeypatch.setenv("XLA_FLAGS", "--xla_dump_to=/tmp/x")
    tinydigits.single_thread_xla()
    assert os.environ["XLA_FLAGS"] == "--xla_dump_to=/tmp/x"


def test_create_app_does_not_freeze_the_collector(converted_run):
    import gc

    from tinydigits.runs import Run
    from tinydigits.serve import create_app

    frozen = gc.get_freeze_count()
    create_app(Run(converted_run))
    assert gc.get_freeze_count() == frozen
