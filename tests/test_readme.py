"""README.md stays true: every block marked `<!-- checked -->` is run as written, and what it prints must
be what the README shows: byte sizes exactly, instruction and cycle counts within 1e-4 (data-dependent timing), accuracies to the digits
printed, times only in form (tests/readme_examples.py says how). After a change that moves a figure,
regenerate the blocks from one fresh run: `python bench/readme_outputs.py --write`."""
import pytest

from readme_examples import README, align, fresh_lines, line_pattern, problems, readme_examples, run_examples


def test_the_matching_rules():
    assert line_pattern("14,848 B  0.9615  14.8 s").fullmatch("14,848 B    0.9615   3.2 s")  # a time is a time
    assert not line_pattern("14,848 B  0.9615  14.8 s").fullmatch("14,849 B  0.9615  14.8 s")  # a size is exact
    assert not line_pattern("test accuracy 0.9615").fullmatch("test accuracy 0.9616")         # to the digits shown
    assert line_pattern("1875/1875 - 2.1s 859us/step").fullmatch("1875/1875 - 0.4s 2ms/step")
    # a count of cycles or instructions within 1e-4 (data-dependent timing), a size still exact
    assert align(["uno  20,754  200,342 cycles  100/100"], ["uno  20,754  200,340 cycles  100/100"])
    assert not align(["uno  20,754  200,342 cycles  100/100"], ["uno  20,755  200,340 cycles  100/100"])
    assert not align(["uno  20,754  200,342 cycles  100/100"], ["uno  20,754  200,400 cycles  100/100"])
    assert align(["a", "...", "z"], ["a", "b", "c", "z"]) == [(0, 0, 1), (1, 1, 3), (2, 3, 4)]
    assert align(["a", "z"], ["a", "b", "z"]) is None
    assert fresh_lines(["size 1,000 B", "...", "took 2.0 s"], ["size 1,024 B", "x", "y", "took 9.1 s"]) == \
        ["size 1,024 B", "...", "took 9.1 s"]


def test_the_readme_marks_its_command_examples():
    examples = readme_examples()
    commands = [c for e in examples for c, _ in e.commands]
    for needed in ("tinydigits", "tinydigits train --out runs/lesson", "tinydigits convert runs/lesson",
                   "tinydigits export-c runs/lesson --out firmware", "tinydigits export-web runs/lesson --out site",
                   "tinydigits mcu runs/lesson", "tinydigits boards runs/lesson"):
        assert needed in commands, needed
    assert all(e.commands for e in examples)  # a marker over a block without a `$ ` command checks nothing


@pytest.mark.slow
def test_every_checked_readme_example_prints_what_the_readme_says(tmp_path, mnist):
    examples = readme_examples(README)
    found = problems(examples, run_examples(examples, tmp_path / "readme"))
    assert not found, "\n\n".join(found) + "\n\n(regenerate with: python bench/readme_outputs.py --write)"
