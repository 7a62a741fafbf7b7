"""8-bit AVR boards: build with avr-gcc, run in simavr, count cycles exactly.

simavr models the AVR's instruction timing, so its cycle count is the chip's and cycles / clock
is the latency on the board. A small harness linked with libsimavr (c_templates/simavr_harness.c)
puts each input straight into the firmware's SRAM buffer, reads the outputs back, counts the
cycles between the firmware's start and stop marks (c_templates/avr_firmware.c), and watches the
stack pointer on every instruction of the inference: the stack figure is the deepest it went.
The model's constant tables are in flash (PROGMEM), so its RAM is its arena (.bss, the input and output in it) and its stack.

    firmware = build(Path("out/c"), find("uno"), Path("runs/lesson/firmware/uno"))
    outputs, figures = run(firmware, q_images)     # figures["cycles_per_inference"]
"""
from __future__ import annotations

import re
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TinyDigitsError
from . import Board, Firmware, build_firmware, require_packages, run_tool

TOOLS = {"avr-gcc": "gcc-avr", "avr-objcopy": "binutils-avr", "cc": "gcc"}  # simavr runs as a library: HEADERS
HEADERS = {"/usr/lib/avr/include/avr/pgmspace.h": "avr-libc", "/usr/include/simavr/sim_avr.h": "libsimavr-dev"}
CFLAGS = ("-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
# avr-ld places .rodata in RAM (copied from flash at start-up); .progmem stays in flash only
FLASH_SECTIONS, RAM_SECTIONS = (".text", ".progmem", ".rodata", ".data"), (".rodata", ".data", ".bss")
SIMAVR_TIMEOUT_S = 600


def require() -> None:
    require_packages(TOOLS, HEADERS)


def harness(work: Path) -> Path:
    """Compile the simavr harness (host C, linked with libsimavr) in `work`."""
    source = resources.files("tinydigits").joinpath("c_templates/simavr_harness.c").read_text()
    (work / "simavr_harness.c").write_text(source)
    run_tool(["cc", "-std=c99", "-O2", "-I/usr/include/simavr", "simavr_harness.c", "-o", "simavr_harness", "-lsimavr"], work)
    return work / "simavr_harness"


def build(c_dir: Path, board: Board, work: Path, optimization: str | None = None) -> Firmware:
    """Compile the model (for its sizes) and link it into the test firmware for `board` in `work`."""
    source = resources.files("tinydigits").joinpath("c_templates/avr_firmware.c").read_text()
    return build_firmware(board, c_dir, work, optimization, tools="avr-", flags=[*CFLAGS, f"-DF_CPU={board.clock_hz}UL"],
                          sources={"avr_firmware.c": source}, link_flags=[], image=("hex", ("-O", "ihex", "-R", ".eeprom")),
                          flash_sections=FLASH_SECTIONS, ram_sections=RAM_SECTIONS)


def run(firmware: Firmware, inputs: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run the firmware on (N, ...) int8 inputs in simavr: its (N, outputs) int8 outputs and figures."""
    if firmware.elf is None:
        raise TinyDigitsError(f"{firmware.board.name}: nothing to run ({firmware.link_error})")
    inputs = np.ascontiguousarray(inputs, np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        inputs.tofile(work / "inputs.bin")
        out = run_tool([harness(work), "model", firmware.board.emulator[0], firmware.board.clock_hz, firmware.elf.resolve(),
                        "inputs.bin", "outputs.bin", firmware.input_size, firmware.output_size], work, timeout=SIMAVR_TIMEOUT_S)
        match = re.search(r"images=(\d+) cycles=(\d+) max_cycles=(\d+) stack=(\d+)", out)
        if not match:
            raise TinyDigitsError(f"the {firmware.board.name} firmware did not report its figures")
        n, cycles, max_cycles, stack = map(int, match.groups())
        if n != len(inputs):
            raise TinyDigitsError(f"the {firmware.board.name} firmware ran {n} of {len(inputs)} inputs")
        outputs = np.fromfile(work / "outputs.bin", np.int8).reshape(n, firmware.output_size)
    return outputs, {"images": n, "cycles_per_inference": int(round(cycles / n)), "max_cycles": max_cycles,
                     "stack_bytes": stack}


def run_sketch(image: Path, board: Board, sent: bytes, chunk: int, lines: int) -> str:
    """Run an Arduino sketch's .hex or .elf in simavr, feeding `sent` to its Serial (USART0) `chunk` bytes
    after each line it prints (as a host that waits for each answer); what it printed, `lines` lines."""
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "sent.bin").write_bytes(sent)
        return run_tool([harness(Path(tmp)), "uart", board.emulator[0], board.clock_hz, Path(image).resolve(), "sent.bin",
                         chunk, lines], Path(tmp), timeout=SIMAVR_TIMEOUT_S)
