"""Ctrl-C that always stops a command, even when it lands where Python cannot raise it.

Python turns Ctrl-C (SIGINT) into a KeyboardInterrupt raised wherever the main thread happens to
be. When that is inside a garbage-collector callback (JAX registers one that frees XLA buffers),
the exception is printed as "Exception ignored" and dropped: training would carry on, write its
run folder and exit 0. While `ctrl_c_stops()` is active a press raises as usual *and* is
remembered; `check()` raises it again at safe points (after every Keras training step, before
any artifact is renamed into place), so a press is never lost and nothing is written after it.

    with ctrl_c_stops():        # the CLI wraps every command in this
        train(recipe, ds)       # train() calls check() after each step; artifacts.* before each rename
"""
from __future__ import annotations

import contextlib
import signal
import sys
import threading

_pressed = threading.Event()


def check() -> None:
    """Raise KeyboardInterrupt if Ctrl-C was pressed, even if its first raise was swallowed."""
    if _pressed.is_set():
        raise KeyboardInterrupt


def _on_sigint(signum, frame):
    _pressed.set()
    raise KeyboardInterrupt


@contextlib.contextmanager
def ctrl_c_stops():
    """Remember Ctrl-C presses for `check()` while the block runs (main thread, default handler only)."""
    in_main = threading.current_thread() is threading.main_thread()
    if not in_main or signal.getsignal(signal.SIGINT) is not signal.default_int_handler:
        yield  # Ctrl-C ignored (SIG_IGN) or owned by someone else: leave it alone
        return
    previous_hook = sys.unraisablehook

    def unraisable(info):
        if not (isinstance(info.exc_value, KeyboardInterrupt) and _pressed.is_set()):
            previous_hook(info)  # a swallowed Ctrl-C is not news: check() raises it again

    _pressed.clear()
    signal.signal(signal.SIGINT, _on_sigint)
    sys.unraisablehook = unraisable
    try:
        yield
        check()  # a press swallowed after the last safe point still stops the command
    finally:
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sys.unraisablehook = previous_hook
        _pressed.clear()
