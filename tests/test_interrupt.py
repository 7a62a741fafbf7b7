"""Ctrl-C stops a command: exit 130, nothing written, even when the KeyboardInterrupt lands in a GC callback."""
import gc
import os
import signal
import subprocess
import sys
import time

import pytest

from tinydigits.artifacts import staged_folder, write_text
from tinydigits.interrupt import check, ctrl_c_stops

# Runs `tinydigits train` in this process after arming a GC callback that presses Ctrl-C from inside
# the collector, as happens when a real press lands in JAX's XLA GC callback (the exception is
# printed as "Exception ignored" and dropped). Armed once the model is built, so it fires in training.
SWALLOWED_PRESS = """
import gc, signal, sys
import tinydigits.train as train
from tinydigits.cli import main
armed, fired = [], []
def press_inside_gc(phase, info):
    if armed and not fired:
        fired.append(phase)
        signal.raise_signal(signal.SIGINT)   # the handler runs here, inside the GC callback
gc.callbacks.insert(0, press_inside_gc)
build_model = train.build_model
def arm(*args, **kwargs):
    armed.append(1)
    return build_model(*args, **kwargs)
train.build_model = arm
code = main(sys.argv[1:])
print("fired" if fired else "not fired", file=sys.stderr)
sys.exit(code)
"""


def interrupted(proc) -> bool:
    """Exit 130, or killed by SIGINT (what a shell also shows as 130)."""
    return proc.returncode in (130, -signal.SIGINT)


def test_a_press_swallowed_by_a_gc_callback_is_not_lost():
    def press_inside_gc(phase, info):
        gc.callbacks.remove(press_inside_gc)
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt):
        with ctrl_c_stops():
            gc.callbacks.insert(0, press_inside_gc)
            gc.collect()  # the KeyboardInterrupt raised in the callback is dropped by the collector
            time.sleep(0.01)
    check()  # the press is forgotten once the block is left
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_nothing_is_written_after_a_swallowed_press(tmp_path):
    def press_inside_gc(phase, info):
        gc.callbacks.remove(press_inside_gc)
        signal.raise_signal(signal.SIGINT)

    with pytest.raises(KeyboardInterrupt), ctrl_c_stops():
        with staged_folder(tmp_path / "run", "run") as tmp:
            write_text(tmp / "a.txt", "complete")
            gc.callbacks.insert(0, press_inside_gc)
            gc.collect()
    assert list(tmp_path.iterdir()) == []  # neither the folder nor a hidden partial one


@pytest.mark.slow
def test_train_stops_when_ctrl_c_lands_in_a_gc_callback(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.run([sys.executable, "-c", SWALLOWED_PRESS, "train", "--epochs", "3", "--quiet",
                           "--out", str(out)], capture_output=True, text=True, timeout=300)
    assert "fired" == proc.stderr.strip().splitlines()[-1], proc.stderr[-2000:]
    assert interrupted(proc), proc.stderr[-2000:]
    assert "error: interrupted" in proc.stderr and "Traceback" not in proc.stderr
    assert "Exception ignored" not in proc.stderr
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_ctrl_c_during_training_a_real_process(tmp_path):
    out = tmp_path / "run"
    proc = subprocess.Popen([sys.executable, "-m", "tinydigits", "train", "--epochs", "20", "--out", str(out)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().startswith("training ")
    time.sleep(2.0)  # into the epochs
    proc.send_signal(signal.SIGINT)
    start = time.monotonic()
    _, err = proc.communicate(timeout=120)
    assert interrupted(proc), err[-2000:]
    assert time.monotonic() - start < 15  # it stops within a few steps, not after 20 epochs
    assert err.strip().splitlines()[-1] == "error: interrupted" and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []
