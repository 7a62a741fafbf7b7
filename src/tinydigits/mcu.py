"""The model on one Cortex-M4 (the Nano 33 BLE Sense's core, emulated as QEMU's mps2-an386), built
for size (-Os) and for speed (-O2): flash, RAM, instructions, answers. `boards` with two builds.

Reads RUN/model_int8.tflite; writes RUN/mcu.json and RUN/firmware/nano33ble-mcu/ (firmware-Os.elf,
firmware-O2.elf, their .bin and .map, the model objects), added to the run folder as one set.

    report = run_on_mcu(Run("runs/lesson"), images=300)
    print(format_report(report))
"""
from __future__ import annotations

from pathlib import Path

from .artifacts import preflight, write_json
from .atomic import claim
from .boards import firmware_folders, model_c
from .runs import RUN_FILES, Run
from .targets import arm, bytes_in, find

BOARD = "nano33ble"
FIRMWARE = f"{BOARD}-mcu"  # RUN/firmware/<this>/: its own, so `boards` (firmware/nano33ble/) keeps its build
OPTIMIZATIONS = ("-Os", "-O2")


def run_on_mcu(run: Run | Path, images: int = 300, command: str = "") -> dict:
    """Build the run's C for the Cortex-M4 twice, run both in QEMU on `images` test images, write RUN/mcu.json."""
    arm.require()
    run, board = (run if isinstance(run, Run) else Run(run)), find(BOARD)
    command = command or f"tinydigits mcu {run.folder}"
    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        run.refresh()  # what a writer we waited for changed
        preflight(run.folder, resume="run")
        return _run_on_mcu(run, board, images, command)


def _run_on_mcu(run: Run, board, images: int, command: str) -> dict:
    report = {"board": f"{board.emulator[0]} (Cortex-M4) in qemu-system-arm", "clock_hz": board.clock_hz, "builds": []}
    with model_c(run, images, command) as (c_dir, inputs, host_outputs), \
            firmware_folders(run, command) as (staged, fresh):
        folder = fresh(FIRMWARE)
        for optimization in OPTIMIZATIONS:
            firmware = arm.build(c_dir, board, folder, optimization)
            outputs, figures = arm.run(firmware, inputs)
            report["builds"].append({
                "optimization": optimization, "elf": str(run.paths.firmware / FIRMWARE / firmware.elf.name),
                "model_sections": firmware.model_sections, "flash_bytes": firmware.flash_bytes,
                "firmware_sections": firmware.firmware_sections,
                "firmware_flash_bytes": bytes_in(firmware.firmware_sections, arm.FLASH_SECTIONS),
                **figures, "ram_bytes": firmware.static_ram_bytes + figures["stack_bytes"],
                "matches_host": int((outputs == host_outputs).all(axis=1).sum()),
                "digits_match_host": int((outputs.argmax(1) == host_outputs.argmax(1)).sum()),
                "min_microseconds_at_64MHz": round(arm.min_seconds(board, figures["instructions_per_inference"]) * 1e6, 1),
            })
        write_json(staged / RUN_FILES.mcu, report)
    return report


def format_report(report: dict) -> str:
    lines = [f"{report['board']}",
             f"{'build':6} {'flash (model)':>14} {'RAM (data+bss+stack)':>21} {'instructions/inference':>23} "
             f"{'>= us @64MHz':>13} {'match host':>11}"]
    for b in report["builds"]:
        lines.append(f"{b['optimization']:6} {b['flash_bytes']:>12,} B {b['ram_bytes']:>19,} B "
                     f"{b['instructions_per_inference']:>23,} {b['min_microseconds_at_64MHz']:>13} "
                     f"{b['matches_host']:>5}/{b['images']}")
    lines.append("flash = code + constant tables + .data of the model's object file; whole test firmware (no C library): "
                 + ", ".join(f"{b['optimization']} {b['firmware_flash_bytes']:,} B" for b in report["builds"]))
    lines.append("time bound: a Cortex-M4 retires at most one instruction per cycle, so instructions / 64 MHz "
                 "is a lower bound; flash wait states and multi-cycle loads make the real time longer")
    return "\n".join(lines)
