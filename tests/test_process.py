"""The command's process: stderr carries only tinydigits' own lines, and a crash is never hidden.

`process.supervise` runs the command in a child whose file descriptor 2 is a pipe; tinydigits'
lines go to the user's stderr. Checked here with small stand-in children, then with the real
commands (as subprocesses, as a user runs them): nothing on stderr but our own lines.
"""
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

from tinydigits import process

# A stand-in for the command: native chatter on fd 2 (as TensorFlow and LiteRT print it), its own
# line on the user's stderr (as cli.main prints `error: ...`), then an exit status or a crash.
CHILD = textwrap.dedent("""
    import os, sys
    from tinydigits import process
    process.adopt_stderr()
    os.write(2, b"I0000 port.cc:153] oneDNN custom operations are on\\n")
    print("warning: ours", file=sys.stderr)
    how = sys.argv[1]
    if how == "segfault":
        import ctypes
        ctypes.string_at(0)
    if how == "raise":
        raise RuntimeError("a bug of ours")
    sys.exit(int(how))
""")


def supervised(how: str) -> subprocess.CompletedProcess:
    """`process.supervise` around CHILD, in a process of its own (its stderr is what the user sees)."""
    code = (f"import sys; from tinydigits import process; "
            f"sys.exit(process.supervise([], [sys.executable, '-c', {CHILD!r}, {how!r}]))")
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("how, code", [("0", 0), ("2", 2), ("130", 130)])
def test_native_chatter_is_kept_from_the_users_stderr(how, code):
    proc = supervised(how)
    assert proc.returncode == code and proc.stderr == "warning: ours\n"


@pytest.mark.parametrize("how, code, says", [("segfault", 139, "was killed by SIGSEGV"),
                                              ("raise", 1, "stopped with exit status 1"),
                                              ("3", 3, "stopped with exit status 3")])
def test_a_crash_shows_what_the_libraries_printed(how, code, says):
    proc = supervised(how)
    assert proc.returncode == code
    assert "oneDNN custom operations are on" in proc.stderr and says in proc.stderr  # nothing hidden
    assert proc.stderr.splitlines()[-1].startswith("error: tinydigits ")
    if how == "raise":
        assert "RuntimeError: a bug of ours" in proc.stderr  # the traceback went straight to the user
    if how == "segfault":
        assert "Fatal Python error: Segmentation fault" in proc.stderr  # faulthandler, on the user's stderr


def test_the_cli_settings_leave_a_library_process_alone(monkeypatch):
    """cli.main([...]) called from Python sets environment defaults only; warnings and logging stay the caller's."""
    import logging
    import warnings

    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    before = (list(warnings.filters), logging.getLogger().level)
    process.settings(verbose=False, quiet_python=False)
    assert (list(warnings.filters), logging.getLogger().level) == before
    assert os.environ["TF_CPP_MIN_LOG_LEVEL"] == "3"


# ---- the real commands, as a user runs them -------------------------------------------------------

def tinydigits(*argv, cwd=None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tinydigits", *map(str, argv)], capture_output=True, text=True,
                          cwd=cwd, timeout=600)


def test_train_convert_predict_export_c_print_nothing_on_stderr(converted_run, tmp_path):
    """TensorFlow's start-up lines, absl's warnings, the converter's and LiteRT's prints: none reach the user."""
    run = tmp_path / "run"
    shutil.copytree(converted_run, run)
    for argv in (["train", "--epochs", "1", "--out", tmp_path / "new"], ["convert", run],
                 ["predict", run, "--index", "0"], ["export-c", run, "--out", tmp_path / "fw"]):
        proc = tinydigits(*argv)
        assert proc.returncode == 0 and proc.stderr == "", (argv, proc.stderr[-2000:])
        assert "\r" not in proc.stdout and "\x1b" not in proc.stdout, argv  # no progress-bar redraws or colours
    epochs = [line for line in tinydigits("train", "--epochs", "2", "--out", tmp_path / "two").stdout.splitlines()
              if line.startswith("Epoch ")]
    assert [e.split(" - ")[:2] for e in epochs] == [["Epoch 1/2", "1875/1875"], ["Epoch 2/2", "1875/1875"]]


def test_verbose_shows_what_the_libraries_print(converted_run, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(converted_run, run)
    quiet, verbose = tinydigits("convert", run), tinydigits("--verbose", "convert", run)
    assert quiet.returncode == verbose.returncode == 0 and quiet.stderr == ""
    assert "XNNPACK" in verbose.stderr or "absl" in verbose.stderr, verbose.stderr[-2000:]
    assert verbose.stdout.splitlines()[-1] == quiet.stdout.splitlines()[-1]  # the same work, the same report


def test_a_bad_flag_is_refused_before_keras_jax_or_tensorflow_is_imported(converted_run, tmp_path):
    """Each of these is one error line, exit 2, and the heavy libraries were never imported (so it is fast)."""
    cases = [["predict", "/nonexistent", "--index", "0"], ["train", "--epochs", "-1"],
             ["boards", converted_run, "--board", "Nope"], ["mcu", converted_run, "--images", "0"],
             ["convert", converted_run, "--calibration", "0"], ["export-c", "/nonexistent", "--out", tmp_path / "x"],
             ["predict", converted_run, "a.png", "b.png", "--save-raw", tmp_path / "x.raw"],
             ["serve", "/nonexistent"], ["train", "--recipe", "worse"]]
    code = textwrap.dedent(f"""
        import json, sys
        from tinydigits.cli import main
        results = []
        for argv in {[[str(a) for a in c] for c in cases]!r}:
            code = main(argv)
            results.append([code, sorted(m for m in ("keras", "jax", "tensorflow") if m in sys.modules)])
        print(json.dumps(results))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    results = [tuple(r) for r in __import__("json").loads(proc.stdout)]
    assert results == [(2, [])] * len(cases), proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == len(cases) and all(line.startswith("error: ") for line in lines), lines
    assert "unknown board 'Nope' (known: uno, mega2560," in lines[2]


def test_train_never_imports_tensorflow(tmp_path):
    """Training runs on JAX: TensorFlow (2 s of start-up) is for the commands that convert. Keras asks
    whether TensorFlow is installed when it seeds and when it saves; the answer must not import it."""
    code = textwrap.dedent(f"""
        import sys
        from tinydigits.cli import main
        code = main(["train", "--epochs", "1", "--quiet", "--out", {str(tmp_path / "run")!r}])
        print(code, "tensorflow" in sys.modules, "jax" in sys.modules)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert proc.stdout.splitlines()[-1] == "0 False True", proc.stderr[-2000:]
    assert (tmp_path / "run" / "model.keras").is_file()
