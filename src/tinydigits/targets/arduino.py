"""Build an Arduino sketch with the real Arduino build system (arduino-builder), offline.

Used to prove that `tinydigits export-arduino` output builds as the Arduino IDE builds it (the
.hex it returns runs in simavr: targets.avr.run_sketch), and by `upload`, which also reads how the IDE
uploads to a board from the core's boards.txt (`board_properties`).

    hex_file = build_sketch(Path("TinyDigits/examples/ClassifySerial/ClassifySerial.ino"), find("uno"),
                            Path("build"), libraries=[Path(".")])
"""
from __future__ import annotations

from pathlib import Path

from ..errors import TinyDigitsError
from . import Board, require_packages, run_tool

TOOLS = {"arduino-builder": "arduino-builder", "avr-gcc": "gcc-avr"}
BOARDS_TXT = Path("/usr/share/arduino/hardware/arduino/avr/boards.txt")
HEADERS = {str(BOARDS_TXT): "arduino-core-avr"}
HARDWARE = ("/usr/share/arduino/hardware", "/usr/share/arduino-builder")
TOOL_DIRS = ("/usr/bin", "/usr/share/arduino-builder")
# Debian's AVR core (1.8.x) does not compile with Debian's avr-gcc 5.4 as it is: its WString.cpp needs
# DECIMAL_DIG. This defines it for the core's C++ files; the sketch and the model do not need it.
DEBIAN_CORE_FIX = "-prefs=compiler.cpp.extra_flags=-DDECIMAL_DIG=__DECIMAL_DIG__"
BUILD_TIMEOUT_S = 300


def require() -> None:
    require_packages(TOOLS, HEADERS)


def build_sketch(sketch: Path, board: Board, build: Path, libraries: list[Path] = ()) -> Path:
    """Build `sketch` (.ino) for `board` into `build`; the .hex file. `libraries`: folders holding libraries."""
    if not board.fqbn:
        raise TinyDigitsError(f"{board.name} is not an Arduino board")
    require()
    build = Path(build).resolve()
    build.mkdir(parents=True, exist_ok=True)
    cmd = ["arduino-builder", *(arg for h in HARDWARE for arg in ("-hardware", h)),
           *(arg for t in TOOL_DIRS for arg in ("-tools", t)),
           *(arg for lib in libraries for arg in ("-libraries", Path(lib).resolve())),
           "-fqbn", board.fqbn, "-build-path", build, DEBIAN_CORE_FIX, Path(sketch).resolve()]
    run_tool(cmd, build, timeout=BUILD_TIMEOUT_S)
    return build / f"{Path(sketch).name}.hex"


def board_properties(fqbn: str, boards_txt: Path = BOARDS_TXT) -> dict[str, str]:
    """A board's settings in the Arduino core's boards.txt, as the IDE resolves an FQBN: "arduino:avr:mega:
    cpu=atmega2560" is the `mega.*` keys, overridden by `mega.menu.cpu.atmega2560.*`. {"upload.protocol":
    "wiring", "upload.speed": "115200", "build.mcu": "atmega2560", "vid.0": "0x2341", ...}"""
    name, *options = fqbn.split(":")[2:]
    lines = (line.split("=", 1) for line in Path(boards_txt).read_text().splitlines() if "=" in line and line[0] != "#")
    keys = {key.strip(): value.strip() for key, value in lines}
    menus = [f"{name}.menu.{menu}.{choice}." for menu, choice in (o.split("=", 1) for o in ",".join(options).split(",") if o)]
    found = {k[len(name) + 1:]: v for k, v in keys.items() if k.startswith(f"{name}.") and ".menu." not in k}
    for prefix in menus:
        found.update({k[len(prefix):]: v for k, v in keys.items() if k.startswith(prefix)})
    if not found:
        raise TinyDigitsError(f"{fqbn}: not a board of {boards_txt}")
    return found
