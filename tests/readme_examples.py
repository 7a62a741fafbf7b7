"""The README's command examples, run for real and compared with what the README says they print.

A fenced block is checked when the line before it is a marker, visible in the README's source:

    <!-- checked -->                                  run in the shared workspace, in README order
    <!-- checked: given my_seven.png zero.jpg -->     with these input files made first (FIXTURES)
    <!-- checked: after train; in scratch; setup mkdir my_photos -->
                                                      after the block that runs `tinydigits train`, in the
                                                      workspace's subfolder scratch/, once `setup` has run

In a block, each `$ COMMAND` line is a command (run by bash in the block's folder, `tinydigits` being
this checkout's, stderr with stdout as a terminal shows them), and the lines under it are what it
prints. A line that is only `...` stands for any number of lines. Figures must be equal as printed:
byte sizes, instruction and cycle counts, accuracies to the digits shown; a time (a number with s,
ms, us or min) only has to be a time. Training is deterministic (seed 0, CPU), so this holds run
after run.

    examples = readme_examples(README)       # [Example(marker, commands=[(command, expected lines)])]
    results = run_examples(examples, tmp)    # per example, each command's output lines
    problems(examples, results)              # [] when the README is true
    regenerated(README.read_text(), examples, results)   # the README with every checked block's output fresh
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
MARKER = re.compile(r"^<!-- checked(?::\s*(.*?))?\s*-->\s*$")
FENCE = re.compile(r"^(\s*)```")
ELISION = "..."
TIME = re.compile(r"\d[\d,]*(?:\.\d+)?\s?(?:ms|us|µs|min|s)\b")  # 14.8 s, 859us/step, 2s
NUMBER = re.compile(r"\d[\d,]*(?:\.\d+)?")
SEPARATOR = "<<<readme-example-command>>>"


@dataclass
class Example:
    line: int                        # the marker's line in the README (0-based)
    options: dict                    # given, after, in, setup
    commands: list = field(default_factory=list)  # [(command, [expected lines])]
    body: tuple = (0, 0)             # the block's lines in the README: [start, end)


OPTIONS = ("given", "after", "in", "setup")


def parse_options(text: str) -> dict:
    """`given A B; after X; in DIR; setup SHELL` (a `;` inside SHELL is SHELL's, unless an option follows it)."""
    options = {}
    for part in filter(None, (p.strip() for p in re.split(rf";\s*(?=(?:{'|'.join(OPTIONS)})\b)", text or ""))):
        key, _, value = part.partition(" ")
        if key not in OPTIONS:
            raise ValueError(f"README marker: unknown option {key!r} in {text!r}")
        options[key] = value.split() if key == "given" else value.strip()
    return options


def readme_examples(readme: Path = README) -> list[Example]:
    """Every checked block of the README, with its commands and what each is said to print."""
    lines = readme.read_text().splitlines()
    examples = []
    for i, line in enumerate(lines):
        marker = MARKER.match(line)
        if not marker:
            continue
        fence = FENCE.match(lines[i + 1]) if i + 1 < len(lines) else None
        if fence is None:
            raise ValueError(f"README line {i + 1}: a checked marker must be right above a ``` block")
        indent, end = fence.group(1), i + 2
        while not lines[end].startswith(indent + "```"):
            end += 1
        example = Example(i, parse_options(marker.group(1)), body=(i + 2, end))
        for text in (line[len(indent):] for line in lines[i + 2:end]):
            if text.startswith("$ "):
                example.commands.append((text[2:], []))
            elif example.commands:
                example.commands[-1][1].append(text)
        examples.append(example)
    return examples


def run_order(examples: list[Example]) -> list[Example]:
    """README order, except that a block `after X` runs once the block that runs `tinydigits X` has."""
    waiting, order = list(examples), []
    while waiting:
        ready = next((e for e in waiting if "after" not in e.options or any(
            c.startswith(f"tinydigits {e.options['after']}") for done in order for c, _ in done.commands)), None)
        if ready is None:
            raise ValueError(f"README: no block runs `tinydigits {waiting[0].options['after']}` before line "
                             f"{waiting[0].line + 1}")
        waiting.remove(ready)
        order.append(ready)
    return order


# ---- the input files some examples need ---------------------------------------------------------------

@lru_cache(maxsize=1)
def _test_images():
    from tinydigits.data import load_dataset

    ds = load_dataset("mnist", allow_download=False)
    return ds.x_test


def _picture(index: int, size: int, dark_on_light: bool):
    from PIL import Image

    image = Image.fromarray(_test_images()[index]).resize((size, size), Image.Resampling.BICUBIC)
    return Image.fromarray(255 - np.asarray(image)) if dark_on_light else image


def _scan16(path: Path) -> None:
    from PIL import Image

    seven = 255 - _test_images()[0].astype(np.float64)  # dark ink on white paper, 16 bits deep
    Image.frombytes("I;16", (28, 28), (5000 + seven / 255 * 55000).astype("<u2").tobytes()).resize((112, 112)).save(path)


FIXTURES = {  # name -> how it is made: MNIST test digits as a person's files would hold them
    "my_seven.png": lambda p: _picture(0, 112, dark_on_light=True).save(p),   # test image 0, a 7, scanned dark on light
    "zero.jpg": lambda p: _picture(3, 84, dark_on_light=True).convert("RGB").save(p, quality=90),  # test image 3
    "scan16.png": _scan16,
    "notes.txt": lambda p: p.write_text("a shopping list, not an image\n"),
    "blank.png": lambda p: __import__("PIL.Image").Image.new("L", (64, 64), 255).save(p),
}


# ---- running them -------------------------------------------------------------------------------------

def _environment(bin_dir: Path) -> dict:
    """`tinydigits` and `python` on the PATH are this checkout's, with this interpreter."""
    for name, run in (("tinydigits", "-m tinydigits "), ("python", "")):
        (bin_dir / name).write_text(f'#!/bin/sh\nexec "{sys.executable}" {run}"$@"\n')
        (bin_dir / name).chmod(0o755)
    return {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}", "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT / "src"), os.environ.get("PYTHONPATH")]))}


def run_examples(examples: list[Example], workspace: Path, timeout: float = 900) -> list[list[list[str]]]:
    """Run every example in `workspace` (see run_order); per example, in README order, each command's output lines."""
    workspace = Path(workspace)
    (workspace / ".bin").mkdir(parents=True, exist_ok=True)
    env = _environment(workspace / ".bin")
    results = {}
    for example in run_order(examples):
        folder = workspace / example.options.get("in", "")
        folder.mkdir(exist_ok=True)
        for name in example.options.get("given", []):
            FIXTURES[name](folder / name)
        if "setup" in example.options:
            subprocess.run(["bash", "-ec", example.options["setup"]], cwd=folder, env=env, check=True,
                           capture_output=True, timeout=timeout)
        # each command's output after a separator line; `$?` is still the previous command's status
        script = "exec 2>&1\n" + "".join(f"status=$?; echo '{SEPARATOR}'; (exit $status)\n{command}\n"
                                          for command, _ in example.commands)
        proc = subprocess.run(["bash", "-c", script], cwd=folder, env=env, capture_output=True, text=True,
                              timeout=timeout)
        outputs = proc.stdout.split(SEPARATOR + "\n")[1:]
        results[example.line] = [out.splitlines() for out in outputs]
    return [results[example.line] for example in examples]


# ---- comparing ----------------------------------------------------------------------------------------

# An emulator's count of the cycles or instructions of one inference, where the time of a multiply or a
# branch depends on the values (AVR, RV32E without M): the weights a CPU's float kernels trained move it
# by a few parts in a million from one machine to the next, so such a count matches within COUNT_TOLERANCE.
COUNT = re.compile(r"(\d[\d,]*)(\s+(?:cycles|instr\.|instructions)(?!\w))")
COUNT_TOLERANCE = 1e-4


def _close_counts(expected: str, actual: str) -> bool:
    """The line as expected once each count of `actual` within COUNT_TOLERANCE of the expected one is
    replaced by it (the rest of the line is then matched as usual)."""
    want, got = COUNT.findall(expected), COUNT.findall(actual)
    if not want or len(want) != len(got):
        return False
    pieces, at = [], 0
    for (w, unit), m in zip(want, COUNT.finditer(actual)):
        a, e = int(m.group(1).replace(",", "")), int(w.replace(",", ""))
        if abs(a - e) > COUNT_TOLERANCE * e:
            return False
        pieces += [actual[at:m.start()], w + m.group(2)]
        at = m.end()
    return bool(line_pattern(expected).fullmatch("".join(pieces) + actual[at:]))


def _words(text: str) -> str:
    """Literal text, any run of spaces standing for any other."""
    return r"\s+".join(re.escape(word) for word in re.split(r"\s+", text))


def line_pattern(expected: str, loose: bool = False) -> re.Pattern:
    """A line as a pattern: its words in order, any spacing (columns widen and shrink), a time for any
    time; `loose`: also any number for any number (how fresh_lines finds which line became which)."""
    token = re.compile(f"{TIME.pattern}|{NUMBER.pattern}" if loose else TIME.pattern)
    text, parts, at = expected.strip(), [], 0
    for m in token.finditer(text):
        parts += [_words(text[at:m.start()]), f"(?:{TIME.pattern if TIME.fullmatch(m.group()) else NUMBER.pattern})"]
        at = m.end()
    return re.compile(r"\s*" + "".join(parts) + _words(text[at:]) + r"\s*")


def align(expected: list[str], actual: list[str], loose: bool = False) -> list[tuple[int, int, int]] | None:
    """How the expected lines cover the actual ones: [(expected line, first actual line, end)], or None."""
    patterns = [None if e.strip() == ELISION else line_pattern(e, loose) for e in expected]

    @lru_cache(maxsize=None)
    def match(i: int, j: int):
        if i == len(expected):
            return () if j == len(actual) else None
        if patterns[i] is None:  # an elision: as few lines as the rest allows
            for k in range(j, len(actual) + 1):
                rest = match(i + 1, k)
                if rest is not None:
                    return ((i, j, k),) + rest
            return None
        if j < len(actual) and (patterns[i].fullmatch(actual[j]) or (not loose and _close_counts(expected[i], actual[j]))):
            rest = match(i + 1, j + 1)
            return None if rest is None else ((i, j, j + 1),) + rest
        return None

    found = match(0, 0)
    return None if found is None else list(found)


def problems(examples: list[Example], results: list) -> list[str]:
    """What the README says that the commands did not print: [] when it is true."""
    found = []
    for example, outputs in zip(examples, results):
        for (command, expected), actual in zip(example.commands, outputs):
            if align(expected, actual) is None:
                found.append(f"README line {example.line + 1}: `$ {command}` printed\n" + "\n".join(actual)
                             + "\n--- where the README says\n" + "\n".join(expected))
        if len(outputs) != len(example.commands):
            found.append(f"README line {example.line + 1}: {len(outputs)} outputs for {len(example.commands)} commands")
    return found


def fresh_lines(expected: list[str], actual: list[str]) -> list[str]:
    """The README's lines for a command, with the figures of `actual`: each line replaced by the line it
    stands for, elisions kept. A command whose output changed shape comes back whole, to be trimmed by hand."""
    alignment = align(expected, actual, loose=True)
    if alignment is None:
        return actual
    return [expected[i] if expected[i].strip() == ELISION else actual[start] for i, start, _ in alignment]


def regenerated(text: str, examples: list[Example], results: list) -> str:
    """The README's text with every checked block's outputs from `results`."""
    lines = text.splitlines()
    for example, outputs in reversed(list(zip(examples, results))):  # from the end: earlier lines stay put
        start, end = example.body
        indent = FENCE.match(lines[example.line + 1]).group(1)
        block = []
        for (command, expected), actual in zip(example.commands, outputs):
            block += [f"{indent}$ {command}"] + [f"{indent}{line}" if line else "" for line in fresh_lines(expected, actual)]
        lines[start:end] = block
    return "\n".join(lines) + ("\n" if text.endswith("\n") else "")
