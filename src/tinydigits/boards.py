"""The int8 model on the boards people own: built with each board's toolchain, run in its emulator.

For each board (targets.BOARDS) the run's standalone C is compiled with the board's own compiler
and flags, linked into a small test firmware, and run in simavr (AVR) or QEMU (Cortex-M) on N test
images. Each row says how much flash and RAM the model takes on that chip, whether it fits, how
long an inference takes, and whether its outputs are byte-identical to the host build's.

Reads RUN/model_int8.tflite; writes RUN/boards.json and, per board, RUN/firmware/<board>/ (ELF,
.hex or .bin, map, the model's object file), added to the run folder as one set.

    report = measure_boards(Run("runs/lesson"), keys=["uno", "nano33ble"], images=100)
    print(format_boards(report))
"""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from .artifacts import preflight, staged_folder, write_json
from .atomic import claim
from .codegen import write_standalone
from .convert import LiteRT
from .errors import TinyDigitsError
from .runs import RUN_FILES, Run
from .targets import BOARDS, Board, family, find
from .targets import arm
from .targets.host import compile_host, run_batch

DEFAULT_IMAGES = 100
HOW = {
    "avr": "cycles counted by simavr, which models the AVR's instruction timing: latency = cycles / clock; "
           "stack: the deepest stack pointer simavr saw during an inference",
    "arm": "instructions counted with SysTick under qemu -icount; QEMU does not model the pipeline, so time is "
           "a lower bound: instructions / clock (/ 2 on the dual-issue Cortex-M7); "
           "stack: RAM painted before an inference, then searched for the deepest byte it changed",
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
        write_standalone(model, c_dir, str(run.paths.int8_model), command)
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
    buffers = firmware.input_size + firmware.output_size  # int8: the caller's input and output arrays
    if firmware.elf is None:  # too big to link for the emulated machine: sizes only
        text = verdict(firmware.flash_bytes, firmware.static_ram_bytes + buffers, board)[1]
        return {**row, "status": "FAIL", "fits": False, "verdict": text, "problem": firmware.link_error}
    try:
        outputs, figures = tools.run(firmware, inputs)
    except TinyDigitsError as e:
        return {**row, "status": "ERROR", "problem": f"the emulator run failed: {e}"}
    ram = {"data_bss": firmware.static_ram_bytes, "stack": figures["stack_bytes"], "buffers": buffers}
    fits, text = verdict(firmware.flash_bytes, sum(ram.values()), board)
    row.update(status="PASS" if fits else "FAIL", fits=fits, verdict=text, ram_bytes=sum(ram.values()), ram=ram,
               matches_host=int((outputs == host_outputs).all(axis=1).sum()), **figures)
    if "cycles_per_inference" in figures:
        row["latency_ms"] = figures["cycles_per_inference"] / board.clock_hz * 1e3
    else:
        row["min_latency_ms"] = arm.min_seconds(board, figures["instructions_per_inference"]) * 1e3
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
        report = {"run": str(run.folder), "images": images, "boards": rows}
        write_json(staged / RUN_FILES.boards, report)
    return report


def core_name(core: str) -> str:
    return "AVR" if core == "avr" else core.replace("cortex-m", "Cortex-M").replace("plus", "+")


def format_boards(report: dict) -> str:
    lines = [f"{'board':26} {'core':10} {'clock':>7} {'flash / RAM':>13} {'model flash':>11} {'model RAM':>9}  "
             f"{'fits (spare flash / RAM)':36} {'latency per inference':30} {'= host':>7}"]
    for r in report["boards"]:
        chip = f"{r['chip_flash_bytes'] // 1024:,}K / {r['chip_ram_bytes'] // 1024:,}K"
        head = f"{r['board']:26} {core_name(r['core']):10} {r['clock_hz'] / 1e6:>3g} MHz {chip:>13}"
        if "ram_bytes" not in r:  # not built, not linked or not run
            flash = f"{r['flash_bytes']:>9,} B" if "flash_bytes" in r else f"{'-':>11}"
            lines.append(f"{head} {flash} {'-':>9}  {r.get('verdict', r['status'])}: {r['problem']}")
            continue
        if "latency_ms" in r:
            latency = f"{r['latency_ms']:8.2f} ms ({r['cycles_per_inference']:,} cycles)"
        else:
            latency = f">= {r['min_latency_ms']:5.2f} ms ({r['instructions_per_inference']:,} instr.)"
        lines.append(f"{head} {r['flash_bytes']:>9,} B {r['ram_bytes']:>7,} B  {r['verdict']:36} {latency:30} "
                     f"{r['matches_host']:>3}/{r['images']}")
    lines += ["model flash: code + constant tables of the model's object file, built with the board's own flags; "
              "model RAM: .data + .bss + measured stack + the int8 input and output buffers",
              f"AVR: {HOW['avr']}", f"Cortex-M: {HOW['arm']}",
              f"= host: inferences whose int8 outputs are byte-identical to the host build's, of {report['images']} test images"]
    return "\n".join(lines)
