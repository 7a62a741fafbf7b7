"""Re-create and check the designs recorded in bench/winners.json, and draw bench/pareto.png.

Each entry of winners.json holds the commands that re-create it ({out}: a fresh run folder, {work}:
an empty scratch folder), the board it is measured on, and what it claims: the int8 .tflite's
accuracy on all 10,000 test images and the flash and RAM `boards` reports for that board. `check`
runs the commands as a checker would (bash -c, from the checkout's root, TINYDIGITS_DATA set) and
compares: accuracy within 0.002, flash and RAM within 2%, and the board's outputs equal to the
host's on every image it ran. The commands call `tinydigits`: put it on PATH first
(`. .venv/bin/activate`).

    TINYDIGITS_DATA=../shared/datasets python bench/winners.py check --entry 8KB   # one entry, re-trained
    python bench/winners.py check --runs-from runs/winners                          # measure runs already made
    python bench/winners.py record --runs-from runs/winners                         # their figures as the claims
    python bench/winners.py plot                                                    # bench/pareto.png
    python bench/winners.py table                                                   # the README's table
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
WINNERS = HERE / "winners.json"
# BitNetMCU's published MNIST points: (weights only, KB; test accuracy)
BITNETMCU = [(3.2, 0.9892), (7.3, 0.9928), (11.0, 0.9955), (13.0, 0.9958)]
DENSE = [(17_560 / 1024, 0.9615, "lesson 784-20-10"), (7_944 / 1024, 0.9781, "dense 8 KB (10px-h48x16)"),
         (16_328 / 1024, 0.9860, "dense 16 KB"), (32_472 / 1024, 0.9898, "dense 32 KB")]  # README / bench/README.md


def measure(out: Path, board: str) -> dict:
    """What a checker measures of a re-created run: the int8 accuracy, and the board's row."""
    sys.path.insert(0, str(ROOT / "src"))
    from tinydigits.runs import Run
    from tinydigits.runtimes import LiteRT

    run = Run(out)
    ds = run.dataset()
    lite = LiteRT(run.int8_model())
    if lite.input["shape"].tolist()[1:] and int(lite.input["shape"][1:].prod()) != 784:
        raise SystemExit(f"{out}: the int8 model does not take 784 values")
    accuracy = float((lite.predict(ds.x_test).argmax(1) == ds.y_test).mean())
    row = next(r for r in json.loads((out / "boards.json").read_text())["boards"] if r["key"] == board)
    return {"int8_test_accuracy": accuracy, "flash_bytes": row.get("flash_bytes"), "ram_bytes": row.get("ram_bytes"),
            "matches_host": f"{row.get('matches_host')}/{row.get('images')}"}


def check(entry: dict, out: Path, recreate: bool) -> bool:
    if recreate:
        with tempfile.TemporaryDirectory() as work:
            env = {**os.environ, "TINYDIGITS_DATA": os.environ.get("TINYDIGITS_DATA", str(ROOT.parent / "shared/datasets"))}
            for command in entry["commands"]:
                line = command.format(out=out, work=work)
                start = time.time()
                proc = subprocess.run(["bash", "-c", line], cwd=ROOT, env=env, timeout=60 * entry.get("minutes", 40))
                print(f"  {time.time() - start:7.0f} s  {line}  (exit {proc.returncode})", flush=True)
                if proc.returncode:
                    return False
    got, claimed = measure(out, entry["board"]), entry["claimed"]
    ok = (abs(got["int8_test_accuracy"] - claimed["int8_test_accuracy"]) <= 0.002
          and all(abs(got[k] - claimed[k]) <= 0.02 * claimed[k] for k in ("flash_bytes", "ram_bytes"))
          and got["matches_host"].split("/")[0] == got["matches_host"].split("/")[1])
    print(f"{entry['name']:12} claimed {claimed}\n{'':12} measured {got}  -> {'OK' if ok else 'DIFFERS'}")
    return ok


GOALS = {"4KB": (">= 98.9%", "98.92% (3.2 KB)"), "8KB": (">= 99.3%", "99.28% (7.3 KB)"),
         "16KB": (">= 99.6%", "99.55% (11.0 KB), 99.58% (13.0 KB)"), "uno": (">= 99.3%", "99.02% (FC, 2 KB RAM)"),
         "handwriting": ("fits 8 KB; >= 95 / 95 / 93% on crops / ink / photos of real handwriting", "-")}
# the accuracy-per-byte issue's table and the handwriting issue's goals


def table(winners: list[dict]) -> str:
    """The README's table, from the claims: so that its figures are the record's."""
    rows = ["| entry | board | `tinydigits train` flags | int8 test accuracy | model flash B | RAM B (incl. stack) "
            "| goal | BitNetMCU (weights only) |", "|---|---|---|---:|---:|---:|---|---|"]
    for w in winners:
        flags = w["commands"][0].replace("tinydigits train ", "").replace(" --out {out}", "")
        c = w["claimed"]
        goal, theirs = GOALS.get(w["name"], ("-", "-"))
        rows.append(f"| `{w['name']}` | {w['board']} | `{flags}` | {100 * c['int8_test_accuracy']:.2f}% "
                    f"| {c['flash_bytes']:,} | {c['ram_bytes']:,} | {goal} | {theirs} |")
    return "\n".join(rows)


def plot(winners: list[dict]) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    ax.plot([k for k, _ in BITNETMCU], [100 * a for _, a in BITNETMCU], "s--", color="tab:gray",
            label="BitNetMCU (published; weights only)")
    ax.scatter([k for k, _, _ in DENSE], [100 * a for _, a, _ in DENSE], marker="o", color="tab:blue",
               label="tinydigits dense designs (whole model flash)")
    for k, a, name in DENSE:
        ax.annotate(name, (k, 100 * a), textcoords="offset points", xytext=(4, -10), fontsize=7)
    for w in winners:
        kb, acc = w["claimed"]["flash_bytes"] / 1024, 100 * w["claimed"]["int8_test_accuracy"]
        ax.scatter([kb], [acc], marker="*", s=160, color="tab:red", zorder=3)
        ax.annotate(f"{w['name']} ({w['board']})", (kb, acc), textcoords="offset points", xytext=(6, 4), fontsize=8)
    ax.scatter([], [], marker="*", s=160, color="tab:red", label="tinydigits winners (whole model flash: weights + kernels)")
    ax.set_xscale("log")
    ticks = [3, 4, 6, 8, 12, 16, 24, 32]
    ax.set_xticks(ticks, [str(t) for t in ticks])
    ax.minorticks_off()
    ax.set_xlabel("model flash, KB (log scale)")
    ax.set_ylabel("int8 MNIST test accuracy, %")
    ax.set_title("accuracy per byte: tinydigits' winners, its dense designs and BitNetMCU")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    path = HERE / "pareto.png"
    fig.savefig(path, dpi=110, bbox_inches="tight")
    return path


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("action", choices=("check", "record", "plot", "table"))
    parser.add_argument("--entry", action="append", help="only these entries (default all)")
    parser.add_argument("--runs-from", type=Path, help="a folder of runs named as the entries: measure, don't re-create")
    args = parser.parse_args()
    winners = json.loads(WINNERS.read_text())["entries"]
    chosen = [w for w in winners if not args.entry or w["name"] in args.entry]
    if args.action == "plot":
        print(plot(winners))
        return
    if args.action == "table":
        print(table(chosen))
        return
    if args.action == "record":  # the claims are what the runs measure (made by the entries' own commands)
        if not args.runs_from:
            parser.error("record needs --runs-from: a folder of runs made by the entries' commands")
        for entry in chosen:
            got = measure(args.runs_from / entry["name"], entry["board"])
            entry["claimed"] = {k: got[k] for k in ("int8_test_accuracy", "flash_bytes", "ram_bytes")}
            print(f"{entry['name']:12} {got}")
        WINNERS.write_text(json.dumps({"entries": winners}, indent=2) + "\n")
        return
    results = []
    for entry in chosen:
        if args.runs_from:
            results.append(check(entry, args.runs_from / entry["name"], recreate=False))
        else:
            with tempfile.TemporaryDirectory() as tmp:
                results.append(check(entry, Path(tmp) / "out", recreate=True))
    raise SystemExit(0 if all(results) else 1)


if __name__ == "__main__":
    main()
