"""The Pareto fronts at 8, 16 and 32 KB of flash, before (the lesson's recipe) and after (the better one).

"Before" is bench/results/search-lesson-recipe.json (the search's recorded rows with the lesson's
training); "after" is the search.json of each `tinydigits search` run given. For each budget it
prints the design chosen on validation accuracy and its int8 test accuracy, and draws the fronts
(flash vs int8 validation accuracy) into one figure.

    python bench/pareto_fronts.py runs/search-8k runs/search-16k runs/search-32k --out docs/pareto-before-after.png
"""
import argparse
import json
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from tinydigits.model import Recipe  # noqa: E402
from tinydigits.search import Budget, best, mark_front  # noqa: E402

HERE = Path(__file__).resolve().parent
BUDGETS_KB = (8, 16, 32)


def front(rows: list[dict]) -> list[dict]:
    """The rows on the Pareto front (flash vs int8 validation accuracy), by flash."""
    return sorted((r for r in mark_front([dict(r) for r in rows]) if r["on_front"]), key=lambda r: r["flash_bytes"])


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("searches", nargs="+", type=Path, help="folders of `tinydigits search` runs (after)")
    parser.add_argument("--out", type=Path, default=HERE.parent / "docs" / "pareto-before-after.png")
    args = parser.parse_args()
    recorded = json.loads((HERE / "results" / "search-lesson-recipe.json").read_text())
    before = {r["design"]: r for r in recorded["flash_kb_8"] + recorded["flash_kb_32_front"]}.values()
    after = []
    for folder in args.searches:
        for r in json.loads((folder / "search.json").read_text())["candidates"]:
            after.append({**r, "design": Recipe.from_dict(r["recipe"]).design})
    fig, axes = plt.subplots(1, len(BUDGETS_KB), figsize=(15, 4.5))
    print("| budget | before: design, flash, int8 val / test | after: design, flash, int8 val / test |")
    print("|---|---|---|")
    for ax, kb in zip(axes, BUDGETS_KB):
        budget = kb * 1024
        cells = []
        for label, rows, style in (("lesson recipe", list(before), "o-"), ("better recipe", after, "s-")):
            fitting = [r for r in rows if r["flash_bytes"] <= budget]
            f = front(fitting)
            if f:
                ax.plot([r["flash_bytes"] for r in f], [100 * r["validation_accuracy"] for r in f], style,
                        drawstyle="steps-post", label=label)
            chosen = best(rows, Budget(budget, 2048))
            if chosen:
                ax.annotate(f"{chosen['design']}\ntest {100 * chosen['test_accuracy']:.2f}%",
                            (chosen["flash_bytes"], 100 * chosen["validation_accuracy"]), fontsize=7,
                            xytext=(-110, -28 if label == "lesson recipe" else 8), textcoords="offset points",
                            arrowprops={"arrowstyle": "->", "lw": 0.5})
                cells.append(f"{chosen['design']}, {chosen['flash_bytes']:,} B, {100 * chosen['validation_accuracy']:.2f}% / "
                             f"**{100 * chosen['test_accuracy']:.2f}%**")
            else:
                cells.append("none measured")
        print(f"| {kb} KB | {cells[0]} | {cells[1]} |")
        ax.axvline(budget, color="grey", ls=":", lw=1)
        ax.set(title=f"{kb} KB of flash", xlabel="flash on Cortex-M4 (bytes, -Os)", ylabel="int8 validation accuracy (%)",
               ylim=(94, 99.5))
        ax.grid(alpha=0.3)
        ax.legend(loc="lower right", fontsize=8)
    fig.tight_layout()
    fig.savefig(args.out, dpi=110)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
