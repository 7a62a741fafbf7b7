"""The int8 model on the boards people own: built with each board's toolchain, run in its emulator.

For each board (targets.BOARDS) the run's standalone C is compiled with the board's own compiler
and flags, linked into a small test firmware, and run in simavr (AVR) or QEMU (Cortex-M, RISC-V) on N test
images. Each row says how much flash and RAM the model takes on that chip, whether it fits, how
long an inference takes, and whether its outputs are byte-identical to the host build's.

Reads RUN/model_int8.tflite; writes RUN/boards.json, RUN/boards.png (flash and RAM against each
chip's, latency) and, per board, RUN/firmware/<board>/ (ELF, .hex or .bin, map, the model's object
file), added to the run folder as one set.

    report = measure_boards(Run("runs/lesson"), keys=["uno", "nano33ble"], images=100)
    print(format_boards(report))
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
import textwrap
from pathlib import Path
from typing import Callable

from .artifacts import preflight, save_figure, staged_folder, write_json
from .atomic import claim
from .codegen import read_facts, write_standalone
from .runtimes import LiteRT
from .errors import TinyDigitsError
from .plots import boards_figure
from .runs import RUN_FILES, Run
from .targets import BOARDS, Board, family, find
from .targets import qemu
from .targets.host import compile_host, run_batch

DEFAULT_IMAGES = 100
HOW = {
    "avr": "cycles counted by simavr, which models the AVR's instruction timing: latency = cycles / clock; "
           "stack: the deepest stack pointer simavr saw during an inference",
    "arm": "instructions counted with SysTick under qemu -icount; QEMU does not model the pipeline, so time is "
           "a lower bound: instructions / clock (/ 2 on the dual-issue Cortex-M7); "
           "stack: RAM painted before an inference, then searched for the deepest byte it changed",
    "riscv": "instructions counted by the instret CSR under qemu -icount; QEMU does not model the pipeline or flash "
             "wait states, so time is a lower bound: instructions / clock; the CH32V003's RV32EC runs on QEMU's rv32 "
             "CPU with E on and I, M off (no RV32E model); stack: painted, as on Cortex-M",
}


@contextlib.contextmanager
def model_c(run: Run, images: int, command: str):
    """The run's standalone C in a temporary folder, `images` quantized test images, and the host build's
    outputs on them (what every board must reproduce): yields (c_dir, inputs, host_outputs)."""
    model = run.int8_model()
    x_test = run.dataset().x_test
    if not 1 <= images <= len(x_test):
        raise TinyDigitsError(f"--images must be between 1 and {len(x_test):,} (the test set), got {images:,}")
    inputs = LiteRT(model).prepare(x_test[:images]).reshape(images, -1)
    with tempfile.TemporaryDirectory() as tmp:
        c_dir = Path(tmp) / "c"
        write_standalone(model, c_dir, str(run.paths.int8_model), command, tflm_arena_bytes=run.arena_bytes())
        yield c_dir, inputs, run_batch(compile_host(c_dir), inputs)


@contextlib.contextmanager
def firmware_folders(run: Run, command: str):
    """Add firmware/<board>/ folders and reports to the run as one set: yields (staged run folder,
    function board key -> a fresh folder for its build products)."""
    with staged_folder(run.folder, "run", command, update=True) as tmp:
        def fresh(key: str) -> Path:
            folder = tmp / RUN_FILES.firmware / key
            shutil.rmtree(folder, ignore_errors=True)  # an earlier build's files (links to the originals)
            return folder
        yield tmp, fresh


def verdict(flash: int, ram: int, board: Board) -> tuple[bool, str]:
    """PASS with the margin, or FAIL with what exceeds the chip."""
    over = [f"{what} {used:,} B > {have:,} B" for what, used, have in
            (("flash", flash, board.flash_bytes), ("RAM", ram, board.ram_bytes)) if used > have]
    if over:
        return False, f"FAIL ({', '.join(over)})"
    return True, f"PASS (spare {board.flash_bytes - flash:,} B / {board.ram_bytes - ram:,} B)"


def measure(board: Board, c_dir: Path, inputs, host_outputs, fresh) -> dict:
    """Build and run the model for one board in `fresh(board.key)`; its row of the table. The folder
    (and an earlier build's files in it) is touched only once the board's toolchain is there."""
    tools = family(board)
    row = {"key": board.key, "board": board.name, "chip": board.chip, "core": board.core, "clock_hz": board.clock_hz,
           "chip_flash_bytes": board.flash_bytes, "chip_ram_bytes": board.ram_bytes, "runs_in": board.runs_in,
           "cflags": list(board.cflags), "how": HOW[board.toolchain], "built": False}
    try:
        tools.require()
    except TinyDigitsError as e:
        return {**row, "status": "NO TOOLCHAIN", "problem": str(e)}
    folder = fresh(board.key)
    try:
        firmware = tools.build(c_dir, board, folder)
    except TinyDigitsError as e:  # e.g. a table over 32 KB, more than an AVR pointer difference can span
        return {**row, "status": "FAIL", "fits": False, "problem": f"does not compile for {board.chip}: {e}"}
    row.update(built=True, firmware=str(folder), model_sections=firmware.model_sections,
               firmware_sections=firmware.firmware_sections, flash_bytes=firmware.flash_bytes)
    if firmware.elf is None:  # too big to link for the emulated machine: sizes only
        text = verdict(firmware.flash_bytes, firmware.static_ram_bytes, board)[1]
        return {**row, "status": "FAIL", "fits": False, "verdict": text, "problem": firmware.link_error}
    try:
        outputs, figures = tools.run(firmware, inputs)
    except TinyDigitsError as e:
        return {**row, "status": "ERROR", "problem": f"the emulator run failed: {e}"}
    ram = {"data_bss": firmware.static_ram_bytes, "stack": figures["stack_bytes"]}  # the arena is in .bss
    fits, text = verdict(firmware.flash_bytes, sum(ram.values()), board)
    row.update(status="PASS" if fits else "FAIL", fits=fits, verdict=text, ram_bytes=sum(ram.values()), ram=ram,
               matches_host=int((outputs == host_outputs).all(axis=1).sum()), **figures)
    if "cycles_per_inference" in figures:
        row["latency_ms"] = figures["cycles_per_inference"] / board.clock_hz * 1e3
    else:
        row["min_latency_ms"] = qemu.min_seconds(board, figures["instructions_per_inference"]) * 1e3
    return row


def measure_boards(run: Run | Path, keys: list[str] | None = None, images: int = DEFAULT_IMAGES,
                   command: str = "") -> dict:
    """Every board in `keys` (default: all), measured; writes RUN/boards.json and RUN/firmware/<board>/.
    Raises TinyDigitsError, writing nothing, when no board could be built."""
    run = run if isinstance(run, Run) else Run(run)
    boards = [find(key) for key in dict.fromkeys(keys)] if keys else list(BOARDS)
    command = command or f"tinydigits boards {run.folder}"
    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        run.refresh()  # what a writer we waited for changed
        preflight(run.folder, resume="run")  # before any work: boards.json and firmware/ go into the run folder
        return _measure_boards(run, boards, images, command)


def _measure_boards(run: Run, boards: list[Board], images: int, command: str) -> dict:
    rows = []
    with model_c(run, images, command) as (c_dir, inputs, host_outputs), \
            firmware_folders(run, command) as (staged, fresh):
        for board in boards:
            rows.append(measure(board, c_dir, inputs, host_outputs, fresh))
            if rows[-1]["built"]:
                rows[-1]["firmware"] = str(run.paths.firmware / board.key)
        if not any(row["built"] for row in rows):  # raised inside the set: nothing is written or removed
            raise TinyDigitsError("no board could be built: " + "; ".join(f"{r['key']}: {r['problem']}" for r in rows))
        facts = read_facts(c_dir)  # the op table's count of the model, as generated
        report = {"run": str(run.folder), "images": images,
                  "model": {k: facts[k] for k in ("macs", "weight_bytes", "arena_bytes", "tflm_arena_bytes")},
                  "boards": rows}
        write_json(staged / RUN_FILES.boards, report)
        if any("ram_bytes" in row for row in rows):
            save_figure(boards_figure(report), staged / RUN_FILES.boards_plot)
    return report


def core_name(core: str, short: bool = False) -> str:
    """"Cortex-M0+" ("M0+" when `short`), "AVR", "RV32IMC"; Zba + Zbb + Zbs is the B extension:
    rv32imac_zba_zbb_zbs -> RV32IMACB ("IMACB" when `short`)."""
    if core == "avr":
        return "AVR"
    if core.startswith("rv"):
        name = core.replace("_zba_zbb_zbs", "b").upper()
        return name.replace("RV32", "") if short else name
    name = core.replace("cortex-m", "Cortex-M").replace("plus", "+")
    return name.replace("Cortex-", "") if short else name


# A table is a list of columns (header with its unit, width, cell), joined by one space: a width
# holds its own padding, and a negative width aligns left. Each cell is a function of one row of
# the report that returns its text; a new column is one more entry.
Column = tuple[str, int, Callable[[dict], str]]
TERMINAL_WIDTH = 100  # what every table and note fits, unless --wide


def table(columns: list[Column], rows: list[dict]) -> list[str]:
    """The header line and one line per row."""
    def line(cells):
        return " ".join(f"{text:{'<' if width < 0 else '>'}{abs(width)}}" for text, (_, width, _) in
                        zip(cells, columns)).rstrip()
    return [line([header for header, _, _ in columns])] + [line([cell(r) for _, _, cell in columns]) for r in rows]


def notes(lines: list[str], wide: bool) -> list[str]:
    """Explanations under a table, wrapped to TERMINAL_WIDTH unless `wide`."""
    if wide:
        return lines
    return [wrapped for line in lines for wrapped in textwrap.wrap(line, TERMINAL_WIDTH, subsequent_indent="  ")]


def _share(used: int, have: int) -> str:
    share = 100 * used / have
    return f"{share:.0f}%" if share >= 9.5 else f"{share:.1f}%"


def _latency(r: dict) -> str:
    if "latency_ms" in r:
        return f"{r['latency_ms']:.2f}"
    return f">= {r['min_latency_ms']:.2f}" if "min_latency_ms" in r else "-"


def _count(r: dict) -> str:
    if "cycles_per_inference" in r:
        return f"{r['cycles_per_inference']:,} cycles"
    return f"{r['instructions_per_inference']:,} instr." if "instructions_per_inference" in r else "-"


def _measured(cell: Callable[[dict], str]) -> Callable[[dict], str]:
    """A cell of a board that was built and run; "-" for the others."""
    return lambda r: cell(r) if "ram_bytes" in r else "-"


def _flash(cell: Callable[[dict], str]) -> Callable[[dict], str]:
    """A cell of a board whose model compiled (its flash is known); "-" for the others."""
    return lambda r: cell(r) if "flash_bytes" in r else "-"


BOARD_COLUMNS: list[Column] = [  # what `boards` prints; BOARD_COLUMNS_WIDE with --wide
    ("board", -11, lambda r: r["key"]),
    ("core", -5, lambda r: core_name(r["core"], short=True)),
    ("MHz", 4, lambda r: f"{r['clock_hz'] / 1e6:g}"),
    ("flash B", 9, _flash(lambda r: f"{r['flash_bytes']:,}")),
    ("%", 5, _flash(lambda r: _share(r["flash_bytes"], r["chip_flash_bytes"]))),
    ("RAM B", 8, _measured(lambda r: f"{r['ram_bytes']:,}")),
    ("%", 5, _measured(lambda r: _share(r["ram_bytes"], r["chip_ram_bytes"]))),
    (" fits", -5, lambda r: f" {r['status']}" if r["status"] in ("PASS", "FAIL") else " -"),
    ("ms/digit", 9, _measured(_latency)),
    ("per inference", 17, _measured(_count)),
    ("= host", 11, _measured(lambda r: f"{r['matches_host']}/{r['images']}")),
]
BOARD_COLUMNS_WIDE: list[Column] = [
    ("board", -26, lambda r: r["board"]),
    ("core", -10, lambda r: core_name(r["core"])),
    ("MHz", 4, lambda r: f"{r['clock_hz'] / 1e6:g}"),
    ("chip flash KB", 14, lambda r: f"{r['chip_flash_bytes'] // 1024:,}"),
    ("chip RAM KB", 12, lambda r: f"{r['chip_ram_bytes'] // 1024:,}"),
    ("model flash B", 14, _flash(lambda r: f"{r['flash_bytes']:,}")),
    ("model RAM B", 12, _measured(lambda r: f"{r['ram_bytes']:,}")),
    (" fits (spare flash / RAM)", -42, lambda r: f" {r.get('verdict', r['status'])}"),
    ("latency ms", 10, _measured(_latency)),
    ("per inference", 18, _measured(_count)),
    ("= host", 12, _measured(lambda r: f"{r['matches_host']}/{r['images']}")),
]


def format_boards(report: dict, wide: bool = False) -> str:
    """The report as a table that fits 100 columns (`wide`: every column, long names), then what each
    figure means; a board that fails or was not run gets a line saying why."""
    rows = report["boards"]
    lines = table(BOARD_COLUMNS_WIDE if wide else BOARD_COLUMNS, rows)
    problems = [f"{r['key']}: {r.get('verdict', r['status'])}" + (f": {r['problem']}" if r.get("problem") else "")
                for r in rows if r["status"] != "PASS"]
    flash, ram = ("model flash B", "model RAM B") if wide else ("flash B", "RAM B")
    explained = [f"{flash}: code + constant tables of the model's object file, built with the board's own flags; "
                 f"{ram}: .data + .bss (the activation arena, input and output included) + measured stack"
                 + ("" if wide else "; %: the share of the chip's flash or RAM"),
                 f"AVR: {HOW['avr']}", f"Cortex-M: {HOW['arm']}", f"RISC-V: {HOW['riscv']}",
                 f"= host: inferences whose int8 outputs are byte-identical to the host build's, of {report['images']} "
                 "test images"]
    model = report.get("model")
    if model:
        tflm = f" (TFLM's arena: {model['tflm_arena_bytes']:,} B)" if model.get("tflm_arena_bytes") else ""
        explained.insert(0, f"the model: {model['macs']:,} multiply-accumulates per inference, {model['weight_bytes']:,} B of "
                            f"constant tables, {model['arena_bytes']:,} B of activations{tflm}")
    return "\n".join(lines + notes(problems + explained, wide))
