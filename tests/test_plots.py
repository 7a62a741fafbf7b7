"""Every figure reads at a glance: a title, both axes labelled with their units, whole epochs, log axes
where the values span decades."""
import sys
from pathlib import Path

import numpy as np
import pytest

from tinydigits import plots

sys.path.insert(0, str(Path(__file__).parent))
from test_boards import synthetic_boards_report  # noqa: E402

HISTORY = {"loss": [0.5, 0.3, 0.25], "accuracy": [0.85, 0.91, 0.93], "val_loss": [0.4, 0.3, 0.28],
           "val_accuracy": [0.88, 0.91, 0.92]}
UNITS = ("fraction", "bytes", "milliseconds", "per image", "(0-1)", "log scale", "density", "digit", "class",
         "true", "predicted", "epoch", "board")  # a unit, or what a category axis counts


def plotted_axes(fig):
    """The panels with axes (an image shown without its axes, beside a chart, is not one)."""
    return [ax for ax in fig.axes if ax.has_data() and ax.axison]


def check_readable(fig, axis_labels=True):
    fig.canvas.draw()  # ticks are placed when drawn
    title = fig._suptitle.get_text() if fig._suptitle else ""
    for ax in plotted_axes(fig):
        assert ax.get_title() or title, "an untitled plot"
        if axis_labels:
            for label in (ax.get_xlabel(), ax.get_ylabel()):
                if label == "" and ax in fig.axes[1:] and ax.get_shared_y_axes().joined(ax, fig.axes[0]):
                    continue  # a y axis shared with the first panel, labelled there
                assert any(unit in label for unit in UNITS), f"{label!r} says no unit"
    return fig


def whole_epochs(ax):
    ticks = [t for t in ax.get_xticks() if ax.get_xlim()[0] <= t <= ax.get_xlim()[1]]
    return ticks and all(float(t).is_integer() for t in ticks)


@pytest.mark.parametrize("epochs", [1, 3, 7, 60])
def test_curves_show_whole_epochs(epochs):
    history = {k: list(np.linspace(v[0], v[-1], epochs)) for k, v in HISTORY.items()}
    fig = check_readable(plots.training_curves(history, title="h20-relu-ce"))
    assert all(whole_epochs(ax) for ax in plotted_axes(fig)), [list(ax.get_xticks()) for ax in fig.axes]
    fig = check_readable(plots.overlay_curves({"a": history, "b": history}))
    assert all(whole_epochs(ax) for ax in plotted_axes(fig)) and fig.axes[1].get_yscale() == "log"


def test_every_figure_is_titled_and_labelled_with_units():
    rng = np.random.default_rng(0)
    check_readable(plots.probabilities(rng.integers(0, 255, (28, 28)), np.full(10, 0.1)))
    check_readable(plots.confusion_matrix_figure(rng.integers(0, 100, (10, 10)), [str(d) for d in range(10)]))
    check_readable(plots.calibration(rng.random(100), rng.random(100) > 0.3))
    check_readable(plots.image_gallery(rng.integers(0, 255, (3, 28, 28)), ["a", "b", "c"], "flips"), axis_labels=False)
    points = [{"flash_bytes": f, "validation_accuracy": a, "on_front": o, "name": "x", "test_accuracy": a}
              for f, a, o in ((1_500, 0.90, True), (9_000, 0.95, True), (31_000, 0.97, True), (20_000, 0.93, False))]
    fig = check_readable(plots.pareto(points, 32 * 1024, points[2]))
    assert fig.axes[0].get_xscale() == "log"  # 1.5 KB to 31 KB: decades of flash


def test_boards_figure_puts_flash_ram_and_latency_on_log_axes():
    report = synthetic_boards_report()
    fig = check_readable(plots.boards_figure(report))
    flash, ram, latency = fig.axes
    assert [ax.get_xscale() for ax in fig.axes] == ["log"] * 3
    built = [r for r in report["boards"] if "ram_bytes" in r]
    assert [t.get_text() for t in flash.get_yticklabels()] == [r["key"] for r in built]
    chip_bars = flash.containers[0]  # the chip's flash, one bar per board, from the same left edge
    assert [round(b.get_x() + b.get_width()) for b in chip_bars] == [r["chip_flash_bytes"] for r in built]
    assert [round(b.get_x() + b.get_width()) for b in ram.containers[1]] == [r["ram_bytes"] for r in built]


def test_a_figure_shows_itself_in_a_notebook():
    """Made without pyplot, a figure still displays as a cell's value: IPython asks for _repr_png_."""
    png = plots.training_curves(HISTORY)._repr_png_()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 10_000
