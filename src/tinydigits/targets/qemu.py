"""Run a test firmware in QEMU with semihosting: the protocol of c_templates/qemu_firmware.c, which the
Cortex-M (`arm`) and RISC-V (`riscv`) families share.

The firmware reads inputs.bin from QEMU's working folder, writes outputs.bin and figures.bin (FIGURES,
uint64 each). Under `-icount shift=0` one guest instruction is one nanosecond of virtual time, so the
firmware's counter (SysTick on Cortex-M, the instret CSR on RISC-V) counts instructions; a
calibration loop of known length converts its ticks to instructions. QEMU does not model pipelines,
caches or flash wait states: the count is of instructions, and instructions / clock a lower bound on time.

    outputs, figures = run(firmware, q_images, ["qemu-system-arm", "-M", "mps2-an386"], counter="SysTick")
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TinyDigitsError
from . import Board, Firmware, run_tool

FIGURES = ("images", "ticks", "calibration_ticks", "calibration_instructions", "stack_bytes")  # qemu_firmware.c
FIRMWARE = "qemu_firmware.c"
TIMEOUT_S = 600
# At most this many instructions retire per cycle: the Cortex-M7 is dual-issue; the other cores, the
# RISC-V ones included, single-issue.
MAX_INSTRUCTIONS_PER_CYCLE = {"cortex-m7": 2}


@dataclass(frozen=True)
class Memory:
    """Where the emulated machine has code and RAM (what the firmware links against, not the chip's size)."""
    flash_origin: int
    flash_length: int
    ram_origin: int
    ram_length: int


def linker_script(template: str, memory: Memory) -> str:
    """c_templates/`template` with its {{FLASH_ORIGIN}}, {{FLASH_LENGTH}}, {{RAM_ORIGIN}}, {{RAM_LENGTH}} filled in."""
    text = resources.files("tinydigits").joinpath("c_templates", template).read_text()
    for key, value in (("FLASH_ORIGIN", memory.flash_origin), ("FLASH_LENGTH", memory.flash_length),
                       ("RAM_ORIGIN", memory.ram_origin), ("RAM_LENGTH", memory.ram_length)):
        text = text.replace("{{" + key + "}}", hex(value))
    return text


def run(firmware: Firmware, inputs: np.ndarray, qemu: list[str], counter: str) -> tuple[np.ndarray, dict]:
    """Run the firmware on (N, ...) int8 inputs with the `qemu` command line (emulator and machine):
    its (N, outputs) int8 outputs and figures. `counter` names what the firmware counts with."""
    if firmware.elf is None:
        raise TinyDigitsError(f"{firmware.board.name}: nothing to run ({firmware.link_error})")
    inputs = np.ascontiguousarray(inputs, np.int8).reshape(len(inputs), -1)
    with tempfile.TemporaryDirectory() as tmp:  # the firmware opens its files in QEMU's working folder
        work = Path(tmp)
        inputs.tofile(work / "inputs.bin")
        run_tool([*qemu, "-nographic", "-monitor", "none", "-serial", "none", "-icount", "shift=0",
                  "-semihosting-config", "enable=on,target=native", "-kernel", firmware.elf.resolve()],
                 work, timeout=TIMEOUT_S)
        figures, outputs = read_results(work, firmware.board.name, counter)
    n, cal_ticks = figures["images"], figures["calibration_ticks"]
    if n == 0 or n != len(inputs) or len(outputs) % n:
        raise TinyDigitsError(f"the {firmware.board.name} firmware ran {n} of {len(inputs)} inputs")
    instructions = figures["ticks"] * figures["calibration_instructions"] / cal_ticks / n
    return outputs.reshape(n, -1), {"images": n, "instructions_per_inference": int(round(instructions)),
                                    "instructions_per_tick": figures["calibration_instructions"] / cal_ticks,
                                    "stack_bytes": figures["stack_bytes"]}


def read_results(work: Path, name: str, counter: str) -> tuple[dict, np.ndarray]:
    """figures.bin (FIGURES, uint64 each) and outputs.bin (int8) as the firmware wrote them in `work`;
    a missing or short file, or a calibration that counted no ticks, is one TinyDigitsError line."""
    for file in ("figures.bin", "outputs.bin"):
        if not (work / file).is_file():
            raise TinyDigitsError(f"the {name} firmware did not write {file}")
    values = np.fromfile(work / "figures.bin", np.uint64)
    if len(values) != len(FIGURES):
        raise TinyDigitsError(f"the {name} firmware reported {len(values)} figures, expected {len(FIGURES)} "
                              f"({', '.join(FIGURES)})")
    figures = dict(zip(FIGURES, (int(v) for v in values)))
    if figures["calibration_ticks"] == 0:
        raise TinyDigitsError(f"the {name} firmware's calibration loop counted no {counter} ticks")
    return figures, np.fromfile(work / "outputs.bin", np.int8)


def min_seconds(board: Board, instructions: float) -> float:
    """A lower bound on the time of `instructions`: at most MAX_INSTRUCTIONS_PER_CYCLE retire per cycle."""
    return instructions / MAX_INSTRUCTIONS_PER_CYCLE.get(board.core, 1) / board.clock_hz
