"""bench/winners.json, the record of our best designs: well-formed, runnable by today's CLI, within each budget,
and the README's table is its figures (re-created by `python bench/winners.py check`, which trains for an hour)."""
import importlib.util
import json
import re
import shlex
from pathlib import Path

import pytest

from tinydigits.cli import _recipe_from, build_parser
from tinydigits.search_space import estimate

ROOT = Path(__file__).resolve().parents[1]
ENTRIES = json.loads((ROOT / "bench" / "winners.json").read_text())["entries"]
BUDGETS = {"4KB": 4096, "8KB": 8192, "16KB": 16384, "uno": 32768, "handwriting": 8192}  # model flash, bytes
UNO_CALLER_BYTES = 256  # what a small sketch adds to the RAM boards measures (its stack and globals)


def test_the_five_entries_each_with_its_board_and_claims():
    assert [e["name"] for e in ENTRIES] == list(BUDGETS)
    for e in ENTRIES:
        assert e["board"] == ("uno" if e["name"] == "uno" else "nano33ble")
        assert set(e["claimed"]) == {"int8_test_accuracy", "flash_bytes", "ram_bytes"}, e["name"]
        assert e["claimed"]["flash_bytes"] <= BUDGETS[e["name"]] and 0.98 < e["claimed"]["int8_test_accuracy"] < 1
        assert e.get("minutes", 40) <= 120
    uno = next(e for e in ENTRIES if e["name"] == "uno")
    assert uno["claimed"]["ram_bytes"] + UNO_CALLER_BYTES <= 2048


@pytest.mark.parametrize("entry", ENTRIES, ids=[e["name"] for e in ENTRIES])
def test_the_commands_are_todays_cli_and_make_what_the_checker_reads(entry):
    """train into {out}, convert it, measure the entry's board: each parses with today's flags."""
    lines = [c.format(out="/tmp/out", work="/tmp/work") for c in entry["commands"]]
    assert [shlex.split(c)[:2] for c in lines] == [["tinydigits", "train"], ["tinydigits", "convert"],
                                                   ["tinydigits", "boards"]]
    args = [build_parser().parse_args(shlex.split(c)[1:]) for c in lines]
    assert str(args[0].out) == "/tmp/out"
    assert shlex.split(lines[2])[-2:] == ["--board", entry["board"]]
    recipe = _recipe_from(args[0])
    assert recipe.input_size in (28, 14, 12, 10, 7)
    e = estimate(recipe)  # the search's estimate of the weights: within the budget with room for code
    assert e.weight_bytes < BUDGETS[entry["name"]], (entry["name"], e)


def test_the_readme_table_is_winners_json():
    """The README's table is what `python bench/winners.py table` prints from the record, row for row."""
    spec = importlib.util.spec_from_file_location("winners", ROOT / "bench" / "winners.py")
    winners = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(winners)
    text = (ROOT / "README.md").read_text()
    for e in ENTRIES:
        c = e["claimed"]
        assert f"| {100 * c['int8_test_accuracy']:.2f}% | {c['flash_bytes']:,} | {c['ram_bytes']:,} |" in \
            winners.table([e]), e["name"]
    assert winners.table(ENTRIES) in text, "the README's table differs from `python bench/winners.py table`"
    assert re.search(r"!\[[^]]*\]\(bench/pareto\.png\)", text) and (ROOT / "bench" / "pareto.png").exists()
