"""RISC-V boards: build with riscv64-unknown-elf-gcc (picolibc's headers), run in qemu-system-riscv32, count
instructions.

The test firmware is the Cortex-M one (c_templates/qemu_firmware.c, targets.qemu) with a RISC-V
start-up (riscv_startup.c) and linker script (riscv_link.ld) for QEMU's `virt` machine, started with
`-bios none`. Each board's CPU is QEMU's generic `rv32` with the extensions the chip lacks switched
off (Board.emulator: machine, -cpu), so an instruction the chip cannot run traps and fails the run.
Instructions are the instret CSR under `-icount shift=0`, checked against a calibration loop;
QEMU does not model the pipeline or flash wait states, so no cycle count is claimed.

The toolchain's multilibs are picked by -march, and one with Z extensions (`rv32imc_zicsr`) matches
none of them, so the link takes picolibc's libc.a and libgcc.a from the directory of the base ISA
(`rv32imc`).

QEMU has no RV32E CPU: the CH32V003's rv32ec build runs on rv32 with E on and I and M off, and QEMU
does not stop code from using x16-x31 there, so `build` reads the disassembly and refuses an RV32E
firmware that names any of them.

    firmware = build(Path("out/c"), find("esp32c3"), Path("runs/lesson/firmware/esp32c3"))
    outputs, figures = run(firmware, q_images)     # figures["instructions_per_inference"]
"""
from __future__ import annotations

import re
from importlib import resources
from pathlib import Path

import numpy as np

from ..errors import TinyDigitsError
from . import Board, Firmware, build_firmware, qemu, require_packages, run_tool
from .qemu import Memory

GCC = "riscv64-unknown-elf-gcc"
TOOLS = {GCC: "gcc-riscv64-unknown-elf", "qemu-system-riscv32": "qemu-system-misc"}
PICOLIBC = Path("/usr/lib/picolibc/riscv64-unknown-elf")
HEADERS = {str(PICOLIBC / "picolibc.specs"): "picolibc-riscv64-unknown-elf"}
CFLAGS = ("--specs=picolibc.specs", "-std=c99", "-Wall", "-Wextra", "-Werror", "-ffunction-sections", "-fdata-sections")
FLASH_SECTIONS, RAM_SECTIONS = (".text", ".rodata", ".srodata", ".data", ".sdata"), (".data", ".sdata", ".bss", ".sbss")
VIRT = Memory(0x80000000, 4 * 1024 * 1024, 0x80400000, 4 * 1024 * 1024)  # in virt's DRAM, where -bios none starts
RV32E_MISSING = re.compile(r"\bx(1[6-9]|2[0-9]|3[01])\b")  # objdump -M numeric: the registers RV32E does not have


def require() -> None:
    require_packages(TOOLS, HEADERS)


def flag(board: Board, name: str) -> str:
    """The value of -march= or -mabi= in the board's flags."""
    return next(f.split("=", 1)[1] for f in board.cflags if f.startswith(f"-{name}="))


def base_isa(march: str) -> str:
    """rv32imac_zba_zbb_zbs_zicsr -> rv32imac: what the multilibs are built for."""
    return march.split("_")[0]


def libraries(board: Board, work: Path) -> tuple[str, str]:
    """picolibc's libc.a (memcpy, memset) and libgcc.a (a software multiply on a chip without M) built for the
    board's base ISA and ABI: the multilib GCC would pick for -march=rv32imc, not the rv64 default it falls
    back to for rv32imc_zicsr."""
    query = [GCC, f"-march={base_isa(flag(board, 'march'))}", f"-mabi={flag(board, 'mabi')}"]
    multilib = run_tool([*query, "-print-multi-directory"], work).strip()
    return str(PICOLIBC / "lib" / multilib / "libc.a"), run_tool([*query, "-print-libgcc-file-name"], work).strip()


def build(c_dir: Path, board: Board, work: Path, optimization: str | None = None) -> Firmware:
    """Compile the model (for its sizes) and link it into the test firmware for `board` in `work`."""
    templates = resources.files("tinydigits").joinpath("c_templates")
    sources = {name: templates.joinpath(name).read_text() for name in ("riscv_startup.c", qemu.FIRMWARE)}
    work = Path(work)
    work.mkdir(parents=True, exist_ok=True)
    (work / "link.ld").write_text(qemu.linker_script("riscv_link.ld", VIRT))
    firmware = build_firmware(board, c_dir, work, optimization, tools="riscv64-unknown-elf-", flags=list(CFLAGS),
                              sources=sources, link_flags=["-nostartfiles", "-nostdlib", "-T", "link.ld"],
                              libraries=libraries(board, work), image=("bin", ("-O", "binary")),
                              flash_sections=FLASH_SECTIONS, ram_sections=RAM_SECTIONS)
    if firmware.elf is not None and base_isa(flag(board, "march")).startswith("rv32e"):
        check_rv32e(firmware.elf)
    return firmware


def check_rv32e(elf: Path) -> None:
    """Refuse a firmware whose code names x16-x31, which an RV32E chip does not have (QEMU would run it)."""
    listing = run_tool(["riscv64-unknown-elf-objdump", "-d", "-M", "numeric,no-aliases", Path(elf).resolve()],
                       Path(elf).parent)
    for line in listing.splitlines():
        if "\t" in line and RV32E_MISSING.search(line.split("\t", 2)[-1]):
            raise TinyDigitsError(f"{Path(elf).name} uses a register RV32E does not have (x16-x31): "
                                  + " ".join(line.split()))


def run(firmware: Firmware, inputs: np.ndarray) -> tuple[np.ndarray, dict]:
    """Run the firmware on (N, ...) int8 inputs in QEMU: its (N, outputs) int8 outputs and figures."""
    machine, cpu = firmware.board.emulator
    return qemu.run(firmware, inputs, ["qemu-system-riscv32", "-M", machine, "-bios", "none", "-cpu", cpu],
                    counter="instret")
