"""Where the generated C runs: boards as rows of data, and the toolchain family that builds and runs each.

A board is a `Board` row in `BOARDS`; what builds and runs it is a family module with the same
three verbs, whatever the chip:

    require()                                    -> None, or TinyDigitsError naming the apt packages to install
    build(c_dir, board, work, optimization=None) -> Firmware: ELF, .hex/.bin and map in `work`, the model's sizes
    run(firmware, inputs)                        -> (outputs, figures): int8 outputs, what an inference cost

`arm` (arm-none-eabi-gcc + qemu-system-arm) and `avr` (avr-gcc + simavr) are the families;
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


@dataclass(frozen=True)
class Board:
    key: str                  # what --board takes
    name: str                 # "Arduino Uno R3"
    chip: str                 # "ATmega328P"
    core: str                 # "avr", "cortex-m0", "cortex-m4", ... (also the -mcpu of ARM boards)
    clock_hz: int
    flash_bytes: int          # the chip's
    ram_bytes: int            # the chip's
    toolchain: str            # "avr" or "arm": the family module that builds and runs it
    cflags: tuple[str, ...]   # the board's own compiler flags
    emulator: tuple[str, ...]  # simavr's -m core, or qemu-system-arm's -M machine
    runs_in: str              # how it is emulated, in words
    fqbn: str = ""            # the Arduino board id (arduino-builder -fqbn), for Arduino boards

    def __repr__(self):
        return f"Board({self.key!r}, {self.name}, {self.core} @ {self.clock_hz / 1e6:g} MHz)"


AVR_FLAGS = ("-O2",)  # 4% fewer cycles than -Os (the kernels' inner loops are assembly either way), 1.1 KB more flash
ARM_FLAGS = ("-Os",)

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
)


@dataclass(frozen=True)
class Firmware:
    board: Board
    folder: Path              # RUN/firmware/<board>/: the ELF, .hex or .bin, map and model object
    elf: Path | None          # None when the model does not link for this board (too big)
    model_sections: dict      # section name -> bytes, of the model's own object file
    flash_bytes: int          # the model in flash: code + constant tables + initial values of .data
    static_ram_bytes: int     # the model in RAM before any call: .data + .bss (+ .rodata where it is copied)
    firmware_sections: dict   # the whole test firmware's ELF: section name -> bytes
    input_size: int           # int8 values in, out of one inference (TINYDIGITS_INPUT_SIZE, _OUTPUT_SIZE)
    output_size: int
    link_error: str = ""      # why it did not link, in one line


def build_firmware(board: Board, c_dir: Path, work: Path, optimization: str | None, *, tools: str, flags: list[str],
                   sources: dict[str, str], link_flags: list[str], image: tuple[str, tuple[str, ...]],
                   flash_sections: tuple[str, ...], ram_sections: tuple[str, ...]) -> Firmware:
    """The steps every cross toolchain shares: compile the model alone (its sizes), link it with the test
    firmware's `sources` (name -> text, written to `work`), and make the flashable image.

    `tools` is the binutils prefix ("avr-", "arm-none-eabi-"); `image` the extension and objcopy arguments of
    the image; the section-name prefixes say which bytes sit in flash and which in RAM on this family."""
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
                  *sources, model_c, "-o", elf.name], work)
        run_tool([f"{tools}objcopy", *image[1], elf.name, f"firmware{suffix}.{image[0]}"], work)
        whole = section_sizes(f"{tools}size", elf)
    except TinyDigitsError as e:
        if "overflowed" not in str(e) and "will not fit" not in str(e):
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
    """The module that builds and runs `board`: targets.avr or targets.arm."""
    from . import arm, avr

    return {"avr": avr, "arm": arm}[board.toolchain]


def io_sizes(c_dir: Path) -> tuple[int, int]:
    """TINYDIGITS_INPUT_SIZE and TINYDIGITS_OUTPUT_SIZE from the generated header in `c_dir`."""
    header = (Path(c_dir) / "tinydigits_model.h").read_text()
    return tuple(int(re.search(rf"#define TINYDIGITS_{name}_SIZE (\d+)", header).group(1)) for name in ("INPUT", "OUTPUT"))


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
        why = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
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
