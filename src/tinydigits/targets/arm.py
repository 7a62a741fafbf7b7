"""Cortex-M boards: build with arm-none-eabi-gcc, run in qemu-system-arm, count instructions.

The firmware (c_templates/qemu_firmware.c, no C library calls) reads int8 inputs from the host
over semihosting and writes the outputs and its figures back (targets.qemu). Instructions are counted
with SysTick under `-icount shift=0` (one instruction is one nanosecond of virtual time), calibrated
by a loop of known length. QEMU does not model the pipeline, so no cycle count is claimed: an
instruction count and a lower bound on time. The stack is measured by painting it.

    firmware = build(Path("out/c"), find("nano33ble"), Path("runs/lesson/firmware/nano33ble"))
    outputs, figures = run(firmware, q_images)     # figures["instructions_per_inference"]
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from . import Board, Firmware, build_firmware, qemu, require_packages
from .qemu import Memory, min_seconds  # noqa: F401  (min_seconds: mcu bounds the time of an instruction count)

TOOLS = {"arm-none-eabi-gcc": "gcc-arm-none-eabi", "qemu-system-arm": "qemu-system-arm"}
HEADERS = {"/usr/lib/arm-none-eabi/include/stdint.h": "libnewlib-arm-none-eabi"}
CFLAGS = ("-mthumb", "-mfloat-abi=soft", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
FLASH_SECTIONS, RAM_SECTIONS = (".text", ".rodata", ".data"), (".data", ".bss")

MACHINES = {
    "microbit": Memory(0x00000000, 256 * 1024, 0x20000000, 16 * 1024),         # nRF51822: as the chip
    "mps2-an386": Memory(0x00000000, 4 * 1024 * 1024, 0x20000000, 4 * 1024 * 1024),
    "mps2-an500": Memory(0x00000000, 4 * 1024 * 1024, 0x20000000, 4 * 1024 * 1024),
    "mps2-an505": Memory(0x10000000, 4 * 1024 * 1024, 0x38000000, 2 * 1024 * 1024),  # secure aliases
}


def require() -> None:
    require_packages(TOOLS, HEADERS)


def build(c_dir: Path, board: Board, work: Path, optimization: str | None = None) -> Firmware:
    """Compile the model (for its sizes) and link it into the test firmware for `board` in `work`."""
    templates = resources.files("tinydigits").joinpath("c_templates")
    sources = {name: templates.joinpath(name).read_text() for name in ("arm_startup.c", qemu.FIRMWARE)}
    (Path(work) / "link.ld").parent.mkdir(parents=True, exist_ok=True)
    (Path(work) / "link.ld").write_text(qemu.linker_script("arm_link.ld", MACHINES[board.emulator[0]]))
    return build_firmware(board, c_dir, work, optimization, tools="arm-none-eabi-", flags=list(CFLAGS), sources=sources,
                          link_flags=["-nostartfiles", "-T", "link.ld"], image=("bin", ("-O", "binary")),
                          flash_sections=FLASH_SECTIONS, ram_sections=RAM_SECTIONS)


def run(firmware: Firmware, inputs: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run the firmware on (N, ...) int8 inputs in QEMU: its (N, outputs) int8 outputs and figures."""
    return qemu.run(firmware, inputs, ["qemu-system-arm", "-M", firmware.board.emulator[0]], counter="SysTick")
