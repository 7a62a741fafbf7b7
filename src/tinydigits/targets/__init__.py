"""Where the generated C runs: boards as rows of data, and the toolchain family that builds and runs each.

A board is a `Board` row in `BOARDS`; what builds and runs it is a family module with the same
three verbs, whatever the chip:

    require()                                    -> None, or TinyDigitsError naming the apt packages to install
    build(c_dir, board, work, optimization=None) -> Firmware: ELF, .hex/.bin and map in `work`, the model's sizes
    run(firmware, inputs)                        -> (outputs, figures): int8 outputs, what an inference cost

`arm` (arm-none-eabi-gcc + qemu-system-arm), `riscv` (riscv64-unknown-elf-gcc + qemu-system-riscv32) and
`avr` (avr-gcc + simavr) are the families;
`host` compiles the same C for this machine (the reference every target must equal); `wasm`
compiles it to WebAssembly for the browser; `arduino` builds an Arduino sketch with arduino-builder.

    board = find("uno")
    firmware = family(board).build(Path("out/c"), board, Path("runs/lesson/firmware/uno"))
    outputs, figures = family(board).run(firmware, q_images)   # figures["cycles_per_inference"]
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..errors import TinyDigitsError

KB = 1024
TOO_BIG = ("overflowed", "will not fit", "is not within region")  # what ld says when a section exceeds the memory


@dataclass(frozen=True)
class Board:
    key: str                  # what --board takes
    name: str                 # "Arduino Uno R3"
    chip: str                 # "ATmega328P"
    core: str                 # "avr", "cortex-m0", ... (the -mcpu of ARM boards), "rv32imc", ... (the ISA of RISC-V ones)
    clock_hz: int
    flash_bytes: int          # the chip's
    ram_bytes: int            # the chip's
    toolchain: str            # "avr", "arm" or "riscv": the family module that builds and runs it
    cflags: tuple[str, ...]   # the board's own compiler flags
    emulator: tuple[str, ...]  # simavr's -m core, qemu-system-arm's -M machine, or qemu-system-riscv32's -M and -cpu
    runs_in: str              # how it is emulated, in words
    fqbn: str = ""            # the Arduino board id (arduino-builder -fqbn), for Arduino boards

    def __repr__(self):
        return f"Board({self.key!r}, {self.name}, {self.core} @ {self.clock_hz / 1e6:g} MHz)"


AVR_FLAGS = ("-O2",)  # 4% fewer cycles than -Os (the kernels' inner loops are assembly either way), 1.1 KB more flash
ARM_FLAGS = ("-Os",)
# QEMU's generic rv32 CPU has A, F, D and Zba/Zbb/Zbc/Zbs on: each board switches off what its chip lacks.
RV32_OFF = "a=false,f=false,d=false,zba=false,zbb=false,zbc=false,zbs=false"

BOARDS = (
    Board("uno", "Arduino Uno R3", "ATmega328P", "avr", 16_000_000, 32 * KB, 2 * KB, "avr",
          ("-mmcu=atmega328p", *AVR_FLAGS), ("atmega328p",), "simavr -m atmega328p (cycle-exact)",
          "arduino:avr:uno"),
    Board("mega2560", "Arduino Mega 2560", "ATmega2560", "avr", 16_000_000, 256 * KB, 8 * KB, "avr",
          ("-mmcu=atmega2560", *AVR_FLAGS), ("atmega2560",), "simavr -m atmega2560 (cycle-exact)",
          "arduino:avr:mega:cpu=atmega2560"),
    Board("microbit", "BBC micro:bit v1", "nRF51822", "cortex-m0", 16_000_000, 256 * KB, 16 * KB, "arm",
          ("-mcpu=cortex-m0", *ARM_FLAGS), ("microbit",), "qemu-system-arm -M microbit"),
    Board("pico", "Raspberry Pi Pico", "RP2040", "cortex-m0plus", 133_000_000, 2048 * KB, 264 * KB, "arm",
          ("-mcpu=cortex-m0plus", *ARM_FLAGS), ("microbit",),
          "qemu-system-arm -M microbit (a Cortex-M0: the same ARMv6-M instruction set)"),
    Board("nano33ble", "Arduino Nano 33 BLE Sense", "nRF52840", "cortex-m4", 64_000_000, 1024 * KB, 256 * KB, "arm",
          ("-mcpu=cortex-m4", *ARM_FLAGS), ("mps2-an386",), "qemu-system-arm -M mps2-an386",
          "arduino:mbed_nano:nano33ble"),
    Board("stm32f746", "STM32F746 Discovery", "STM32F746NG", "cortex-m7", 216_000_000, 1024 * KB, 320 * KB, "arm",
          ("-mcpu=cortex-m7", *ARM_FLAGS), ("mps2-an500",), "qemu-system-arm -M mps2-an500"),
    Board("nrf5340", "Nordic nRF5340 DK", "nRF5340", "cortex-m33", 128_000_000, 1024 * KB, 512 * KB, "arm",
          ("-mcpu=cortex-m33", *ARM_FLAGS), ("mps2-an505",), "qemu-system-arm -M mps2-an505"),
    Board("esp32c3", "ESP32-C3 DevKit", "ESP32-C3", "rv32imc", 160_000_000, 4096 * KB, 400 * KB, "riscv",
          ("-march=rv32imc_zicsr", "-mabi=ilp32", "-O2"), ("virt", f"rv32,{RV32_OFF}"),
          "qemu-system-riscv32 -M virt, rv32 CPU as RV32IMC"),
    # -O2: 6% fewer instructions than -Os for 2% more flash. GCC 12.2 crashes at -O2 with Zbs on this C
    # ("unrecognizable insn"): the Pico 2 builds with -Os. The CH32V003 has 16 KB of flash: -Os (-O2: 1% faster, +500 B).
    Board("pico2-riscv", "Raspberry Pi Pico 2", "RP2350 (Hazard3)", "rv32imac_zba_zbb_zbs", 150_000_000,
          4096 * KB, 520 * KB, "riscv", ("-march=rv32imac_zba_zbb_zbs_zicsr", "-mabi=ilp32", "-Os"),
          ("virt", "rv32,f=false,d=false,zbc=false"), "qemu-system-riscv32 -M virt, rv32 CPU as RV32IMAC + Zba/Zbb/Zbs"),
    Board("ch32v003", "CH32V003", "CH32V003", "rv32ec", 48_000_000, 16 * KB, 2 * KB, "riscv",
          ("-march=rv32ec_zicsr", "-mabi=ilp32e", "-Os"), ("virt", f"rv32,e=true,i=false,m=false,h=false,{RV32_OFF}"),
          "qemu-system-riscv32 -M virt, rv32 CPU with E on, I and M off: a stand-in (QEMU has no RV32E CPU; "
          "RV32E is a subset of RV32I), x16-x31 checked absent in the disassembly"),
)


@dataclass(frozen=True)
class Firmware:
    board: Board
    folder: Path              # RUN/firmware/<board>/: the ELF, .hex or .bin, map and model object
    elf: Path | None          # None when the model does not link for this board (too big)
    model_sections: dict      # section name -> bytes, of the model's own object file
    flash_bytes: int          # the model in flash: code + constant tables + initial values of .data
    static_ram_bytes: int     # the model in RAM before any call: .data + .bss (its arena) (+ .rodata where it is copied)
    firmware_sections: dict   # the whole test firmware's ELF: section name -> bytes
    input_size: int           # int8 values in, out of one inference (TINYDIGITS_INPUT_SIZE, _OUTPUT_SIZE)
    output_size: int
    link_error: str = ""      # why it did not link, in one line


def build_firmware(board: Board, c_dir: Path, work: Path, optimization: str | None, *, tools: str, flags: list[str],
                   sources: dict[str, str], link_flags: list[str], image: tuple[str, tuple[str, ...]],
                   flash_sections: tuple[str, ...], ram_sections: tuple[str, ...],
                   libraries: tuple[str, ...] = ()) -> Firmware:
    """The steps every cross toolchain shares: compile the model alone (its sizes), link it with the test
    firmware's `sources` (name -> text, written to `work`), and make the flashable image.

    `tools` is the binutils prefix ("avr-", "arm-none-eabi-"); `image` the extension and objcopy arguments of
    the image; the section-name prefixes say which bytes sit in flash and which in RAM on this family;
    `libraries` (archive paths) are linked after the objects, which need them."""
    c_dir, work = Path(c_dir).resolve(), Path(work).resolve()
    work.mkdir(parents=True, exist_ok=True)
    for name, text in sources.items():
        (work / name).write_text(text)
    flags = [*flags, *board.cflags, *([optimization] if optimization else []), f"-I{c_dir}"]
    model_c, suffix = c_dir / "tinydigits_model.c", optimization or ""
    # the model is ISO C (-pedantic); the firmware's vector table and semihosting calls need GNU C
    run_tool([f"{tools}gcc", *flags, "-pedantic", "-c", model_c, "-o", f"model{suffix}.o"], work)
    model = section_sizes(f"{tools}size", work / f"model{suffix}.o")
    elf, link_error, whole = work / f"firmware{suffix}.elf", "", {}
    try:
        run_tool([f"{tools}gcc", *flags, *link_flags, "-Wl,--gc-sections", f"-Wl,-Map=firmware{suffix}.map",
                  *sources, model_c, *libraries, "-o", elf.name], work)
        run_tool([f"{tools}objcopy", *image[1], elf.name, f"firmware{suffix}.{image[0]}"], work)
        whole = section_sizes(f"{tools}size", elf)
    except TinyDigitsError as e:
        if not any(why in str(e) for why in TOO_BIG):
            raise
        elf, link_error = None, str(e)  # too big for the (emulated) memory: the sizes still count
    return Firmware(board, work, elf, model, bytes_in(model, flash_sections), bytes_in(model, ram_sections), whole,
                    *io_sizes(c_dir), link_error)


def find(key: str) -> Board:
    """The board whose key is `key`, in any case ("Uno" is "uno")."""
    for board in BOARDS:
        if board.key == key.lower():
            return board
    raise TinyDigitsError(f"unknown board {key!r} (known: {', '.join(b.key for b in BOARDS)})")


def family(board: Board):
    """The module that builds and runs `board`: targets.avr, targets.arm or targets.riscv."""
    from . import arm, avr, riscv

    return {"avr": avr, "arm": arm, "riscv": riscv}[board.toolchain]


def io_sizes(c_dir: Path) -> tuple[int, int]:
    """The int8 values in and out of one inference, from the generated C's facts sidecar."""
    from ..codegen import read_facts

    facts = read_facts(c_dir)
    return facts["input"]["size"], facts["output"]["size"]


def missing_packages(tools: dict[str, str], headers: dict[str, str] | None = None) -> dict[str, str]:
    """The tools (name -> apt package) and header files (path -> apt package) not found here."""
    missing = {tool: package for tool, package in tools.items() if shutil.which(tool) is None}
    return {**missing, **{header: package for header, package in (headers or {}).items() if not Path(header).exists()}}


def require_packages(tools: dict[str, str], headers: dict[str, str] | None = None) -> None:
    missing = missing_packages(tools, headers)
    if missing:
        packages = " ".join(dict.fromkeys(missing.values()))
        raise TinyDigitsError(f"{', '.join(missing)} not found: install {'it' if len(missing) == 1 else 'them'} "
                              f"with `apt-get install {packages}`")


def run_tool(cmd: list[str], cwd: Path, timeout: float = 120) -> str:
    """Run a compiler, linker or emulator; any failure becomes one TinyDigitsError line naming the tool."""
    name = Path(cmd[0]).name
    try:
        proc = subprocess.run([str(c) for c in cmd], cwd=cwd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise TinyDigitsError(f"{name} did not finish within {timeout:g} s") from None
    except FileNotFoundError:
        raise TinyDigitsError(f"{name} not found") from None
    if proc.returncode != 0:
        lines = [line for line in (proc.stderr + "\n" + proc.stdout).splitlines() if line.strip()]
        why = next((line for line in lines if any(phrase in line for phrase in TOO_BIG)),
                   next((line for line in lines if "error" in line.lower()), lines[-1] if lines else ""))
        why = re.sub(r"[^\s:'\"`‘’]*/([^\s/:'\"`‘’]+)", r"\1", why)  # file names without their (temporary) folders
        raise TinyDigitsError(f"{name} failed (exit status {proc.returncode})" + (f": {why.strip()[:200]}" if why else ""))
    return proc.stdout


def section_sizes(size_tool: str, path: Path) -> dict:
    """Every allocated section of an object or ELF with its size in bytes (`size -A`)."""
    path = Path(path).resolve()
    out = run_tool([size_tool, "-A", path], path.parent)
    sizes = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) == 3 and parts[0].startswith(".") and parts[1].isdigit():
            sizes[parts[0]] = sizes.get(parts[0], 0) + int(parts[1])
    return sizes


def bytes_in(sections: dict, prefixes: tuple[str, ...]) -> int:
    """Total size of the sections whose name starts with one of `prefixes`."""
    return sum(size for name, size in sections.items() if name.startswith(prefixes))
