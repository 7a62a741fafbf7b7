"""Writing folders safely: locks, one-step swaps, a user's folder never deleted, both of two writers' files
landing, leftovers of a killed command, a full disk, names too long, symbolic links in a run."""
import errno
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import needs, save_tiny_run, tree

from tinydigits import artifacts
from tinydigits.artifacts import MANIFEST, staged_folder, write_bytes
from tinydigits.cli import main
from tinydigits.errors import TinyDigitsError
from tinydigits.targets import avr, missing_packages

CLI = [sys.executable, "-m", "tinydigits"]


@pytest.fixture(scope="module")
def int8_run(tmp_path_factory):
    """An untrained 784-4-10 run with a model_int8.tflite: export-c can run on it, no data needed."""
    return save_tiny_run(tmp_path_factory.mktemp("runs") / "tiny8", int8=True)


def _mine(folder: Path) -> Path:
    folder.mkdir(parents=True)
    (folder / "thesis.txt").write_text("three years of work")
    return folder


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.mark.parametrize("kind, force", [("run", False), ("run", True), ("web", True)])
def test_a_folder_the_user_makes_at_the_destination_meanwhile_is_kept(kind, force, tmp_path):
    """`train --out X` (or `export-web --force`) while the user creates X: X and its files stay, one line says so."""
    final = tmp_path / "X"
    with pytest.raises(TinyDigitsError) as e:
        with staged_folder(final, kind, "tinydigits train", force=force) as tmp:
            write_bytes(tmp / "metrics.json", b"{}")
            _mine(final)  # the user, while the command works
    assert "left as it is" in str(e.value) or "already exists" in str(e.value) or "not a folder tinydigits wrote" in str(e.value)
    assert (final / "thesis.txt").read_text() == "three years of work" and sorted(os.listdir(final)) == ["thesis.txt"]
    assert _hidden(tmp_path) == []


def test_train_keeps_a_folder_the_user_makes_at_its_out_while_it_trains(tmp_path, mnist):
    """The audit's case, as a user meets it: `tinydigits train --out X` running, the user makes X."""
    out = tmp_path / "X"
    proc = subprocess.Popen([*CLI, "train", "--hidden", "4", "--epochs", "3", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training ")  # printed once the data is loaded, before training
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".X.*.partial")) and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)  # train is writing its staged folder: the moment before the final rename
    _mine(out)
    code, err = proc.wait(300), proc.stderr.read()
    assert code == 2 and err.strip().splitlines()[-1] == (
        f"error: {out}: appeared while this command ran, not made by it; left as it is, nothing written "
        "(choose another --out)"), err
    assert sorted(os.listdir(out)) == ["thesis.txt"] and _hidden(tmp_path) == []


def test_a_folder_put_in_place_of_ours_is_never_swapped_out_and_deleted(tmp_path, monkeypatch):
    """--force over our own folder, which the user replaces by theirs meanwhile, before the check or in the
    instant between the check and the swap: theirs stays."""
    final = tmp_path / "site"
    with staged_folder(final, "web") as tmp:
        write_bytes(tmp / "index.html", b"ours")
    with pytest.raises(TinyDigitsError, match="left as it is"):
        with staged_folder(final, "web", force=True) as tmp:
            write_bytes(tmp / "index.html", b"new")
            shutil.rmtree(final)
            _mine(final)
    assert sorted(os.listdir(final)) == ["thesis.txt"]
    shutil.rmtree(final)
    with staged_folder(final, "web") as tmp:
        write_bytes(tmp / "index.html", b"ours")
    from tinydigits import atomic

    real_exchange = atomic.exchange

    def theirs_first(a, b):  # the user's folder lands after the check, just before the swap
        if not (Path(b) / "thesis.txt").exists():
            shutil.rmtree(b)
            _mine(Path(b))
        real_exchange(a, b)

    monkeypatch.setattr(artifacts, "exchange", theirs_first)
    with pytest.raises(TinyDigitsError, match="changed while this command ran"):
        with staged_folder(final, "web", force=True) as tmp:
            write_bytes(tmp / "index.html", b"new")
    assert sorted(os.listdir(final)) == ["thesis.txt"] and _hidden(tmp_path) == []


def test_a_reader_never_sees_the_folder_missing_or_half_written(tmp_path, monkeypatch):
    """A reader polling the path while --force replaces the folder 40 times: every read finds the folder,
    its manifest and a whole file; and after every step of each commit the folder is there."""
    final = tmp_path / "out"
    with staged_folder(final, "export") as tmp:
        write_bytes(tmp / "a.c", b"0" * 4096)
    seen = []
    stop = threading.Event()

    def poll():
        while not stop.is_set():
            try:
                seen.append((final / MANIFEST).exists() and (final / "a.c").read_bytes())
            except FileNotFoundError:
                seen.append(None)

    for name in ("rename", "replace"):  # every rename of a commit: the folder must be whole after each
        real = getattr(os, name)

        def checked(*args, _real=real, **kwargs):
            _real(*args, **kwargs)
            if os.path.exists(tmp_path / ".check"):
                seen.append((final / "a.c").is_file() or None)
        monkeypatch.setattr(os, name, checked)
    reader = threading.Thread(target=poll)
    reader.start()
    try:
        for i in range(1, 40):
            (tmp_path / ".check").touch()
            with staged_folder(final, "export", force=True) as tmp:
                write_bytes(tmp / "a.c", str(i % 10).encode() * 4096)
            (tmp_path / ".check").unlink()
    finally:
        stop.set()
        reader.join()
    assert None not in seen and False not in seen
    assert all(s is True or (len(s) == 4096 and len(set(s)) == 1) for s in seen)  # whole files only


def test_without_renameat2_the_fallback_is_as_safe(tmp_path, monkeypatch):
    from tinydigits import atomic

    monkeypatch.setattr(atomic, "_renameat2", None)
    final = tmp_path / "out"
    for text in (b"one", b"two"):
        with staged_folder(final, "export", force=True) as tmp:
            write_bytes(tmp / "x.c", text)
    assert (final / "x.c").read_bytes() == b"two" and _hidden(tmp_path) == []
    (tmp_path / "empty").mkdir()
    with pytest.raises(FileExistsError):
        atomic.move_new(final, tmp_path / "empty")  # never onto a folder, not even an empty one
    with pytest.raises(TinyDigitsError, match="appeared while this command ran"):
        with staged_folder(tmp_path / "new", "export") as tmp:
            write_bytes(tmp / "x.c", b"")
            _mine(tmp_path / "new")
    assert sorted(os.listdir(tmp_path / "new")) == ["thesis.txt"]


def test_two_trains_into_one_folder_at_once_one_stops_with_one_line(tmp_path, mnist):
    out = tmp_path / "X"
    argv = [*CLI, "train", "--hidden", "4", "--epochs", "2", "--quiet", "--out", str(out), "--force"]
    procs = [subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for _ in range(2)]
    results = [(p.wait(300), p.stderr.read()) for p in procs]
    codes = sorted(code for code, _ in results)
    assert codes == [0, 2], results
    err = next(err for code, err in results if code == 2).strip().splitlines()[-1]
    assert err.startswith(f"error: {out}: is being written by pid ") and "tinydigits train" in err, err
    assert (out / "model.keras").is_file() and _hidden(tmp_path) == []


@needs(missing_packages(avr.TOOLS, avr.HEADERS), "avr toolchain not installed")
def test_evaluate_while_boards_runs_both_results_land(converted_run, tmp_path, caplog):
    """The lost update: `tinydigits evaluate RUN` while `tinydigits boards RUN` runs."""
    from tinydigits.boards import measure_boards
    from tinydigits.evaluate import evaluate_run
    from tinydigits.runs import Run

    run = tmp_path / "run"
    shutil.copytree(converted_run, run, ignore=shutil.ignore_patterns("evaluation.json", "boards.json", "firmware"))
    errors = []

    def boards():
        try:
            measure_boards(Run(run), ["uno"], images=20, command="tinydigits boards run")
        except Exception as e:  # noqa: BLE001 (reported by the assert below)
            errors.append(e)

    first = threading.Thread(target=boards)
    first.start()
    deadline = time.monotonic() + 120
    while not list(tmp_path.glob(".run.*.partial")) and time.monotonic() < deadline:  # boards is staging its set
        time.sleep(0.02)
    evaluate_run(Run(run), "tinydigits evaluate run")
    first.join()
    assert not errors
    for name in ("boards.json", "evaluation.json", "confusion.png", "mistakes.png", "firmware/uno"):
        assert (run / name).exists(), name
    assert any("waiting: " in r.getMessage() and "tinydigits boards run" in r.getMessage() for r in caplog.records)


def test_a_killed_writer_leaves_nothing_that_stops_the_next_one(tmp_path):
    """kill -9 in the middle of a set of files: the next command succeeds and removes what was left."""
    final, run = tmp_path / "out", tmp_path / "run"
    script = (f"import os\nfrom pathlib import Path\nfrom tinydigits.artifacts import staged_folder, write_bytes\n"
              f"with staged_folder(Path({str(final)!r}), 'export') as tmp:\n"
              f"    write_bytes(tmp / 'x.c', b'1' * 1000)\n    os.kill(os.getpid(), 9)\n")
    assert subprocess.run([sys.executable, "-c", script]).returncode == -9
    assert any(name.endswith(".partial") for name in _hidden(tmp_path)) and not final.exists()
    with staged_folder(final, "export") as tmp:
        write_bytes(tmp / "y.c", b"2")
    assert _hidden(tmp_path) == [] and sorted(os.listdir(final)) == [MANIFEST, "y.c"]
    _mine(run)
    (run / MANIFEST).write_text('{"kind": "run"}')
    (run / ".metrics.json.k1ll3d.tmp").write_bytes(b"half a file")  # write_bytes' temp file of a killed command
    with staged_folder(run, "run", update=True) as tmp:
        write_bytes(tmp / "deploy.json", b"{}")
    assert sorted(os.listdir(run)) == [MANIFEST, "deploy.json", "thesis.txt"]


def test_a_full_disk_is_one_line_and_nothing_half_written(int8_run, tmp_path, capsys, monkeypatch):
    def full(fd):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "fsync", full)
    before = tree(int8_run)
    assert main(["export-c", str(int8_run), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err.strip()
    assert err == f"error: no space left on {tmp_path / 'out'} (no space left on the device); nothing was written"
    assert os.listdir(tmp_path) == [] and tree(int8_run) == before
    assert main(["convert", str(int8_run)]) == 2  # adding to a run: the run as it was
    assert "error: no space left on " in capsys.readouterr().err and tree(int8_run) == before


def test_a_full_tmpfs_is_one_line_and_nothing_half_written(int8_run, tmp_path):
    """The same on a real 16 KB file system (a tmpfs mounted in a user namespace: no root needed)."""
    if shutil.which("unshare") is None or subprocess.run(["unshare", "-rm", "true"]).returncode != 0:
        pytest.skip("no user namespaces here to mount a small tmpfs in")
    disk = tmp_path / "disk"
    disk.mkdir()
    script = (f"mount -t tmpfs -o size=16k tinydigits-test {disk} || exit 99; "
              f"{sys.executable} -m tinydigits export-c {int8_run} --out {disk}/out; code=$?; "
              f"echo left: $(ls -A {disk}); exit $code")
    proc = subprocess.run(["unshare", "-rm", "sh", "-c", script], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)})
    if proc.returncode == 99:
        pytest.skip("tmpfs cannot be mounted here")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert proc.returncode == 2 and errors == [f"error: no space left on {disk}/out (no space left on the device); "
                                               "nothing was written"], proc.stderr
    assert "Traceback" not in proc.stderr and proc.stdout.strip() == "left:"


def test_names_too_long(int8_run, tmp_path, capsys):
    assert main(["export-c", str(int8_run), "--out", str(tmp_path / ("a" * 300))]) == 2
    err = capsys.readouterr().err
    assert "name too long" in err and "at most 255" in err and len(err.splitlines()) == 1
    longest = tmp_path / ("b" * 255)  # the longest name there is: its staging sibling and lock are shortened
    assert main(["export-c", str(int8_run), "--out", str(longest)]) == 0
    assert (longest / "c" / "Makefile").is_file() and _hidden(tmp_path) == []
    assert main(["evaluate", str(tmp_path / ("c" * 5000))]) == 2
    assert "too long" in capsys.readouterr().err


def test_symbolic_links_in_a_run_are_read_through_and_left_as_they_are(tmp_path):
    outside = tmp_path / "elsewhere.json"
    outside.write_text('{"notes": 1}')
    run = _mine(tmp_path / "run")
    (run / MANIFEST).write_text('{"kind": "run"}')
    (run / "notes.json").symlink_to(outside)
    (run / "loop").symlink_to("loop")  # a symbolic link loop
    with staged_folder(run, "run", update=True) as tmp:
        write_bytes(tmp / "deploy.json", b"{}")
        write_bytes(tmp / "notes.json", b'{"notes": 2}')  # replaces the link in the run, not what it points to
    assert os.readlink(run / "loop") == "loop" and outside.read_text() == '{"notes": 1}'
    assert not (run / "notes.json").is_symlink() and (run / "notes.json").read_text() == '{"notes": 2}'
