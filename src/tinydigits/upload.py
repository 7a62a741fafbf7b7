"""Put a run's model on a board on your desk: build the Arduino sketch and flash it over the board's
bootloader.

For the Arduino boards (`uno`, `mega2560`) the ClassifySerial sketch of `export-arduino` is built with
arduino-builder, as the Arduino IDE builds it, and written by avrdude through the bootloader the board
came with, with the settings of the Arduino core's boards.txt, as the IDE does: `-c arduino -b 115200`
for the Uno's optiboot, `-c wiring -b 115200` for the Mega 2560's stk500v2 bootloader. The .hex is kept
in RUN/firmware/<board>-sketch/ (added to the run folder with the upload, or not at all).

`port="auto"` finds the board by its USB IDs: those boards.txt gives the board, then those of the
USB-serial chips that clones carry (CH340, FT232R, CP2102). A port that is not there, a board that does
not answer its bootloader's handshake, or any other avrdude failure is one TinyDigitsError line naming
the port and the cause.

    report = upload(Run("runs/lesson"), find("uno"), "/dev/ttyACM0")
    print(format_upload(report))    # flash used of the maximum, bytes written and verified
"""
from __future__ import annotations

import re
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from .artifacts import preflight, write_bytes
from .boards import firmware_folders
from .errors import TinyDigitsError
from .export import ARDUINO_EXAMPLE, ARDUINO_LIBRARY, export_arduino
from .runs import Run
from .targets import Board, arduino, require_packages

AVRDUDE_TIMEOUT_S = 180  # a Mega's 250 KB at 115200 baud, written and read back
CLONE_CHIPS = {(0x1A86, 0x7523): "CH340", (0x0403, 0x6001): "FT232R", (0x10C4, 0xEA60): "CP2102"}  # USB-serial chips
# avrdude's causes, most telling first: (what it prints, what it means)
CAUSES = (("not in sync", "the board does not answer: no reply from its bootloader (is it this board, on this "
                          "port, with its bootloader? press reset just before uploading if it has no auto-reset)"),
          ("programmer is not responding", "the board does not answer: no reply from its bootloader"),
          ("Permission denied", "cannot be opened: permission denied (add yourself to the dialout group, log in again)"),
          ("cannot open port", "cannot be opened"),
          ("cannot set attributes", "is not a serial port"),
          ("verification error", "the flash read back differs from what was written"),
          ("signature", "the chip's signature is not this board's"))


@dataclass(frozen=True)
class Avrdude:
    """How the Arduino IDE uploads to a board (boards.txt): avrdude's -p, -c and -b, the flash the bootloader
    leaves to sketches, and the board's USB IDs (for --port auto)."""
    part: str
    protocol: str
    baud: int
    maximum_bytes: int
    usb_ids: tuple[tuple[int, int], ...]

    def command(self, port: str, hex_file: Path) -> list[str]:
        """The IDE's upload pattern (platform.txt): no chip erase (-D), the bootloader erases each page."""
        return ["avrdude", "-p", self.part, "-c", self.protocol, "-P", port, "-b", str(self.baud), "-D",
                "-U", f"flash:w:{hex_file}:i"]


def avrdude_settings(board: Board) -> Avrdude:
    if not board.fqbn or board.toolchain != "avr":
        raise TinyDigitsError(f"{board.key}: upload flashes the Arduino boards over their serial bootloader (uno, "
                              f"mega2560), not the {board.name}: build the C of `tinydigits export-c` with its "
                              "vendor's SDK (README: On a real board)")
    p = arduino.board_properties(board.fqbn)
    ids = tuple((int(p[f"vid.{i}"], 16), int(p[f"pid.{i}"], 16)) for i in range(10) if f"vid.{i}" in p and f"pid.{i}" in p)
    return Avrdude(p["build.mcu"], p["upload.protocol"], int(p["upload.speed"]), int(p["upload.maximum_size"]), ids)


def find_port(board: Board, ports=None) -> str:
    """The one serial port whose USB IDs are the board's (or, failing that, a clone's USB-serial chip's)."""
    if ports is None:
        from serial.tools import list_ports

        ports = list_ports.comports()
    ids = set(avrdude_settings(board).usb_ids)
    for wanted in (ids, set(CLONE_CHIPS)):
        found = [p for p in ports if (p.vid, p.pid) in wanted]
        if len(found) == 1:
            return found[0].device
        if found:
            raise TinyDigitsError(f"--port auto: {len(found)} boards found ({', '.join(p.device for p in found)}); "
                                  "give --port")
    seen = ", ".join(f"{p.device} ({p.vid:04x}:{p.pid:04x})" if p.vid is not None else p.device for p in ports)
    raise TinyDigitsError(f"--port auto: no {board.name} found on USB (looked for "
                          f"{', '.join(f'{v:04x}:{p:04x}' for v, p in sorted(ids | set(CLONE_CHIPS)))}); "
                          f"ports here: {seen or 'none'}")


def check_port(port: str) -> str:
    if not Path(port).exists():
        raise TinyDigitsError(f"{port}: no such port (is the board plugged in? --port auto looks for it)")
    return port


def hex_data_bytes(hex_file: Path) -> int:
    """The bytes an Intel HEX file puts in flash (its data records)."""
    return sum(int(line[1:3], 16) for line in Path(hex_file).read_text().splitlines()
               if line.startswith(":") and line[7:9] == "00")


def build_sketch_hex(run: Run, board: Board, work: Path, command: str) -> Path:
    """The run's Arduino library and its ClassifySerial sketch, built for `board` in `work`: the .hex."""
    library = work / "libraries" / ARDUINO_LIBRARY
    export_arduino(run, library, command)
    sketch = library / "examples" / ARDUINO_EXAMPLE / f"{ARDUINO_EXAMPLE}.ino"
    return arduino.build_sketch(sketch, board, work / "build", libraries=[library.parent])


def avrdude_failure(port: str, output: str, status: int) -> TinyDigitsError:
    """One line: the port and what avrdude's output says went wrong."""
    lines = [line.strip() for line in output.splitlines() if line.strip() and "TIOCM" not in line]  # a pty has no modem lines
    for said, meaning in CAUSES:
        line = next((line for line in reversed(lines) if said in line), None)  # the last: "attempt 10 of 10"
        if line is not None:
            return TinyDigitsError(f"{port}: {meaning} (avrdude: {re.sub(r'^avrdude[^:]*: ', '', line)[:120]})")
    why = next((line for line in lines if "error" in line.lower()), lines[-1] if lines else "")
    return TinyDigitsError(f"{port}: avrdude failed (exit status {status}){': ' + why[:160] if why else ''}")


def flash(hex_file: Path, settings: Avrdude, port: str) -> dict:
    """Write `hex_file` over the bootloader on `port` with avrdude, which reads it back to verify."""
    require_packages({"avrdude": "avrdude"})
    cmd = settings.command(port, Path(hex_file).resolve())
    start = time.monotonic()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=AVRDUDE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise TinyDigitsError(f"{port}: avrdude did not finish within {AVRDUDE_TIMEOUT_S} s") from None
    output = proc.stderr + proc.stdout
    written = re.search(r"(\d+) bytes of flash written", output)
    verified = re.search(r"(\d+) bytes of flash verified", output)
    if proc.returncode != 0 or not written or not verified:
        raise avrdude_failure(port, output, proc.returncode)
    return {"avrdude": " ".join(cmd[:-2] + ["-U", f"flash:w:{Path(hex_file).name}:i"]), "written_bytes": int(written[1]),
            "verified_bytes": int(verified[1]), "seconds": round(time.monotonic() - start, 1)}


def upload(run: Run | Path, board: Board, port: str, command: str = "") -> dict:
    """Build the run's sketch for `board`, flash it on `port` ("auto": found by USB IDs); keep the .hex in
    RUN/firmware/<board>-sketch/. Raises TinyDigitsError, writing nothing, if any step fails."""
    run = run if isinstance(run, Run) else Run(run)
    settings = avrdude_settings(board)
    arduino.require()
    require_packages({"avrdude": "avrdude"})
    port = check_port(find_port(board) if port == "auto" else port)  # before the build: a missing board fails at once
    command = command or f"tinydigits upload {run.folder} --board {board.key} --port {port}"
    preflight(run.folder, resume="run")
    folder = f"{board.key}-sketch"
    with tempfile.TemporaryDirectory() as tmp, firmware_folders(run, command) as (staged, fresh):
        hex_file = build_sketch_hex(run, board, Path(tmp), command)
        size = hex_data_bytes(hex_file)
        if size > settings.maximum_bytes:
            raise TinyDigitsError(f"the sketch is {size:,} B, more than the {settings.maximum_bytes:,} B of flash "
                                  f"the {board.name}'s bootloader leaves")
        report = {"board": board.key, "name": board.name, "port": port, "flash_bytes": size,
                  "maximum_bytes": settings.maximum_bytes, **flash(hex_file, settings, port),
                  "hex": str(run.paths.firmware / folder / hex_file.name)}
        write_bytes(fresh(folder) / hex_file.name, hex_file.read_bytes())
    return report


def format_upload(report: dict) -> str:
    share = report["flash_bytes"] / report["maximum_bytes"]
    return "\n".join([
        f"built {ARDUINO_EXAMPLE} for the {report['name']}: {report['flash_bytes']:,} B of flash "
        f"({share:.0%} of the {report['maximum_bytes']:,} B its bootloader leaves): {report['hex']}",
        f"flashed {report['port']} over its bootloader ({report['avrdude']}): {report['written_bytes']:,} B written "
        f"and {report['verified_bytes']:,} B verified in {report['seconds']:g} s"])
