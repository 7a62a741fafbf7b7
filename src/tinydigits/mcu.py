"""Build the standalone C for a Cortex-M4 and run it in QEMU: sizes, stack, instructions, answers.

Toolchain: Debian's gcc-arm-none-eabi with newlib (rdimon semihosting) and qemu-system-arm's
mps2-an386 board. The firmware reads test images from the host over semihosting, writes the int8
outputs back, and counts instructions with SysTick under `-icount shift=0`.

    report = run_on_mcu(Run("runs/lesson"), images=300)    # writes RUN/mcu.json
"""
from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
from importlib import resources
from pathlib import Path

import numpy as np

from .errors import TinyDigitsError
from .runs import Run

CFLAGS = ["-mcpu=cortex-m4", "-mthumb", "-mfloat-abi=soft", "-std=c99", "-Wall", "-Wextra", "-Werror",
          "-ffunction-sections", "-fdata-sections"]
OPTIMIZATIONS = {"size": "-Os", "speed": "-O2"}
QEMU = ["qemu-system-arm", "-M", "mps2-an386", "-nographic", "-monitor", "none", "-serial", "none",
        "-icount", "shift=0", "-semihosting-config", "enable=on,target=native"]
CLOCK_HZ = 64_000_000  # the clock the issue asks about, for the lower bound on time per inference


def require_toolchain() -> None:
    for tool, package in (("arm-none-eabi-gcc", "gcc-arm-none-eabi libnewlib-arm-none-eabi"),
                          ("qemu-system-arm", "qemu-system-arm")):
        if shutil.which(tool) is None:
            raise TinyDigitsError(f"{tool} not found: install it with `apt-get install {package}`")


def _run(cmd: list[str], cwd: Path, timeout: int = 120) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise TinyDigitsError(f"{cmd[0]} failed: {(proc.stderr or proc.stdout).strip().splitlines()[-1][:200]}")
    return proc.stdout


def section_sizes(obj: Path, cwd: Path) -> dict:
    """Berkeley sizes of an object or ELF: text (code + read-only data), data, bss."""
    text, data, bss = map(int, _run(["arm-none-eabi-size", str(obj)], cwd).splitlines()[1].split()[:3])
    return {"text": text, "data": data, "bss": bss}


def build(c_dir: Path, work: Path, optimization: str) -> dict:
    """Compile the model and firmware for Cortex-M4; sizes of the model alone and of the whole ELF."""
    templates = resources.files("tinydigits").joinpath("c_templates")
    for name in ("mcu_startup.c", "mcu_link.ld", "mcu_firmware.c"):
        (work / name).write_text(templates.joinpath(name).read_text())
    for name in ("tinydigits_model.c", "tinydigits_model.h"):
        shutil.copy(c_dir / name, work / name)
    flags = CFLAGS + [OPTIMIZATIONS[optimization]]
    _run(["arm-none-eabi-gcc", *flags, "-c", "tinydigits_model.c", "-o", "model.o"], work)
    elf = f"firmware-{optimization}.elf"
    _run(["arm-none-eabi-gcc", *flags, "-nostartfiles", "--specs=rdimon.specs", "-T", "mcu_link.ld", "-Wl,--gc-sections",
          "mcu_startup.c", "mcu_firmware.c", "tinydigits_model.c", "-o", elf, "-lc", "-lrdimon"], work)
    model = section_sizes(work / "model.o", work)
    return {"optimization": OPTIMIZATIONS[optimization], "elf": elf, "model_sections": model,
            "flash_bytes": model["text"] + model["data"], "firmware_sections": section_sizes(work / elf, work)}


def run_qemu(elf: Path, images: np.ndarray, work: Path) -> tuple[np.ndarray, dict]:
    """Run the firmware on `images` (N, 784) int8; return its outputs (N, 10) and its figures."""
    images.astype(np.int8).tofile(work / "images.bin")
    out = _run([*QEMU, "-kernel", str(elf)], work, timeout=600)
    match = re.search(r"images=(\d+) ticks=(\d+) calibration_ticks=(\d+) calibration_instructions=(\d+) stack=(\d+)", out)
    if not match:
        raise TinyDigitsError(f"the firmware did not report its figures (output: {out.strip()[:200]!r})")
    n, ticks, cal_ticks, cal_instructions, stack = map(int, match.groups())
    outputs = np.fromfile(work / "outputs.bin", np.int8).reshape(-1, 10)
    instructions = ticks * cal_instructions / cal_ticks / n
    return outputs, {"images": n, "instructions_per_inference": int(round(instructions)),
                     "instructions_per_tick": cal_instructions / cal_ticks, "stack_bytes": stack}


def run_mcu(c_dir: Path, images: np.ndarray, host_outputs: np.ndarray) -> dict:
    """Build for size and for speed, run both in QEMU, compare their answers with the host's."""
    require_toolchain()
    report = {"board": "mps2-an386 (Cortex-M4) in qemu-system-arm", "builds": []}
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        for optimization in OPTIMIZATIONS:
            b = build(c_dir, work, optimization)
            outputs, figures = run_qemu(work / b["elf"], images, work)
            b.update(figures)
            b["ram_bytes"] = b["model_sections"]["data"] + b["model_sections"]["bss"] + figures["stack_bytes"]
            b["matches_host"] = int((outputs == host_outputs).all(axis=1).sum())
            b["digits_match_host"] = int((outputs.argmax(1) == host_outputs.argmax(1)).sum())
            b["min_microseconds_at_64MHz"] = round(b["instructions_per_inference"] / CLOCK_HZ * 1e6, 1)
            report["builds"].append(b)
    return report


def run_on_mcu(run: Run, images: int = 300, command: str = "") -> dict:
    """Generate a converted run's standalone C, run it on `images` test images in QEMU, write RUN/mcu.json."""
    from .artifacts import preflight, write_json
    from .cbuild import compile_host, run_batch
    from .codegen import write_standalone
    from .convert import LiteRT

    require_toolchain()
    if images < 1:
        raise TinyDigitsError(f"--images must be at least 1, got {images}")
    preflight(run.folder, resume="run")
    model = run.int8_model()
    q = LiteRT(model).prepare(run.dataset().x_test[:images])
    with tempfile.TemporaryDirectory() as tmp:
        c_dir = Path(tmp) / "c"
        write_standalone(model, c_dir, str(run.paths.int8_model), command or f"tinydigits mcu {run.folder}")
        host = run_batch(compile_host(c_dir), q)  # the answers the chip must give
        report = run_mcu(c_dir, q.reshape(len(q), -1), host)
    write_json(run.paths.mcu, report)
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['board']}",
             f"{'build':6} {'flash (model)':>14} {'RAM (data+bss+stack)':>21} {'instructions/inference':>23} "
             f"{'>= us @64MHz':>13} {'match host':>11}"]
    for b in report["builds"]:
        lines.append(f"{b['optimization']:6} {b['flash_bytes']:>12,} B {b['ram_bytes']:>19,} B "
                     f"{b['instructions_per_inference']:>23,} {b['min_microseconds_at_64MHz']:>13} "
                     f"{b['matches_host']:>5}/{b['images']}")
    lines.append("flash = text + rodata + data of the model's object file; whole firmware with newlib: "
                 + ", ".join(f"{b['optimization']} {b['firmware_sections']['text']:,} B" for b in report["builds"]))
    lines.append("time bound: a Cortex-M4 retires at most one instruction per cycle, so instructions / 64 MHz "
                 "is a lower bound; flash wait states and multi-cycle loads make the real time longer")
    return "\n".join(lines)
