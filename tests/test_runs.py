"""The run folder: Run's validated loaders, the manifest, preflight, atomic sets of files and their modes."""
import io
import json
import os
import shutil
import stat
import zipfile
from pathlib import Path

import numpy as np
import pytest

from conftest import save_tiny_run, tree

from tinydigits.artifacts import MANIFEST, manifest_kind, preflight, staged_folder, write_bytes
from tinydigits.errors import TinyDigitsError
from tinydigits.runs import RUN_FILES, Run


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """An untrained 784-4-10 model saved as a run folder by save_run (under umask 022): no training, no data."""
    return save_tiny_run(tmp_path_factory.mktemp("runs") / "tiny")


def test_run_reads_back_what_save_run_wrote(tiny_run):
    run = Run(tiny_run)
    assert run.metrics["test_accuracy"] == 0.55 and run.recipe.hidden == (4,) and run.recipe.epochs == 2
    assert run.history["val_accuracy"] == [0.35, 0.55]
    assert run.model().count_params() == 784 * 4 + 4 + 4 * 10 + 10
    assert run.model() is run.model()  # loaded once
    assert run.paths.int8_model == tiny_run / "model_int8.tflite" and RUN_FILES.int8_model == "model_int8.tflite"
    assert not run.converted and run.deploy_report() is None and run.arena_bytes() is None
    assert repr(run) == f"Run('{tiny_run}': h4-relu-ce-e2, test accuracy 0.5500)"
    assert "model.keras" in run._repr_html_() and os.fspath(run) == str(tiny_run)
    manifest = json.loads((tiny_run / MANIFEST).read_text())
    assert manifest["kind"] == "run" and manifest["created_by"] == "tinydigits train --out tiny" and manifest["version"] == 1
    assert manifest_kind(tiny_run) == "run"


def _zip(**members) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        for name, data in members.items():
            z.writestr(name.replace("_", "."), data)
    return buf.getvalue()


# (file, how to damage it, loader, what the one line says)
DAMAGED = [
    ("model.keras", lambda b: b"", "model", "model.keras: not a Keras model archive, truncated or damaged"),
    ("model.keras", lambda b: os.urandom(3000), "model", "model.keras: not a Keras model archive, truncated or damaged"),
    ("model.keras", lambda b: b[:len(b) // 2], "model", "model.keras: not a Keras model archive, truncated or damaged"),
    ("model.keras", lambda b: _zip(notes_txt=b"hi"), "model", "model.keras: not a Keras model archive (no config.json, model.weights.h5 inside)"),
    ("model.keras", lambda b: _zip(config_json=b"{", model_weights_h5=b"x", metadata_json=b"{}"), "model", "model.keras: cannot load the model"),
    ("metrics.json", lambda b: b[:len(b) // 2], "metrics", "metrics.json: not valid JSON, truncated or damaged"),
    ("metrics.json", lambda b: b"\xff\xfe\x00", "metrics", "metrics.json: not valid JSON"),
    ("metrics.json", lambda b: b"[1, 2]", "metrics", "metrics.json: expected a JSON dict, got list"),
    ("metrics.json", lambda b: b'{"recipe": {}}', "metrics", "metrics.json: no valid 'test_accuracy'"),
    ("metrics.json", lambda b: b'{"test_accuracy": 0.9, "recipe": {"epochs": 0}}', "recipe", "metrics.json: bad recipe (epochs must be at least 1"),
    ("metrics.json", lambda b: b'{"test_accuracy": 0.9, "recipe": {"color": 1}}', "recipe", "metrics.json: bad recipe (unknown recipe field 'color'"),
    ("metrics.json", None, "metrics", "metrics.json: missing"),
    ("history.json", lambda b: b[:5], "history", "history.json: not valid JSON"),
    ("history.json", lambda b: b'{"loss": ["a"]}', "history", "history.json: expected lists of numbers per metric"),
    ("model_int8.tflite", lambda b: b"garbage", "int8_model", "model_int8.tflite: not a .tflite model (truncated or damaged)"),
    ("model_int8.tflite", None, "int8_model", "no model_int8.tflite (run `tinydigits convert"),
    ("deploy.json", lambda b: b'{"forms": [', "deploy_report", "deploy.json: not valid JSON"),
    ("deploy.json", lambda b: b'{"forms": 3}', "deploy_report", "deploy.json: no valid 'forms' list"),
    ("deploy.json", lambda b: b'{"forms": [{"arena_bytes": -1}]}', "arena_bytes", "deploy.json: arena_bytes must be a positive integer"),
]


@pytest.mark.parametrize("name, damage, loader, message", DAMAGED)
def test_a_damaged_file_is_one_line_naming_it(name, damage, loader, message, tiny_run, tmp_path):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    path = folder / name
    original = path.read_bytes() if path.exists() else b'{"forms": []}'
    if damage is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(damage(original))
    run = Run(folder)
    with pytest.raises(TinyDigitsError) as e:
        value = getattr(run, loader)
        value() if callable(value) else value
    text = str(e.value)
    assert message in text and len(text.splitlines()) == 1 and "File not found" not in text, text


@pytest.mark.parametrize("make, message", [
    (lambda d: d / "nothing", "no such run folder"),
    (lambda d: d, "not a run folder (no model.keras"),
    (lambda d: (d / "f").write_bytes(b"x") and d / "f", "is a file, not a run folder"),
])
def test_not_a_run_folder(make, message, tmp_path):
    with pytest.raises(TinyDigitsError) as e:
        Run(make(tmp_path))
    assert message in str(e.value)


def _folder_of_images(folder: Path) -> Path:
    folder.mkdir(parents=True)
    for i in range(10):
        (folder / f"digit{i}.png").write_bytes(b"\x89PNG fake %d" % i)
    return folder


# (what is at --out, force, resume, what preflight says; None: accepted)
PREFLIGHT = [
    (lambda d: _folder_of_images(d / "imgs"), True, None, "imgs: not a folder tinydigits wrote (no .tinydigits.json)"),
    (lambda d: _folder_of_images(d / "imgs"), False, None, "imgs: already exists (use --force"),
    (lambda d: (d / "a_file").write_text("keep me") and d / "a_file", True, None, "a_file: is a file, not a folder tinydigits wrote"),
    (lambda d: (d / "a_file").write_text("keep me") and d / "a_file" / "run", False, None, "a_file is a file"),
    (lambda d: Path("."), True, None, "is the current folder or one above it"),
    (lambda d: Path(".."), True, None, "is the current folder or one above it"),
    (lambda d: Path("/proc/x"), False, None, "/proc/x: cannot be written"),
    (lambda d: Path("/proc/x/run"), False, None, "/proc/x/run: cannot be written"),
    (lambda d: _folder_of_images(d / "imgs"), False, "search", "imgs: exists and is not a search folder"),
    (lambda d: d / "new" / "deeper", False, None, None),
    (lambda d: (d / "empty").mkdir() or d / "empty", False, "search", None),
]


@pytest.mark.parametrize("make, force, resume, message", PREFLIGHT)
def test_preflight(make, force, resume, message, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    target = make(tmp_path)
    before = tree(tmp_path)
    if message is None:
        assert preflight(target, force, resume) == target
    else:
        with pytest.raises(TinyDigitsError) as e:
            preflight(target, force, resume)
        assert message in str(e.value) and len(str(e.value).splitlines()) == 1, str(e.value)
    assert tree(tmp_path) == before  # a check, not a change


def test_force_replaces_only_folders_tinydigits_wrote_of_the_same_kind(tiny_run, tmp_path):
    legacy = tmp_path / "legacy"  # a run folder from before manifests: metrics.json + model.keras
    shutil.copytree(tiny_run, legacy)
    (legacy / MANIFEST).unlink()
    before = tree(legacy)
    assert manifest_kind(legacy) == "run" and preflight(legacy, force=True, kind="run") == legacy
    with pytest.raises(TinyDigitsError) as e:  # `export-c RUN --out runs/h64 --force` must not wipe a trained run
        with staged_folder(legacy, "export", "tinydigits export-c", force=True) as tmp:
            write_bytes(tmp / "c" / "x.c", b"int x;\n")
    assert str(e.value) == f"{legacy}: is a run folder, not an export folder; choose another --out"
    assert tree(legacy) == before
    with staged_folder(tmp_path / "out", "export", "tinydigits export-c") as tmp:
        write_bytes(tmp / "c" / "x.c", b"int x;\n")
    with staged_folder(tmp_path / "out", "export", "tinydigits export-c", force=True) as tmp:
        write_bytes(tmp / "c" / "y.c", b"int y;\n")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == [MANIFEST, "c"] and manifest_kind(tmp_path / "out") == "export"
    assert [p.name for p in (tmp_path / "out" / "c").iterdir()] == ["y.c"]
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no staging leftovers


def test_a_web_folder_can_be_replaced_with_force(tmp_path):
    """export-web --force replaces the site it wrote (kind "web" is a kind tinydigits knows)."""
    for page in (b"one", b"two"):
        with staged_folder(tmp_path / "site", "web", "tinydigits export-web", force=True) as tmp:
            write_bytes(tmp / "index.html", page)
    assert manifest_kind(tmp_path / "site") == "web" and (tmp_path / "site" / "index.html").read_bytes() == b"two"
    with pytest.raises(AssertionError):  # a kind manifest_kind would not read back
        with staged_folder(tmp_path / "other", "webpage"):
            pass
    assert sorted(p.name for p in tmp_path.iterdir()) == ["site"]


def test_a_symbolic_link_stays_a_link(tiny_run, tmp_path):
    """Adding files through a link to a run updates the run; --force never swaps a link for a folder."""
    shutil.copytree(tiny_run, tmp_path / "real-run")
    (tmp_path / "run").symlink_to("real-run")
    with staged_folder(tmp_path / "run", "run", update=True) as tmp:
        write_bytes(tmp / RUN_FILES.deploy, b"{}")
    assert (tmp_path / "run").is_symlink() and (tmp_path / "real-run" / RUN_FILES.deploy).read_bytes() == b"{}"
    with staged_folder(tmp_path / "real-site", "web") as tmp:
        write_bytes(tmp / "index.html", b"old")
    (tmp_path / "site").symlink_to("real-site")
    with pytest.raises(TinyDigitsError) as e:
        with staged_folder(tmp_path / "site", "web", force=True) as tmp:
            write_bytes(tmp / "index.html", b"new")
    assert str(e.value).startswith(f"{tmp_path / 'site'}: is a symbolic link (to real-site)")  # as `ls -l` shows it
    assert (tmp_path / "site").is_symlink() and (tmp_path / "real-site" / "index.html").read_bytes() == b"old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["real-run", "real-site", "run", "site"]


def test_an_update_from_inside_the_run_replaces_and_removes_files(tiny_run, tmp_path, monkeypatch):
    """`tinydigits boards .` from inside a run that has firmware/: files move in one by one, what the new
    set removed (an earlier build's files) goes, and no .partial is left behind."""
    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    write_bytes(folder / "firmware" / "uno" / "firmware.elf", b"old uno")
    write_bytes(folder / "firmware" / "uno" / "firmware.map", b"old map")
    write_bytes(folder / "firmware" / "pico" / "firmware.elf", b"pico")
    monkeypatch.chdir(folder)
    before = tree(folder)
    with staged_folder(Path("."), "run", update=True) as tmp:
        shutil.rmtree(tmp / "firmware" / "uno")
        write_bytes(tmp / "firmware" / "uno" / "firmware.elf", b"new uno")
        write_bytes(tmp / RUN_FILES.boards, b"{}")
    after = tree(folder)
    assert after.pop("firmware/uno/firmware.elf")[1] == b"new uno" and after.pop(RUN_FILES.boards)[1] == b"{}"
    before.pop("firmware/uno/firmware.elf"), before.pop("firmware/uno/firmware.map")
    assert after == before  # pico's build and every run file as they were; the old map gone
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"] and Path.cwd() == folder


def test_a_dataset_entry_of_the_wrong_type_is_one_line(tiny_run, tmp_path):
    for dataset, shown in (('"mnist"', '"mnist"'), ('{"name": "mnist", "data_dir": 3}', '{"name": "mnist", "data_dir": 3}')):
        folder = tmp_path / f"run{len(shown)}"
        shutil.copytree(tiny_run, folder)
        metrics = json.loads((folder / "metrics.json").read_text())
        (folder / "metrics.json").write_text(json.dumps({**metrics, "dataset": json.loads(dataset)}))
        with pytest.raises(TinyDigitsError) as e:
            Run(folder).dataset()
        assert str(e.value) == (f"{folder / 'metrics.json'}: 'dataset' must be {{\"name\": str, \"data_dir\": str or null}}, "
                                f"got {shown}")


@pytest.mark.parametrize("mask, file_mode, dir_mode", [(0o022, 0o644, 0o755), (0o077, 0o600, 0o700), (0o002, 0o664, 0o775)])
def test_modes_follow_the_umask(mask, file_mode, dir_mode, tiny_run, tmp_path):
    old = os.umask(mask)
    try:
        with staged_folder(tmp_path / "out", "export") as tmp:
            write_bytes(tmp / "c" / "model.c", b"/* generated */\n")
        shutil.copytree(tiny_run, tmp_path / "run")
        with staged_folder(tmp_path / "run", "run", update=True) as tmp:  # what convert does
            write_bytes(tmp / RUN_FILES.int8_model, b"\x00" * 4 + b"TFL3")
    finally:
        os.umask(old)
    for folder in (tmp_path / "out", tmp_path / "out" / "c"):
        assert stat.S_IMODE(folder.stat().st_mode) == dir_mode, folder
    for path in (tmp_path / "out" / "c" / "model.c", tmp_path / "out" / MANIFEST, tmp_path / "run" / RUN_FILES.int8_model):
        assert stat.S_IMODE(path.stat().st_mode) == file_mode, path
    assert stat.S_IMODE((tmp_path / "run").stat().st_mode) == 0o755  # an updated folder keeps the mode it had


def test_save_run_files_follow_umask_022(tiny_run):
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in tiny_run.iterdir()}
    assert set(modes.values()) == {0o644}, modes
    assert stat.S_IMODE(tiny_run.stat().st_mode) == 0o755


@pytest.mark.parametrize("inside", [False, True])
def test_a_set_of_files_is_added_all_at_once_or_not_at_all(inside, tiny_run, tmp_path, monkeypatch):
    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    if inside:  # `tinydigits convert .` from inside the run folder
        monkeypatch.chdir(folder)
    before = tree(folder)
    with pytest.raises(RuntimeError):
        with staged_folder(folder, "run", update=True) as tmp:
            write_bytes(tmp / RUN_FILES.float_model, b"one")
            write_bytes(tmp / RUN_FILES.int8_model, b"two")
            raise RuntimeError("crash between the files")
    assert tree(folder) == before
    assert [p.name for p in tmp_path.iterdir()] == ["run"]  # no .partial left behind
    with staged_folder(folder, "run", update=True) as tmp:
        write_bytes(tmp / RUN_FILES.float_model, b"one")
        write_bytes(tmp / RUN_FILES.deploy, b"{}")
    after = tree(folder)
    assert {k: v for k, v in after.items() if k in before} == before  # the old files, as they were
    assert after[RUN_FILES.float_model][1] == b"one" and after[RUN_FILES.deploy][1] == b"{}"
    assert [p.name for p in tmp_path.iterdir()] == ["run"] and Path.cwd().exists()


def test_convert_adds_its_four_files_as_one_set(tiny_run, tmp_path, monkeypatch):
    """A failure after the .tflite files are made (here: drawing flips.png) leaves the run as it was."""
    import tinydigits.convert as verify  # convert_run: the `convert` command

    folder = tmp_path / "run"
    shutil.copytree(tiny_run, folder)
    stale = b"\x00" * 4 + b"TFL3 from an earlier convert"
    write_bytes(folder / RUN_FILES.int8_model, stale)
    run = Run(folder)
    assert run.int8_model() == stale  # read, and kept in memory
    before = tree(folder)
    fake_report = {"forms": [{"form": "TFLM int8", "arena_bytes": 1024}], "flips": [], "quantization": {}, "ops": []}
    monkeypatch.setattr(verify, "compare_forms", lambda *a, **k: dict(fake_report))
    monkeypatch.setattr(verify, "calibration_images", lambda x, n: x[:10])

    def broken_figure(fig, path):
        raise OSError("disk full")

    monkeypatch.setattr(verify, "save_figure", broken_figure)
    with pytest.raises(OSError):
        verify.convert_run(run)
    assert tree(folder) == before and [p.name for p in tmp_path.iterdir()] == ["run"]
    monkeypatch.undo()
    monkeypatch.setattr(verify, "compare_forms", lambda *a, **k: dict(fake_report))
    verify.convert_run(run, calibration=10)
    assert run.int8_model() == (folder / RUN_FILES.int8_model).read_bytes() != stale  # what export-c would read next
    run = Run(folder)
    assert run.converted and run.arena_bytes() == 1024 and run.int8_model()[4:8] == b"TFL3"
    for name in (RUN_FILES.float_model, RUN_FILES.int8_model, RUN_FILES.deploy, RUN_FILES.flips):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644
    assert np.frombuffer(run.int8_model()[:4], np.uint32)[0] > 0  # a flatbuffer root offset
