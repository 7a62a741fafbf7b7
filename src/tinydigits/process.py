"""What the `tinydigits` command sets for its own process, and how its stderr stays its own.

The library never calls this (a notebook keeps its process as it was); `cli.main` does, once.

- `settings(verbose)`: environment variables the libraries read when they are imported, so they
  are set before any import: matplotlib's Agg backend, XLA's single CPU thread, JAX's persistent
  compilation cache, TensorFlow's C++ log level; and, unless verbose, Python-level chatter off
  (warnings, and every logger below ERROR: absl's "Please consider providing the trackable_obj",
  JAX's platform notices). Set up once, here.
- `supervise(argv)`: what native libraries print on file descriptor 2 cannot be turned off from
  Python: TensorFlow's start-up lines ("All log messages before absl::InitializeLog()", oneDNN,
  cpu_feature_guard), the converter's "fully_quantize: 0, ...", LiteRT's "Created TensorFlow Lite
  XNNPACK delegate for CPU", the TFLM interpreter's allocation reports. So the command runs in a
  child process whose fd 2 is a pipe to this one, and tinydigits' own lines (`error: ...`,
  `warning: ...`, a traceback, a download's progress bar) go straight to the user's stderr, a
  duplicate of it passed down as TINYDIGITS_STDERR_FD. Nothing is redirected in a running process,
  and nothing is lost: when the child dies in a way that is not one of ours (a signal, an uncaught
  exception), the native lines it printed are shown, then one line naming what happened. Ctrl-C
  reaches the child's process group once, as it would without the parent.
- `--verbose` runs the command in this process with all of it shown.

    code = supervise(sys.argv[1:])     # in cli.main, when not --verbose
"""
from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import warnings
from pathlib import Path

from . import single_thread_xla

STDERR_FD = "TINYDIGITS_STDERR_FD"  # set in the child: the user's stderr, for tinydigits' own lines
KEPT_BYTES = 256 * 1024             # the tail of the child's native output kept for a crash report
OUR_EXIT_CODES = (0, 2, 130)        # success, an error we reported in one line, Ctrl-C
FORWARDED = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP, signal.SIGQUIT)


def settings(verbose: bool = False, quiet_python: bool = False) -> None:
    """The process-wide settings of the CLI, for it and the workers it starts (see the module docstring).

    `quiet_python`: also Python's warnings and library loggers below ERROR off, when this process is
    the command's own (not `cli.main([...])` called from Python, whose warnings stay the caller's).
    It also keeps XLA's compiled training programs between runs in ~/.cache/tinydigits/xla (JAX's
    persistent cache; JAX_COMPILATION_CACHE_DIR moves it): the second `train` of a design skips the
    compilation. Only before JAX is imported.
    """
    from .data import default_cache_dir

    os.environ["MPLBACKEND"] = "Agg"  # figures go to files, never to a window
    if "matplotlib" in sys.modules:   # already imported (the CLI called from Python): switch it directly
        sys.modules["matplotlib"].use("Agg")
    single_thread_xla()
    os.environ.setdefault("JAX_COMPILATION_CACHE_DIR", str(default_cache_dir() / "xla"))
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
    if verbose:
        if os.environ.get("TF_CPP_MIN_LOG_LEVEL") == "2":  # tinydigits' own default (see __init__)
            os.environ["TF_CPP_MIN_LOG_LEVEL"] = "0"
        return
    if os.environ.get("TF_CPP_MIN_LOG_LEVEL") in (None, "2"):
        os.environ["TF_CPP_MIN_LOG_LEVEL"] = "3"  # TensorFlow's C++ logging after start-up: errors only
    if not quiet_python:
        return
    warnings.simplefilter("ignore")               # libraries' deprecation and user warnings
    logging.getLogger().setLevel(logging.ERROR)   # every logger that does not set its own level
    for name in ("absl", "jax", "tensorflow"):    # those that may set one: absl's, JAX's, TensorFlow's
        logging.getLogger(name).setLevel(logging.ERROR)


# Libraries Keras imports at its own import when they are installed, for features tinydigits never
# uses: DataFrame inputs (pandas), its notebook file editor (IPython), bounding boxes (cv2) and
# image galleries (pyplot). About 1 s of a `tinydigits train`, on 2 cores.
KERAS_EXTRAS = ("pandas", "IPython", "cv2", "matplotlib.pyplot")


def import_keras() -> None:
    """Import Keras without KERAS_EXTRAS (it takes them as not installed). The CLI calls it in its own
    process just before the work that needs Keras; each of them can still be imported afterwards."""
    if "keras" in sys.modules:
        return
    held = [name for name in KERAS_EXTRAS if name not in sys.modules]
    for name in held:
        sys.modules[name] = None  # an import of it raises ImportError, which Keras catches
    try:
        import keras  # noqa: F401
    finally:
        for name in held:
            if sys.modules.get(name, 0) is None:
                del sys.modules[name]


def is_child() -> bool:
    """This process is the child of `supervise`."""
    return STDERR_FD in os.environ


def can_supervise() -> bool:
    """A POSIX system (the child gets the user's stderr as an inherited file descriptor)."""
    return os.name == "posix"


def adopt_stderr() -> None:
    """In the child: Python's stderr (and a crash's traceback) goes to the user's, not to the pipe."""
    import faulthandler

    fd = int(os.environ.pop(STDERR_FD))  # not for grandchildren: a nested tinydigits supervises itself
    os.set_inheritable(fd, False)
    sys.stderr = open(fd, "w", buffering=1, encoding=sys.stderr.encoding or "utf-8", errors="backslashreplace",
                      closefd=False)
    faulthandler.enable(sys.stderr)


def supervise(argv: list[str], command: list[str] | None = None) -> int:
    """Run `tinydigits ARGV` (or `command`) in a child process (see the module docstring); its exit code."""
    user_stderr = os.dup(2)
    package_root = str(Path(__file__).resolve().parent.parent)  # the child imports this very tinydigits
    env = {**os.environ, STDERR_FD: str(user_stderr),
           "PYTHONPATH": os.pathsep.join(p for p in (package_root, os.environ.get("PYTHONPATH")) if p)}
    command = command or [sys.executable, *subprocess._args_from_interpreter_flags(), "-m", "tinydigits", *argv]
    own_group = {"process_group": 0} if sys.version_info >= (3, 11) else {"preexec_fn": os.setpgrp}
    child = subprocess.Popen(command, stderr=subprocess.PIPE, pass_fds=(user_stderr,), env=env, **own_group)
    os.close(user_stderr)
    kept = bytearray()

    def keep():  # drained as it comes, so the child never blocks on a full pipe
        for chunk in iter(lambda: child.stderr.read1(65536), b""):
            kept.extend(chunk)
            del kept[:-KEPT_BYTES]

    reader = threading.Thread(target=keep, daemon=True)
    reader.start()
    previous = {s: signal.signal(s, lambda signum, frame: _forward(child, signum)) for s in FORWARDED}
    try:
        code = child.wait()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
    reader.join(timeout=1.0)  # a grandchild may still hold the pipe open: do not wait for it
    if code not in OUR_EXIT_CODES:
        report_crash(code, bytes(kept))
    return code if code >= 0 else 128 - code


def _forward(child: subprocess.Popen, signum: int) -> None:
    """A signal to this process goes to the child's process group: the child and what it started."""
    try:
        os.killpg(child.pid, signum)
    except ProcessLookupError:
        pass


def report_crash(code: int, native_output: bytes) -> None:
    """Show what the libraries printed, then one line saying how the command ended."""
    if native_output:
        sys.stderr.write(native_output.decode("utf-8", "backslashreplace"))
        if not native_output.endswith(b"\n"):
            sys.stderr.write("\n")
    how = f"was killed by {signal.Signals(-code).name}" if code < 0 else f"stopped with exit status {code}"
    print(f"error: tinydigits {how}; above: what it and its libraries printed", file=sys.stderr)
