"""upload and send against an emulated Arduino Uno: an ATmega328P in simavr with Debian's optiboot (rebuilt
from arduino-core-avr's optiboot.c) in its boot section and its UART on a pseudo-terminal
(tests/emulated_board.c). `tinydigits upload` flashes the sketch through the real bootloader protocol with
the real avrdude; `tinydigits send` then classifies images through it, byte for byte as the host build."""
import itertools
import os
import subprocess
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from PIL import Image

from conftest import needs, tree

from tinydigits.cli import main
from tinydigits.errors import TinyDigitsError
from tinydigits.serial_link import ANSWER, BoardLink, HostBuild, new_images, parse_answer, send_file, sketch_print
from tinydigits.targets import arduino, avr, find, missing_packages
from tinydigits.upload import Avrdude, avrdude_failure, avrdude_settings, find_port, flash

OPTIBOOT = Path("/usr/share/arduino/hardware/arduino/avr/bootloaders/optiboot")
HERE = Path(__file__).resolve().parent
NEEDS_BOARD = needs(missing_packages({**arduino.TOOLS, **avr.TOOLS, "avrdude": "avrdude"},
                                     {**arduino.HEADERS, **avr.HEADERS, str(OPTIBOOT / "optiboot.c"): "arduino-core-avr"}),
                    "avrdude / arduino-builder / arduino-core-avr / simavr not installed")


def build_optiboot(folder: Path) -> Path:
    """Debian's optiboot for the Uno (the Makefile's atmega328 target) without the LED flashes: Debian's
    shipped optiboot_atmega328.hex runs past the end of flash (532 B from 0x7E00); this is 496 B."""
    sources = [OPTIBOOT / name for name in ("optiboot.c", "boot.h", "pin_defs.h", "stk500.h")]
    for source in sources:
        (folder / source.name).write_bytes(source.read_bytes())
    subprocess.run(["avr-gcc", "-Os", "-fno-inline-small-functions", "-fno-split-wide-types", "-mshort-calls",
                    "-mmcu=atmega328p", "-DF_CPU=16000000L", "-DBAUD_RATE=115200", "-DLED_START_FLASHES=0",
                    "-Wl,--section-start=.text=0x7e00", "-Wl,--section-start=.version=0x7ffe", "-Wl,--relax",
                    "-Wl,--gc-sections", "-nostartfiles", "-nostdlib", "optiboot.c", "-o", "optiboot.elf"],
                   cwd=folder, check=True, capture_output=True)
    subprocess.run(["avr-objcopy", "-j", ".text", "-j", ".data", "-j", ".version", "--set-section-flags",
                    ".version=alloc,load", "-O", "ihex", "optiboot.elf", "optiboot.hex"], cwd=folder, check=True)
    return folder / "optiboot.hex"


@pytest.fixture(scope="module")
def emulated_uno(tmp_path_factory):
    """An Uno on a pty, fresh (its flash erased but for optiboot): yields the port's path."""
    folder = tmp_path_factory.mktemp("uno")
    hex_file = build_optiboot(folder)
    text = hex_file.read_text()
    assert ":0400000300007E007B" in text  # a start-address record (type 03): simavr's reader refuses these
    subprocess.run(["cc", "-std=c99", "-O2", "-Wall", "-Wextra", "-Werror", "-I/usr/include/simavr",
                    str(HERE / "emulated_board.c"), "-o", "emulated_board", "-lsimavr"], cwd=folder, check=True)
    port = folder / "ttyACM0"
    board = subprocess.Popen([folder / "emulated_board", "atmega328p", "16000000", hex_file, port],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert board.stdout.readline().startswith("port /dev/pts/"), board.stderr.read()
        yield port
    finally:
        board.terminate()
        board.wait(10)


def test_optiboot_rebuilt_fits_the_boot_section(tmp_path):
    elf = build_optiboot(tmp_path).with_suffix(".elf")
    sizes = subprocess.run(["avr-size", "-A", elf], capture_output=True, text=True, check=True).stdout
    text = next(line.split() for line in sizes.splitlines() if line.startswith(".text"))
    assert text[1:] == ["496", str(0x7E00)] and 0x7E00 + 496 <= 0x7FFE  # the 512 B boot section, .version last


def digit_files(folder: Path, mnist, count: int) -> list[Path]:
    """Test digits as a user saves them: dark ink on white, 140x140; then noise and a blank page."""
    folder.mkdir(exist_ok=True)
    paths = []
    for i in range(count):
        paths.append(folder / f"digit{i}-a{mnist.y_test[i]}.png")
        Image.fromarray(255 - mnist.x_test[i]).resize((140, 140), Image.BICUBIC).save(paths[-1])
    noise = np.random.default_rng(3).integers(0, 256, (60, 60), dtype=np.uint8)
    Image.fromarray(noise).save(folder / "noise.png")
    Image.new("L", (50, 50), 255).save(folder / "blank.png")
    return [*paths, folder / "noise.png", folder / "blank.png"]


@NEEDS_BOARD
def test_upload_then_send_through_the_bootloader(emulated_uno, converted_run, mnist, tmp_path, capsys):
    code = main(["upload", converted_run, "--board", "uno", "--port", emulated_uno])
    out = capsys.readouterr().out
    hex_file = converted_run / "firmware" / "uno-sketch" / "ClassifySerial.ino.hex"
    assert code == 0 and hex_file.is_file(), out
    size = sum(int(line[1:3], 16) for line in hex_file.read_text().splitlines() if line[7:9] == "00")
    assert f"built ClassifySerial for the Arduino Uno R3: {size:,} B of flash" in out
    assert f"-c arduino -P {emulated_uno} -b 115200 -D" in out and f"{size:,} B written and {size:,} B verified" in out

    images = digit_files(tmp_path / "digits", mnist, 8)
    code = main(["send", emulated_uno, *images, "--run", converted_run])
    out = capsys.readouterr().out
    assert code == 0 and out.startswith(f"{emulated_uno}: test digit (a {mnist.y_test[0]}): digit ")
    assert f"{len(images)} images: the board's outputs are the host build's, byte for byte" in out
    assert out.count("same bytes") == len(images) and "blank.png  [blank image]" in out

    with BoardLink(emulated_uno) as board, HostBuild(converted_run) as host:  # the same, as data
        results = [send_file(board, host, path) for path in images]
    assert all(r["same"] for r in results)
    assert [r["board_digit"] for r in results[:8]] == [r["host_digit"] for r in results[:8]]
    assert sum(r["board_digit"] == mnist.y_test[i] for i, r in enumerate(results[:8])) >= 7
    assert all(r["board_printed"] == r["host_printed"] for r in results)  # the sketch's float printing, reproduced
    assert len({tuple(r["board_outputs"]) for r in results}) > 5  # not one answer for everything
    with pytest.raises(TinyDigitsError, match="the board sent no ready line"):  # the emulated wire has a baud rate
        BoardLink(emulated_uno, baud=57600, ready_timeout=3)


def echo(master: int, stop: threading.Event) -> None:
    """The far side of a pty as a board whose sketch echoes what it reads: no bootloader answers."""
    while not stop.is_set():
        try:
            os.write(master, os.read(master, 64))
        except OSError:  # nothing to read (the port is closed): wait for the next open
            time.sleep(0.01)


@NEEDS_BOARD
def test_a_board_that_does_not_answer_is_one_line(tmp_path):
    hex_file = tmp_path / "empty.hex"  # avrdude reads it only once the bootloader has answered
    hex_file.write_text(":00000001FF\n")
    master, slave = os.openpty()
    stop = threading.Event()
    threading.Thread(target=echo, args=(master, stop), daemon=True).start()
    try:
        other = os.ttyname(slave)
        with pytest.raises(TinyDigitsError, match=rf"^{other}: the board does not answer: no reply from its "
                                                  r"bootloader .* \(avrdude: attempt 10 of 10: not in sync: resp=0x30\)$"):
            flash(hex_file, avrdude_settings(find("uno")), other)
        with pytest.raises(TinyDigitsError, match=rf"^{other}: the board sent no ready line .* within 0.5 s"):
            BoardLink(other, ready_timeout=0.5)
    finally:
        stop.set()
        os.close(slave)
    with pytest.raises(TinyDigitsError, match=r"^/dev/null: is not a serial port \(avrdude: cannot set attributes"):
        flash(hex_file, avrdude_settings(find("uno")), "/dev/null")


def test_a_missing_port_is_one_line_and_writes_nothing(converted_run, capsys, monkeypatch):
    before = tree(converted_run)
    code = main(["upload", converted_run, "--board", "uno", "--port", "/dev/no-such-tty"])
    err = capsys.readouterr().err
    assert code == 2 and err == ("error: /dev/no-such-tty: no such port (is the board plugged in? --port auto looks "
                                 "for it)\n")
    code = main(["send", "/dev/no-such-tty", "x.png"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: /dev/no-such-tty: no such port") and len(err.splitlines()) == 1
    monkeypatch.setattr("serial.tools.list_ports.comports", lambda: [])
    code = main(["upload", converted_run, "--board", "uno", "--port", "auto"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: --port auto: no Arduino Uno R3 found on USB (looked for 0403:6001, "
                                        "10c4:ea60, 1a86:7523, 2341:0001, 2341:0043") and err.endswith("ports here: none\n")
    code = main(["upload", converted_run, "--board", "pico", "--port", "/dev/null"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: pico: upload flashes the Arduino boards over their serial bootloader (uno, mega2560), "
                                        "not the Raspberry Pi Pico: build the C of `tinydigits export-c`")
    assert tree(converted_run) == before


def port(device, vid=None, pid=None):
    return SimpleNamespace(device=device, vid=vid, pid=pid)


def test_port_auto_finds_the_board_by_its_usb_ids():
    uno, mega = find("uno"), find("mega2560")
    ports = [port("/dev/ttyS0"), port("/dev/ttyACM0", 0x2341, 0x0043), port("/dev/ttyUSB0", 0x1A86, 0x7523)]
    assert find_port(uno, ports) == "/dev/ttyACM0"  # the genuine board before a clone's chip
    assert find_port(uno, ports[::2]) == "/dev/ttyUSB0"  # a clone (CH340) when no genuine one is there
    assert find_port(mega, [*ports, port("/dev/ttyACM1", 0x2A03, 0x0042)]) == "/dev/ttyACM1"  # its boards.txt IDs
    with pytest.raises(TinyDigitsError, match=r"^--port auto: 2 boards found \(/dev/ttyACM0, /dev/ttyACM1\); give --port$"):
        find_port(uno, [*ports, port("/dev/ttyACM1", 0x2341, 0x0001)])
    with pytest.raises(TinyDigitsError, match=r"ports here: /dev/ttyS0, /dev/ttyACM2 \(2341:8036\)$"):
        find_port(uno, [port("/dev/ttyS0"), port("/dev/ttyACM2", 0x2341, 0x8036)])  # a Leonardo is not an Uno


def test_avrdude_settings_are_the_arduino_ides():
    uno, mega = avrdude_settings(find("uno")), avrdude_settings(find("mega2560"))
    assert uno.command("/dev/ttyACM0", Path("s.hex")) == ["avrdude", "-p", "atmega328p", "-c", "arduino", "-P",
                                                           "/dev/ttyACM0", "-b", "115200", "-D", "-U", "flash:w:s.hex:i"]
    assert (uno.maximum_bytes, (0x2341, 0x0043) in uno.usb_ids) == (32256, True)  # 32 KB less optiboot's 512 B
    assert (mega.part, mega.protocol, mega.baud, mega.maximum_bytes) == ("atmega2560", "wiring", 115200, 253952)
    assert isinstance(mega, Avrdude) and (0x2341, 0x0042) in mega.usb_ids


@pytest.mark.parametrize("output, message", [
    ("avrdude OS error: ioctl(\"TIOCMGET\"): Inappropriate ioctl for device\n"
     "avrdude warning: attempt 10 of 10: not in sync: resp=0x00\navrdude error: unable to open programmer arduino",
     r"^P: the board does not answer: .* \(avrdude: attempt 10 of 10: not in sync: resp=0x00\)$"),
    ("avrdude OS error: cannot open port /dev/ttyACM0: Permission denied\n",
     r"^P: cannot be opened: permission denied \(add yourself to the dialout group"),
    ("avrdude error: verification error, first mismatch at byte 0x0000\n", r"^P: the flash read back differs"),
    ("something else went wrong\n", r"^P: avrdude failed \(exit status 1\): something else went wrong$"),
])
def test_avrdude_failures_name_the_cause(output, message):
    assert len(str(avrdude_failure("P", output, 1)).splitlines()) == 1
    with pytest.raises(TinyDigitsError, match=message):
        raise avrdude_failure("P", output, 1)


def test_every_int8_output_reads_back_from_what_the_sketch_prints():
    """The sketch prints (q - zero_point) * scale with four decimals; q comes back exactly, for all 256."""
    for q in range(-128, 128):
        line = "digit 3 probabilities " + " ".join(sketch_print(q, 1 / 256, -128) for _ in range(10))
        assert ANSWER.search(line) and parse_answer(line, 1 / 256, -128).outputs == (q,) * 10
    assert sketch_print(-120, 1 / 256, -128) == "0.0313"  # 0.03125: Arduino rounds up where Python's '.4f' gives 0.0312
    for bad in ("digit 3", "digit 3 probabilities 0.5", "digit 3 probabilities 0.0010 0.0010", "hello"):
        with pytest.raises(ValueError):
            parse_answer(bad, 1 / 256, -128)


def test_watch_yields_each_new_image_once_it_is_complete(tmp_path):
    (tmp_path / "old.png").write_bytes(b"already there")
    found = []
    images = new_images(tmp_path, poll_s=0.05, settle_s=0.4)
    watcher = threading.Thread(target=lambda: found.extend(itertools.islice(images, 2)))
    watcher.start()
    time.sleep(0.2)
    (tmp_path / "notes.txt").write_text("not an image")
    with open(tmp_path / "b.png", "wb") as f:  # written in two parts, slowly: only yielded once complete
        f.write(b"half")
        f.flush()
        time.sleep(0.2)  # a pause shorter than settle_s
        assert found == []
        f.write(b" and the rest")
    (tmp_path / "c.PNG").write_bytes(b"x")
    watcher.join(5)
    assert found == [tmp_path / "b.png", tmp_path / "c.PNG"]
    with pytest.raises(TinyDigitsError, match="--watch .*nope: not a folder"):
        next(new_images(tmp_path / "nope"))
