"""Figures, as pure functions from data to a matplotlib Figure (save with artifacts.save_figure).

    fig = training_curves(history)         # the lesson's "model accuracy" and "model loss"
    fig = boards_figure(report)            # `boards`: flash and RAM against each chip's, latency

Every figure has a title and axes labelled with their units; epochs are whole numbers on the axis,
and values that span decades (flash bytes, chip memory, latency) sit on a log axis.

The figures are matplotlib `Figure` objects made without pyplot: none of pyplot's global state
(its list of open figures, its backend), so pyplot neither shows one a second time at the end of a
notebook cell nor keeps it alive in a long loop, and the CLI does not pay for importing pyplot. In
Jupyter and Colab a returned Figure shows as the cell's value; `fig.savefig(...)` in a script.
"""
from __future__ import annotations

import io

import matplotlib.figure
import numpy as np
from matplotlib.ticker import MaxNLocator


class Figure(matplotlib.figure.Figure):
    """A matplotlib Figure that shows itself as a PNG where a notebook displays a cell's value (pyplot's
    inline backend would do it for figures made through pyplot; these are not)."""

    def _repr_png_(self) -> bytes:
        buf = io.BytesIO()
        self.savefig(buf, format="png", bbox_inches="tight")
        return buf.getvalue()


def _subplots(*args, figsize=None, **kwargs):
    """Like plt.subplots, but a Figure of its own, outside pyplot (see the module docstring)."""
    fig = Figure(figsize=figsize)
    return fig, fig.subplots(*args, **kwargs)


def _epoch_axis(ax, epochs: int) -> None:
    """Epochs are counted: whole numbers on the x axis, never 2.5 (and a single epoch is 1, not 0.95-1.05)."""
    ax.set_xlabel("epoch")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    if epochs == 1:
        ax.set_xticks([1])


def training_curves(history: dict, title: str = "", loss_name: str = "cross-entropy"):
    """Per-epoch train and test accuracy and loss, side by side, as the lesson plots them."""
    fig, axes = _subplots(1, 2, figsize=(10, 3.8))
    epochs = np.arange(1, len(history["loss"]) + 1)
    for ax, key, name, unit in ((axes[0], "accuracy", "model accuracy", "accuracy (fraction correct)"),
                                (axes[1], "loss", "model loss", f"loss ({loss_name}, mean per image)")):
        ax.plot(epochs, history[key], label="train")
        if f"val_{key}" in history:
            ax.plot(epochs, history[f"val_{key}"], label="test")
        ax.set_title(name)
        _epoch_axis(ax, len(epochs))
        ax.set_ylabel(unit)
        ax.legend()
        ax.grid(alpha=0.3)
    fig.suptitle(title or "training curves")
    return fig


def probabilities(image: np.ndarray, probabilities: np.ndarray, title: str = "", class_names: list[str] | None = None):
    """A 28x28 image beside the bar chart of its ten softmax probabilities, the top one highlighted."""
    names = class_names or [str(d) for d in range(len(probabilities))]
    fig, (left, right) = _subplots(1, 2, figsize=(8, 2.8), gridspec_kw={"width_ratios": [1, 3]})
    left.imshow(image, cmap="gray_r")
    left.axis("off")
    colours = ["C3" if i == np.argmax(probabilities) else "C0" for i in range(len(probabilities))]
    right.bar(names, probabilities, color=colours)
    right.set_ylim(0, 1)
    right.set_xlabel("class" if class_names else "digit")
    right.set_ylabel("softmax probability (0-1)")
    right.set_title(title or f"predicted {names[int(np.argmax(probabilities))]} ({np.max(probabilities):.4f})")
    return fig


def confusion_matrix_figure(confusion: np.ndarray, class_names: list[str]):
    fig, ax = _subplots(figsize=(6.5, 5.5))
    ax.imshow(np.log1p(confusion), cmap="Blues")
    for (i, j), n in np.ndenumerate(confusion):
        ax.text(j, i, str(n), ha="center", va="center", fontsize=7,
                color="white" if i == j else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=45 if len(class_names[0]) > 2 else 0)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title("confusion matrix (test set)")
    return fig


def image_gallery(images: np.ndarray, captions: list[str], title: str, columns: int = 8):
    """A grid of 28x28 images with a caption under each (mistakes, float/int8 flips)."""
    n = max(len(images), 1)
    rows = (n + columns - 1) // columns
    fig, axes = _subplots(rows, columns, figsize=(1.4 * columns, 1.6 * rows + 0.4), squeeze=False)
    for ax in axes.flat:
        ax.axis("off")
    for ax, image, caption in zip(axes.flat, images, captions):
        ax.imshow(image, cmap="gray_r")
        ax.set_title(caption, fontsize=7)
    if not len(images):
        axes.flat[0].text(0.5, 0.5, "none", ha="center", va="center")
    fig.suptitle(title)
    return fig


def overlay_curves(histories: dict[str, dict]):
    """Test accuracy and cross-entropy per epoch of several variants on shared axes (compare).

    An MSE-trained variant is drawn with its cross-entropy metric, not its MSE loss, so all compare.
    """
    fig, axes = _subplots(1, 2, figsize=(11, 4))
    for name, history in histories.items():
        epochs = np.arange(1, len(history["val_loss"]) + 1)
        axes[0].plot(epochs, history["val_accuracy"], label=name)
        axes[1].plot(epochs, history.get("val_crossentropy", history["val_loss"]), label=name)
    for ax, label, unit in zip(axes, ("test accuracy", "test loss (cross-entropy)"),
                               ("accuracy (fraction correct)", "cross-entropy per image (log scale)")):
        ax.set_title(label)
        _epoch_axis(ax, max(len(h["val_loss"]) for h in histories.values()))
        ax.set_ylabel(unit)
        ax.grid(alpha=0.3)
    axes[1].set_yscale("log")
    axes[0].legend(fontsize=7)
    fig.suptitle("variants compared, per epoch")
    return fig


def calibration(top_probability: np.ndarray, correct: np.ndarray, name: str = ""):
    """Histogram of the top softmax probability for right and wrong answers."""
    fig, ax = _subplots(figsize=(6, 3.5))
    bins = np.linspace(0, 1, 21)
    ax.hist(top_probability[correct], bins=bins, alpha=0.6, label=f"right ({correct.sum()})", density=True)
    ax.hist(top_probability[~correct], bins=bins, alpha=0.6, label=f"wrong ({(~correct).sum()})", density=True)
    ax.set_xlabel("top softmax probability (0-1)")
    ax.set_ylabel("density (images per unit of probability)")
    ax.set_title(f"confidence of right vs wrong answers {name}".strip())
    ax.legend()
    return fig


def pareto(points: list[dict], budget_bytes: float | None = None, best: dict | None = None):
    """Int8 validation accuracy (what selection sees) vs flash bytes; the front joined by a line."""
    fig, ax = _subplots(figsize=(7, 4.5))
    flash = np.array([p["flash_bytes"] for p in points])
    acc = np.array([p["validation_accuracy"] for p in points])
    front = np.array([p["on_front"] for p in points], dtype=bool)
    ax.scatter(flash, acc, s=14, c="grey", label="candidates")
    order = np.argsort(flash[front])
    ax.plot(flash[front][order], acc[front][order], "o-", c="C3", label="Pareto front")
    if budget_bytes:
        ax.axvline(budget_bytes, ls="--", c="k", lw=1, label="flash budget")
    if best:
        ax.scatter([best["flash_bytes"]], [best["validation_accuracy"]], marker="*", s=220, c="gold", edgecolors="k",
                   zorder=5, label=f"chosen: {best['name']} (test {100 * best['test_accuracy']:.2f}%)")
    ax.set_xscale("log")
    ax.set_xlabel("flash, bytes (weights + code, Cortex-M4; log scale)")
    ax.set_ylabel("int8 validation accuracy (fraction correct)")
    ax.set_title("candidates: accuracy against flash")
    ax.grid(alpha=0.3, which="both")
    ax.legend()
    return fig


def preprocessing_steps(steps, probabilities: np.ndarray | None = None, title: str = ""):
    """The preprocessing of one picture, step by step (a preprocess.Steps), beside the model's probabilities."""
    panels = [(steps.gray, "input (grey)", "gray"), (steps.ink, "background removed", "gray"),
              (steps.binary.astype(float) + steps.chosen, "binarized (digit bright)", "gray"),
              (steps.shaped, "cropped, slant and pen fitted", "gray"), (steps.digit, "28x28 the model saw", "gray")]
    extra = probabilities is not None
    fig, axes = _subplots(1, len(panels) + extra, figsize=(2.6 * (len(panels) + extra), 2.9),
                          gridspec_kw={"width_ratios": [1] * len(panels) + ([1.3] if extra else [])})
    for ax, (image, name, cmap) in zip(axes, panels):
        ax.imshow(image, cmap=cmap, vmin=0, vmax=image.max() or 1, interpolation="nearest")
        ax.set_title(name, fontsize=9)
        ax.axis("off")
    if extra:
        ax = axes[-1]
        ax.barh(np.arange(len(probabilities)), probabilities, color="tab:blue")
        ax.barh(int(np.argmax(probabilities)), probabilities.max(), color="tab:orange")
        ax.set_yticks(np.arange(len(probabilities)))
        ax.invert_yaxis()
        ax.set_xlim(0, 1)
        ax.set_title(f"predicted {int(np.argmax(probabilities))} ({probabilities.max():.2f})", fontsize=9)
    if title:
        fig.suptitle(title, fontsize=10)
    return fig


def boards_figure(report: dict):
    """`boards`: each board's model flash and RAM against the chip's (log axes: 2 KB to 2 MB), and the
    latency of one inference (log axis; Cortex-M times are lower bounds, hatched). Bars start at a
    fixed small value, so on the log axis their lengths compare across boards and panels."""
    rows = [r for r in report["boards"] if "ram_bytes" in r]
    y = np.arange(len(rows))
    fig, axes = _subplots(1, 3, figsize=(15, 0.5 * len(rows) + 2.2), sharey=True)
    for ax, used, have, what in ((axes[0], "flash_bytes", "chip_flash_bytes", "flash"),
                                 (axes[1], "ram_bytes", "chip_ram_bytes", "RAM")):
        base = 100  # bytes: where every bar starts
        ax.barh(y, [r[have] - base for r in rows], left=base, color="0.85", label=f"the chip's {what}")
        ax.barh(y, [r[used] - base for r in rows], left=base, height=0.5,
                color=["C0" if r[used] <= r[have] else "C3" for r in rows], label=f"the model's {what}")
        for i, r in enumerate(rows):
            ax.text(r[used] * 1.15, i, f"{r[used]:,} B", va="center", fontsize=8)
        ax.set_xscale("log")
        ax.set_xlim(base, 4 * max(r[have] for r in rows))
        ax.set_xlabel(f"{what}, bytes (log scale)")
        ax.set_title(f"model {what} against the chip's")
        ax.legend(fontsize=8, loc="upper right")
        ax.grid(alpha=0.3, axis="x", which="both")
    base = 0.01  # ms
    ms = [r.get("latency_ms", r.get("min_latency_ms")) for r in rows]
    bars = axes[2].barh(y, [m - base for m in ms], left=base, color=["C2" if "latency_ms" in r else "C1" for r in rows])
    for i, (bar, r, m) in enumerate(zip(bars, rows, ms)):
        exact = "latency_ms" in r
        if not exact:
            bar.set_hatch("//")
        axes[2].text(m * 1.15, i, f"{'' if exact else '>= '}{m:.2f} ms", va="center", fontsize=8)
    axes[2].set_xscale("log")
    axes[2].set_xlim(base, 10 * max(ms))
    axes[2].set_xlabel("milliseconds per inference (log scale)")
    axes[2].set_title("latency (Cortex-M: a lower bound, hatched)")
    axes[2].grid(alpha=0.3, axis="x", which="both")
    axes[0].set_yticks(y, [r["key"] for r in rows])
    axes[0].set_ylabel("board")
    axes[0].invert_yaxis()
    fig.suptitle(f"{report['run']} on the boards: the model's flash, RAM and time per digit")
    fig.tight_layout()
    return fig
