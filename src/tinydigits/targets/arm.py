"""Cortex-M boards: build with arm-none-eabi-gcc, run in qemu-system-arm, count instructions.

The firmware (c_templates/arm_firmware.c, no C library calls) reads int8 inputs from the host
over semihosting and writes the outputs and its figures back. Instructions are counted with
SysTick under `-icount shift=0` (one instruction is one nanosecond of virtual time), calibrated by
a loop of known length. QEMU does not model the pipeline, so no cycle count is claimed: an
instruction count and a lower bound on time. The stack is measured by painting it.

    firmware = build(Path("out/c"), find("nano33ble"), Path("runs/lesson/firmware/nano33ble"))
    outputs, figures = run(firmware, q_images)     # figures["instructions_per_inference"]
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TinyDigitsError
from . import Board, Firmware, build_firmware, require_packages, run_tool

TOOLS = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "qemu-system-arm": "qemu-system-arm"}
HEADERS = {"/usr/lib/arm-none-eabi/include/stdint.h": "libnewlib-arm-none-eabi"}
CFLAGS = ("-mthumb", "-mfloat-abi=soft", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
FLASH_SECTIONS, RAM_SECTIONS = (".text", ".rodata", ".data"), (".data", ".bss")
QEMU_TIMEOUT_S = 600
FIGURES = ("images", "ticks", "calibration_ticks", "calibration_instructions", "stack_bytes")  # arm_firmware.c
# At most this many instructions retire per cycle: the Cortex-M7 is dual-issue, the others single-issue.
MAX_INSTRUCTIONS_PER_CYCLE = {"cortex-m7": 2}


@dataclass(frozen=True)
class Memory:
    """Where the emulated machine has code and RAM (what the firmware links against, not the chip's size)."""
    flash_origin: int
    flash_length: int
    ram_origin: int
    ram_length: int


MACHINES = {
    "microbit": Memory(0x00000000, 256 * 1024, 0x20000000, 16 * 1024),         # nRF51822: as the chip
    "mps2-an386": Memory(0x00000000, 4 * 1024 * 1024, 0x20000000, 4 * 1024 * 1024),
    "mps2-an500": Memory(0x00000000, 4 * 1024 * 1024, 0x20000000, 4 * 1024 * 1024),
    "mps2-an505": Memory(0x10000000, 4 * 1024 * 1024, 0x38000000, 2 * 1024 * 1024),  # secure aliases
}


def require() -> None:
    require_packages(TOOLS, HEADERS)


def linker_script(memory: Memory) -> str:
    text = resources.files("tinydigits").joinpath("c_templates/arm_link.ld").read_text()
    for key, value in (("FLASH_ORIGIN", memory.flash_origin), ("FLASH_LENGTH", memory.flash_length),
                       ("RAM_ORIGIN", memory.ram_origin), ("RAM_LENGTH", memory.ram_length)):
        text = text.replace("{{" + key + "}}", hex(value))
    return text


def build(c_dir: Path, board: Board, work: Path, optimization: str | None = None) -> Firmware:
    """Compile the model (for its sizes) and link it into the test firmware for `board` in `work`."""
    templates = resources.files("tinydigits").joinpath("c_templates")
    sources = {name: templates.joinpath(name).read_text() for name in ("arm_startup.c", "arm_firmware.c")}
    (Path(work) / "link.ld").parent.mkdir(parents=True, exist_ok=True)
    (Path(work) / "link.ld").write_text(linker_script(MACHINES[board.emulator[0]]))
    return build_firmware(board, c_dir, work, optimization, tools="arm-none-eabi-", flags=list(CFLAGS), sources=sources,
                          link_flags=["-nostartfiles", "-T", "link.ld"], image=("bin", ("-O", "binary")),
                          flash_sections=FLASH_SECTIONS, ram_sections=RAM_SECTIONS)


def run(firmware: Firmware, inputs: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run the firmware on (N, ...) int8 inputs in QEMU: its (N, outputs) int8 outputs and figures."""
    if firmware.elf is None:
        raise TinyDigitsError(f"{firmware.board.name}: nothing to run ({firmware.link_error})")
    inputs = np.ascontiguousarray(inputs, np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory() as tmp:  # the firmware opens its files in QEMU's working folder
        work = Path(tmp)
        inputs.tofile(work / "inputs.bin")
        run_tool(["qemu-system-arm", "-M", firmware.board.emulator[0], "-nographic", "-monitor", "none", "-serial", "none",
                  "-icount", "shift=0", "-semihosting-config", "enable=on,target=native", "-kernel", firmware.elf.resolve()],
                 work, timeout=QEMU_TIMEOUT_S)
        figures, outputs = read_results(work, firmware.board.name)
    n, cal_ticks = figures["images"], figures["calibration_ticks"]
    if n == 0 or n != len(inputs) or len(outputs) % n:
        raise TinyDigitsError(f"the {firmware.board.name} firmware ran {n} of {len(inputs)} inputs")
    instructions = figures["ticks"] * figures["calibration_instructions"] / cal_ticks / n
    return outputs.reshape(n, -1), {"images": n, "instructions_per_inference": int(round(instructions)),
                                    "instructions_per_tick": figures["calibration_instructions"] / cal_ticks,
                                    "stack_bytes": figures["stack_bytes"]}


def read_results(work: Path, name: str) -> tuple[dict, np.ndarray]:
    """figures.bin (FIGURES, uint32 each) and outputs.bin (int8) as the firmware wrote them in `work`;
    a missing or short file, or a calibration that counted no ticks, is one TinyDigitsError line."""
    for file in ("figures.bin", "outputs.bin"):
        if not (work / file).is_file():
            raise TinyDigitsError(f"the {name} firmware did not write {file}")
    values = np.fromfile(work / "figures.bin", np.uint32)
    if len(values) != len(FIGURES):
        raise TinyDigitsError(f"the {name} firmware reported {len(values)} figures, expected {len(FIGURES)} "
                              f"({', '.join(FIGURES)})")
    figures = dict(zip(FIGURES, (int(v) for v in values)))
    if figures["calibration_ticks"] == 0:
        raise TinyDigitsError(f"the {name} firmware's calibration loop counted no SysTick ticks")
    return figures, np.fromfile(work / "outputs.bin", np.int8)


def min_seconds(board: Board, instructions: float) -> float:
    """A lower bound on the time of `instructions`: at most MAX_INSTRUCTIONS_PER_CYCLE retire per cycle."""
    return instructions / MAX_INSTRUCTIONS_PER_CYCLE.get(board.core, 1) / board.clock_hz
