"""The generated C on the boards: each toolchain, each emulator, against TFLM; the boards table; the Arduino sketch."""
import dataclasses
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import needs, save_tiny_run, tree

from tinydigits.artifacts import write_bytes
from tinydigits.boards import measure_boards
from tinydigits.cli import main
from tinydigits.codegen import write_standalone
from tinydigits.runtimes import TFLM, LiteRT
from tinydigits.errors import TinyDigitsError
from tinydigits.targets import BOARDS, family, find, missing_packages, run_tool
from tinydigits.mcu import run_on_mcu
from tinydigits.runs import Run
from tinydigits.targets import arduino, arm, avr, qemu, riscv
from tinydigits.targets.host import compile_host, run_batch

TEST_IMAGES, RANDOM_INPUTS = 100, 100


def toolchain_of(board):
    tools = family(board)
    return needs(missing_packages(tools.TOOLS, tools.HEADERS), f"{board.toolchain} toolchain not installed")


NEEDS_AVR = needs(missing_packages(avr.TOOLS, avr.HEADERS), "avr toolchain not installed")
NEEDS_ARM = needs(missing_packages(arm.TOOLS, arm.HEADERS), "arm toolchain not installed")


EVERY_BOARD = [pytest.param(b, id=b.key, marks=toolchain_of(b)) for b in BOARDS]


@pytest.fixture(scope="module")
def pooled_run(mnist, tmp_path_factory):
    """A search-style model: 28x28 average-pooled to 14x14 inside the model, one hidden layer."""
    from tinydigits.convert import to_tflite
    from tinydigits.model import Recipe
    from tinydigits.train import save_run, train

    small = type(mnist)(mnist.name, mnist.x_train[:6000], mnist.y_train[:6000], mnist.x_test[:1000],
                        mnist.y_test[:1000], mnist.folder)
    result = train(Recipe(input_size=14, hidden=(24,), epochs=1), small, verbose=0)
    return save_run(result, tmp_path_factory.mktemp("runs") / "pooled", int8_model=to_tflite(result.model, mnist.x_train[:300]))


@pytest.fixture(scope="module", params=["lesson", "pooled"])
def model_and_reference(request, mnist, tmp_path_factory):
    """A model's C, and what it must give: TFLM's outputs on test images and random int8 inputs."""
    run = request.getfixturevalue({"lesson": "converted_run", "pooled": "pooled_run"}[request.param])
    int8 = (run / "model_int8.tflite").read_bytes()
    test_q = LiteRT(int8).prepare(mnist.x_test[:TEST_IMAGES])
    random_q = np.random.default_rng(1).integers(-128, 128, (RANDOM_INPUTS, 28, 28), dtype=np.int8)
    inputs = np.concatenate([test_q, random_q])
    c_dir = tmp_path_factory.mktemp(request.param) / "c"
    write_standalone(int8, c_dir, request.param, "test")
    return c_dir, inputs.reshape(len(inputs), -1), TFLM(int8).run(inputs)


@pytest.mark.parametrize("board", EVERY_BOARD)
def test_every_board_is_byte_identical_to_tflm(board, model_and_reference, tmp_path):
    c_dir, inputs, tflm = model_and_reference
    tools = family(board)
    firmware = tools.build(c_dir, board, tmp_path / board.key)
    outputs, figures = tools.run(firmware, inputs)
    assert np.array_equal(outputs, tflm), f"{board.name}: {(outputs != tflm).any(axis=1).sum()} inputs differ from TFLM"
    assert figures["images"] == len(inputs) and 0 < figures["stack_bytes"] < 1024


@NEEDS_AVR
def test_uno_built_for_size_is_byte_identical_too(model_and_reference, tmp_path):
    """-Os, as the Arduino IDE builds: avr-gcc then multiplies through a library routine; same bytes."""
    c_dir, inputs, tflm = model_and_reference
    firmware = avr.build(c_dir, find("uno"), tmp_path, optimization="-Os")
    assert np.array_equal(avr.run(firmware, inputs[::2])[0], tflm[::2])  # half of each kind


def elf_sections(path: Path) -> dict:
    """name -> (size, flags) of every section, read by binutils' readelf (independent of the size tools)."""
    out = subprocess.run(["readelf", "-S", "-W", str(path)], capture_output=True, text=True, check=True).stdout
    rows = re.findall(r"\]\s+(\.\S+)\s+(\S+)\s+[0-9a-f]+\s+[0-9a-f]+\s+([0-9a-f]+)\s+[0-9a-f]+\s+([A-Z]*)", out)
    return {name: (int(size, 16), flags) for name, kind, size, flags in rows if "A" in flags}


@NEEDS_AVR
def test_boards_table_agrees_with_the_elf(converted_run, capsys, monkeypatch):
    monkeypatch.chdir(converted_run.parent)  # a relative run folder, as a user types it
    code = main(["boards", converted_run.name, "--board", "uno", "--board", "microbit", "--board", "nano33ble",
                 "--images", "30"])
    out = capsys.readouterr().out
    report = json.loads((converted_run / "boards.json").read_text())
    assert code == 0 and max(len(line) for line in out.splitlines()) <= 100  # fits a terminal
    for r, line in zip(report["boards"], out.splitlines()[1:]):  # each row says what boards.json holds
        count = f"{r['cycles_per_inference']:,} cycles" if r["core"] == "avr" else f"{r['instructions_per_inference']:,} instr."
        latency = f"{r['latency_ms']:.2f}" if r["core"] == "avr" else f">= {r['min_latency_ms']:.2f}"
        assert line.split()[0] == r["key"] and f" {r['flash_bytes']:,} " in line and f" {r['ram_bytes']:,} " in line
        assert count in line and latency in line and line.endswith(f"{r['matches_host']}/30"), line
    assert Image.open(converted_run / "boards.png").size[0] > 1000  # flash, RAM and latency, plotted
    assert [r["key"] for r in report["boards"]] == ["uno", "microbit", "nano33ble"]
    assert (converted_run / ".tinydigits.json").exists() and not list(converted_run.parent.glob(".*partial"))
    for r in report["boards"]:
        folder = converted_run.parent / r["firmware"]
        assert folder == converted_run / "firmware" / r["key"]
        assert r["built"] and r["matches_host"] == r["images"] == 30 and r["status"] == "PASS", r
        assert (folder / "firmware.elf").exists() and (folder / "firmware.map").exists()
        assert (folder / ("firmware.hex" if r["core"] == "avr" else "firmware.bin")).exists()
        model = elf_sections(folder / "model.o")
        assert r["flash_bytes"] == sum(size for name, (size, flags) in model.items() if not name.startswith(".bss"))
        ram_sections = (".data", ".bss", ".rodata") if r["core"] == "avr" else (".data", ".bss")
        static = sum(size for name, (size, _) in model.items() if name.startswith(ram_sections))
        assert r["ram_bytes"] == static + r["stack_bytes"]  # the input and output are in the model's arena (.bss)
        assert model[".bss.tinydigits_arena"][0] >= 784 + 10
        assert r["fits"] == (r["flash_bytes"] <= r["chip_flash_bytes"] and r["ram_bytes"] <= r["chip_ram_bytes"])
        whole = elf_sections(folder / "firmware.elf")
        assert whole[".text"][0] >= r["flash_bytes"] - model.get(".data", (0,))[0]  # the model is in the image
    uno = report["boards"][0]
    model = elf_sections(converted_run / "firmware" / "uno" / "model.o")
    in_sections = lambda prefix: sum(size for name, (size, _) in model.items() if name.startswith(prefix))  # noqa: E731
    assert in_sections(".progmem") >= 784 * 20 + 20 * 10  # every weight in flash ...
    assert in_sections(".rodata") == in_sections(".data") == 0  # ... none copied into the Uno's 2 KB of SRAM
    assert elf_sections(converted_run / "firmware" / "uno" / "firmware.elf").get(".data", (0,))[0] < 64
    assert uno["latency_ms"] == pytest.approx(uno["cycles_per_inference"] / 16_000)
    assert 100_000 < uno["cycles_per_inference"] < 2_000_000 and 15_680 < report["boards"][2]["instructions_per_inference"]


def test_a_model_too_big_for_a_board_is_a_fail_row(converted_run, capsys, monkeypatch):
    import tinydigits.targets

    tiny = dataclasses.replace(find("microbit"), key="tiny", name="a tiny board", flash_bytes=8 * 1024, ram_bytes=512)
    monkeypatch.setattr(tinydigits.targets, "BOARDS", (*BOARDS, tiny))
    code = main(["boards", str(converted_run), "--board", "tiny", "--images", "5"])
    out = capsys.readouterr().out
    row = json.loads((converted_run / "boards.json").read_text())["boards"][0]
    assert code == 0 and row["status"] == "FAIL" and row["matches_host"] == 5
    assert row["verdict"] == f"FAIL (flash {row['flash_bytes']:,} B > 8,192 B, RAM {row['ram_bytes']:,} B > 512 B)"
    assert row["verdict"] in out


def test_boards_bad_requests(converted_run, capsys, monkeypatch):
    code = main(["boards", str(converted_run), "--board", "arduino-uno"])
    err = capsys.readouterr().err
    assert code == 2 and "unknown board 'arduino-uno' (known: uno, mega2560, microbit" in err and len(err.splitlines()) == 1
    code = main(["mcu", str(converted_run), "--images", "20000"])
    err = capsys.readouterr().err
    assert code == 2 and err == "error: --images must be between 1 and 10,000 (the test set), got 20,000\n"
    monkeypatch.setattr(avr, "TOOLS", {**avr.TOOLS, "avr-gcc-not-installed-here": "gcc-avr"})
    code = main(["boards", str(converted_run), "--board", "uno", "--board", "microbit", "--board", "uno", "--images", "5",
                 "--json"])
    uno, microbit = json.loads(capsys.readouterr().out)["boards"]
    assert code == 0 and uno["status"] == "NO TOOLCHAIN" and not uno["built"] and microbit["matches_host"] == 5
    assert uno["problem"] == "avr-gcc-not-installed-here not found: install it with `apt-get install gcc-avr`"
    code = main(["boards", str(converted_run), "--board", "uno"])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("error: no board could be built: uno: avr-gcc-not-installed-here not found: "
                                        "install it with `apt-get install gcc-avr`") and len(err.splitlines()) == 1


@pytest.fixture()
def tiny_int8_run(tmp_path, mnist):
    """An untrained 784-4-10 run with a model_int8.tflite and an earlier Uno build in firmware/uno/."""
    run = save_tiny_run(tmp_path / "run", int8=True)
    write_bytes(run / "firmware" / "uno" / "firmware.elf", b"an earlier build")
    return run


def test_boards_that_build_nothing_change_nothing(tiny_int8_run, monkeypatch):
    monkeypatch.setattr(avr, "TOOLS", {**avr.TOOLS, "avr-gcc-not-installed-here": "gcc-avr"})
    before = tree(tiny_int8_run)
    with pytest.raises(TinyDigitsError, match="^no board could be built: uno: avr-gcc-not-installed-here not found"):
        measure_boards(Run(tiny_int8_run), ["uno"], images=5)
    assert tree(tiny_int8_run) == before and sorted(p.name for p in tiny_int8_run.parent.iterdir()) == ["run"]


@NEEDS_ARM
def test_boards_and_mcu_keep_each_others_builds(tiny_int8_run, monkeypatch):
    monkeypatch.setattr(avr, "TOOLS", {**avr.TOOLS, "avr-gcc-not-installed-here": "gcc-avr"})
    firmware = tiny_int8_run / "firmware"
    report = measure_boards(Run(tiny_int8_run), ["uno", "nano33ble"], images=5)
    assert [r["built"] for r in report["boards"]] == [False, True]
    assert (firmware / "uno" / "firmware.elf").read_bytes() == b"an earlier build"  # no toolchain: nothing replaced it
    run_on_mcu(Run(tiny_int8_run), images=5)
    measure_boards(Run(tiny_int8_run), ["nano33ble"], images=5)
    assert (firmware / "nano33ble-mcu" / "firmware-Os.elf").is_file() and (firmware / "nano33ble-mcu" / "firmware-O2.elf").is_file()
    run_on_mcu(Run(tiny_int8_run), images=5)
    assert (firmware / "nano33ble" / "firmware.elf").is_file() and (firmware / "nano33ble" / "model.o").is_file()
    mcu = json.loads((tiny_int8_run / "mcu.json").read_text())
    assert [b["elf"] for b in mcu["builds"]] == [str(firmware / "nano33ble-mcu" / f"firmware{o}.elf") for o in ("-Os", "-O2")]


@pytest.mark.parametrize("figures, outputs, message", [
    (None, b"\x00" * 10, "did not write figures.bin"),
    (np.array([1, 100, 10, 50, 64], np.uint64), None, "did not write outputs.bin"),
    (np.array([1, 100, 10], np.uint64), b"\x00" * 10, r"reported 3 figures, expected 5 \(images, ticks, calibration_ticks"),
    (np.array([1, 100, 10, 50, 64], np.uint32), b"\x00" * 10, "reported 2 figures"),  # 32-bit figures: the old firmware
    (np.array([1, 100, 0, 50, 64], np.uint64), b"\x00" * 10, "calibration loop counted no SysTick ticks"),
])
def test_qemu_results_a_firmware_got_wrong_are_one_line(figures, outputs, message, tmp_path):
    if figures is not None:
        figures.tofile(tmp_path / "figures.bin")
    if outputs is not None:
        (tmp_path / "outputs.bin").write_bytes(outputs)
    with pytest.raises(TinyDigitsError, match=message):
        qemu.read_results(tmp_path, "test board", "SysTick")


def test_qemu_results_are_read_by_name(tmp_path):
    np.array([2, 5_000_000_000, 10, 50, 64], np.uint64).tofile(tmp_path / "figures.bin")  # past 32 bits: a slow chip
    (tmp_path / "outputs.bin").write_bytes(bytes(range(20)))
    figures, outputs = qemu.read_results(tmp_path, "test board", "instret")
    assert figures == {"images": 2, "ticks": 5_000_000_000, "calibration_ticks": 10, "calibration_instructions": 50,
                       "stack_bytes": 64}
    assert outputs.dtype == np.int8 and outputs.tolist() == list(range(20))


def test_tool_failures_are_one_line_errors(tmp_path):
    with pytest.raises(TinyDigitsError, match=r"^false failed \(exit status 1\)$"):  # no output at all
        run_tool(["false"], tmp_path)
    with pytest.raises(TinyDigitsError, match=r"did not finish within 0.5 s"):
        run_tool([sys.executable, "-c", "import time; time.sleep(10)"], tmp_path, timeout=0.5)
    with pytest.raises(TinyDigitsError, match="no-such-compiler not found"):
        run_tool(["no-such-compiler"], tmp_path)
    (tmp_path / "bad.c").write_text("int main(void) { return x; }\n")
    with pytest.raises(TinyDigitsError, match=r"^cc failed \(exit status 1\): bad.c:1:\d+: error: .x. undeclared"):
        run_tool(["cc", "-c", tmp_path / "bad.c"], tmp_path)


@needs(missing_packages({**arduino.TOOLS, **avr.TOOLS}, {**arduino.HEADERS, **avr.HEADERS}),
       "arduino-builder / arduino-core-avr / simavr not installed")
@pytest.mark.parametrize("key", ["uno", "mega2560"])
def test_arduino_sketch_builds_with_arduino_builder_and_answers_as_the_host(key, converted_run, mnist, tmp_path, capsys):
    library = tmp_path / "libraries" / "TinyDigits"
    assert main(["export-arduino", str(converted_run), "--out", str(library)]) == 0
    assert "File > Examples > TinyDigits > ClassifySerial" in capsys.readouterr().out
    assert main(["export-arduino", str(converted_run), "--out", str(library)]) == 2  # no silent overwrite
    assert "already exists" in capsys.readouterr().err
    assert "name=TinyDigits" in (library / "library.properties").read_text()
    sketch = library / "examples" / "ClassifySerial" / "ClassifySerial.ino"
    hex_file = arduino.build_sketch(sketch, find(key), tmp_path / "build", libraries=[library.parent])

    images = np.concatenate([mnist.x_test[:3], np.random.default_rng(2).integers(0, 256, (1, 28, 28), dtype=np.uint8)])
    printed = avr.run_sketch(hex_file, find(key), images.tobytes(), chunk=784, lines=1 + len(images)).splitlines()
    int8 = (converted_run / "model_int8.tflite").read_bytes()
    write_standalone(int8, tmp_path / "c", "test", "test")
    host = run_batch(compile_host(tmp_path / "c"), LiteRT(int8).prepare(np.concatenate([mnist.x_test[:1], images])))
    assert printed[0].startswith(f"test digit (a {mnist.y_test[0]}): digit {host[0].argmax()} ")
    for line, expected in zip(printed, host):
        digit, probabilities = re.search(r"digit (\d) probabilities((?: \d\.\d{4}){10})$", line).groups()
        sketch_bytes = np.round(np.array(probabilities.split(), float) * 256).astype(int) - 128  # scale 1/256, zp -128
        assert int(digit) == expected.argmax() and np.array_equal(sketch_bytes, expected), line


def synthetic_boards_report() -> dict:
    """A boards.json as measure_boards writes it, every kind of row: passed, failed to fit, no toolchain,
    too big to compile; the longest names and numbers the boards have."""
    rows = []
    for board in BOARDS:
        row = {"key": board.key, "board": board.name, "chip": board.chip, "core": board.core, "clock_hz": board.clock_hz,
               "chip_flash_bytes": board.flash_bytes, "chip_ram_bytes": board.ram_bytes, "built": True, "status": "PASS",
               "flash_bytes": 1_234_567, "ram_bytes": 123_456, "matches_host": 10_000, "images": 10_000,
               "verdict": f"PASS (spare {board.flash_bytes - 1_234_567:,} B / {board.ram_bytes - 123_456:,} B)"}
        if board.core == "avr":
            row.update(cycles_per_inference=123_456_789, latency_ms=7716.05)
        else:
            row.update(instructions_per_inference=12_345_678, min_latency_ms=771.6)
        rows.append(row)
    rows[0].update(status="FAIL", verdict="FAIL (flash 1,234,567 B > 32,768 B, RAM 123,456 B > 2,048 B)")
    rows[1] = {k: v for k, v in rows[1].items() if k not in ("ram_bytes", "flash_bytes", "verdict")}
    rows[1].update(status="NO TOOLCHAIN", built=False, problem="avr-gcc not found: install it with `apt-get install gcc-avr`")
    rows[2] = {k: v for k, v in rows[2].items() if k not in ("ram_bytes", "verdict")}
    rows[2].update(status="FAIL", problem="does not compile for nRF51822: arm-none-eabi-gcc failed (exit status 1): "
                   "model.c:12: error: size of array 'w0' is too large")
    return {"run": "runs/a-run-folder-with-a-long-name", "images": 10_000, "boards": rows}


def test_boards_and_mcu_tables_fit_100_columns_and_wide_shows_everything():
    from tinydigits.boards import format_boards
    from tinydigits.mcu import format_report

    report = synthetic_boards_report()
    narrow, wide = format_boards(report).splitlines(), format_boards(report, wide=True).splitlines()
    assert max(map(len, narrow)) <= 100 and max(map(len, wide)) > 100
    assert narrow[0].split()[:3] == ["board", "core", "MHz"] and "flash B" in narrow[0] and "ms/digit" in narrow[0]
    assert "FAIL (flash 1,234,567 B > 32,768 B, RAM 123,456 B > 2,048 B)" in "\n".join(narrow)  # why, under the table
    assert any("mega2560: NO TOOLCHAIN: avr-gcc not found" in line for line in narrow)
    assert "Raspberry Pi Pico" in wide[4] and "PASS (spare 862,585 B / 146,880 B)" in wide[4]
    assert "123,456,789 cycles" in narrow[1] and "12,345,678 instr." in narrow[4] and ">= 771.60" in narrow[4]
    build = {"optimization": "-Os", "flash_bytes": 1_234_567, "ram_bytes": 123_456, "firmware_flash_bytes": 2_345_678,
             "instructions_per_inference": 12_345_678, "min_microseconds_at_64MHz": 192901.2, "matches_host": 10_000,
             "images": 10_000}
    mcu = {"board": "mps2-an386 (Cortex-M4) in qemu-system-arm", "builds": [build, {**build, "optimization": "-O2"}]}
    narrow, wide = format_report(mcu).splitlines(), format_report(mcu, wide=True).splitlines()
    assert max(map(len, narrow)) <= 100 and max(map(len, wide)) > 100
    assert narrow[2].split() == ["-Os", "1,234,567", "123,456", "2,345,678", "12,345,678", "192901.2", "10000/10000"]
