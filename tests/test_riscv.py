"""The RISC-V family: the three boards' rows in the boards table, CPUs that lack what their chips lack, the
RV32E register check, and the multilibs of the base ISA. (Byte-identity to TFLM on every board, these
included, is test_boards.test_every_board_is_byte_identical_to_tflm.)"""
import dataclasses
import json
import re
import subprocess
from pathlib import Path

import pytest

from conftest import needs
from test_boards import elf_sections

from tinydigits.cli import main
from tinydigits.codegen import write_standalone
from tinydigits.runtimes import LiteRT
from tinydigits.errors import TinyDigitsError
from tinydigits.targets import find, missing_packages, riscv
from tinydigits.targets.host import compile_host, run_batch

pytestmark = needs(missing_packages(riscv.TOOLS, riscv.HEADERS), "riscv toolchain not installed")
KEYS = ("esp32c3", "pico2-riscv", "ch32v003")
LESSON_MACS = 784 * 20 + 20 * 10


@pytest.fixture(scope="module")
def builds(converted_run, mnist, tmp_path_factory):
    """The lesson model built for the three boards, 20 test images and the host build's outputs on them."""
    int8 = (converted_run / "model_int8.tflite").read_bytes()
    c_dir = tmp_path_factory.mktemp("riscv") / "c"
    write_standalone(int8, c_dir, "lesson", "test")
    inputs = LiteRT(int8).prepare(mnist.x_test[:20]).reshape(20, -1)
    firmware = {key: riscv.build(c_dir, find(key), c_dir.parent / key) for key in KEYS}
    return firmware, inputs, run_batch(compile_host(c_dir), inputs)


def test_boards_table_has_the_riscv_rows(converted_run, capsys):
    code = main(["boards", converted_run, *(arg for key in KEYS for arg in ("--board", key)), "--images", "100"])
    out = capsys.readouterr().out
    rows = {r["key"]: r for r in json.loads((converted_run / "boards.json").read_text())["boards"]}
    assert code == 0 and list(rows) == list(KEYS)
    assert "RISC-V: instructions counted by the instret CSR" in out
    lines = {line.split()[0]: line for line in out.splitlines() if line.split()}
    for key, core in zip(KEYS, ("IMC", "IMACB", "EC")):  # RV32 left out: the 100-column table's short names
        r = rows[key]
        assert r["matches_host"] == r["images"] == 100, r
        assert lines[key].split()[1] == core and lines[key].split()[-1] == "100/100"
        model = elf_sections(converted_run / "firmware" / key / "model.o")
        assert r["flash_bytes"] == sum(size for name, (size, _) in model.items() if not name.startswith((".bss", ".sbss")))
        assert r["ram_bytes"] == r["ram"]["data_bss"] + r["stack_bytes"] and 0 < r["stack_bytes"] < 512
        assert r["instructions_per_tick"] == pytest.approx(1, abs=1e-4)  # instret under -icount counts instructions
        assert r["min_latency_ms"] == pytest.approx(r["instructions_per_inference"] / r["clock_hz"] * 1e3)
    assert rows["esp32c3"]["status"] == rows["pico2-riscv"]["status"] == "PASS"
    # the lesson's weights alone are 15,880 B: the CH32V003's 16 KB cannot hold the model, and the row says so ...
    ch32 = rows["ch32v003"]
    assert ch32["status"] == "FAIL" and not ch32["fits"] and ch32["flash_bytes"] > 16 * 1024 >= LESSON_MACS
    assert ch32["verdict"] == f"FAIL (flash {ch32['flash_bytes']:,} B > 16,384 B)" and ch32["verdict"] in out
    # ... but it still ran, to prove the C: with no multiply instruction, every MAC is a call to libgcc's __mulsi3
    per_mac = {key: rows[key]["instructions_per_inference"] / LESSON_MACS for key in KEYS}
    assert 3 < per_mac["esp32c3"] < 8 and 3 < per_mac["pico2-riscv"] < 8 and per_mac["ch32v003"] > 50, per_mac


def disassembly(path) -> str:
    return subprocess.run(["riscv64-unknown-elf-objdump", "-d", str(path)], capture_output=True, text=True, check=True).stdout


def mnemonics(path) -> set:
    return {line.split("\t")[2].strip() for line in disassembly(path).splitlines() if line.count("\t") >= 2}


def test_each_build_uses_what_its_chip_has(builds):
    firmware, _, _ = builds
    esp32, pico2, ch32 = (mnemonics(firmware[key].folder / "model.o") for key in KEYS)
    assert "mul" in esp32 and not esp32 & {"sh2add", "sext.b", "max", "min", "bset", "bext"}
    assert pico2 & {"sh2add", "sh1add"} and pico2 & {"sext.b", "max", "min"} and pico2 & {"bset", "bext", "bclr"}
    assert not ch32 & {"mul", "mulh", "mulhu", "div"} and "__mulsi3" in disassembly(firmware["ch32v003"].elf)


def test_each_cpu_traps_on_what_its_chip_lacks(builds):
    """A build run on a CPU without its extensions stops at the first such instruction (the start-up's trap
    handler exits with 3), so a board row whose -march and -cpu disagree cannot pass quietly."""
    firmware, inputs, host = builds
    for key in KEYS:
        outputs, _ = riscv.run(firmware[key], inputs)
        assert (outputs == host).all()
    for key, cpu_of in (("pico2-riscv", "esp32c3"), ("esp32c3", "ch32v003")):  # Zba/Zbb/Zbs on RV32IMC; mul on RV32EC
        elsewhere = dataclasses.replace(firmware[key], board=dataclasses.replace(find(key), emulator=find(cpu_of).emulator))
        with pytest.raises(TinyDigitsError, match=r"^qemu-system-riscv32 failed \(exit status 3\)"):
            riscv.run(elsewhere, inputs[:1])


def test_rv32e_builds_name_no_register_above_x15(builds, converted_run, monkeypatch, tmp_path):
    """QEMU runs x16-x31 under e=true; the disassembly check is what refuses them."""
    firmware, _, _ = builds
    riscv.check_rv32e(firmware["ch32v003"].elf)
    with pytest.raises(TinyDigitsError, match=r"^firmware.elf uses a register RV32E does not have \(x16-x31\): [0-9a-f]+: "):
        riscv.check_rv32e(firmware["esp32c3"].elf)  # an RV32I build: a6, a7, s2-s11, t3-t6 are there
    monkeypatch.setattr(riscv, "RV32E_MISSING", re.compile(r"\bx10\b"))  # a0: every build names it
    c_dir = firmware["ch32v003"].folder.parent / "c"
    with pytest.raises(TinyDigitsError, match="uses a register RV32E does not have"):
        riscv.build(c_dir, find("ch32v003"), tmp_path / "ch32v003")  # build checks RV32E boards ...
    riscv.build(c_dir, find("esp32c3"), tmp_path / "esp32c3")  # ... and only those


@pytest.mark.parametrize("key, multilib", [("esp32c3", "rv32im/ilp32"), ("pico2-riscv", "rv32imac/ilp32"),
                                           ("ch32v003", "rv32e/ilp32e")])
def test_libraries_are_those_of_the_base_isa(key, multilib, tmp_path):
    """-march=rv32imac_zba_zbb_zbs_zicsr matches no multilib, and GCC would link the rv64 default's."""
    libc, libgcc = riscv.libraries(find(key), tmp_path)
    assert libc == f"/usr/lib/picolibc/riscv64-unknown-elf/lib/{multilib}/libc.a" and libgcc.endswith(f"/{multilib}/libgcc.a")
    assert Path(libc).is_file() and Path(libgcc).is_file()
