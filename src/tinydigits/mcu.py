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
from .boards import Column, firmware_folders, model_c, notes, table
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


MCU_COLUMNS: list[Column] = [  # what `mcu` prints; MCU_COLUMNS_WIDE with --wide
    ("build", -5, lambda b: b["optimization"]),
    ("flash B", 10, lambda b: f"{b['flash_bytes']:,}"),
    ("RAM B", 8, lambda b: f"{b['ram_bytes']:,}"),
    ("firmware B", 11, lambda b: f"{b['firmware_flash_bytes']:,}"),
    ("instructions", 13, lambda b: f"{b['instructions_per_inference']:,}"),
    (">= us", 10, lambda b: f"{b['min_microseconds_at_64MHz']:.1f}"),
    ("= host", 12, lambda b: f"{b['matches_host']}/{b['images']}"),
]
MCU_COLUMNS_WIDE: list[Column] = [
    ("build", -6, lambda b: b["optimization"]),
    ("flash (model) B", 16, lambda b: f"{b['flash_bytes']:,}"),
    ("RAM (data+bss+stack) B", 23, lambda b: f"{b['ram_bytes']:,}"),
    ("whole firmware flash B", 23, lambda b: f"{b['firmware_flash_bytes']:,}"),
    ("instructions/inference", 23, lambda b: f"{b['instructions_per_inference']:,}"),
    (">= us @64MHz", 13, lambda b: f"{b['min_microseconds_at_64MHz']:.1f}"),
    ("match host", 12, lambda b: f"{b['matches_host']}/{b['images']}"),
]


def format_report(report: dict, wide: bool = False) -> str:
    """The two builds as a table that fits 100 columns (`wide`: long column names), then what each means."""
    lines = [report["board"], *table(MCU_COLUMNS_WIDE if wide else MCU_COLUMNS, report["builds"])]
    explained = ["flash B: code + constant tables + .data of the model's object file; RAM B: .data + .bss + the "
                 "stack measured during an inference; firmware B: the whole test firmware's flash (no C library)",
                 "instructions: per inference, counted by QEMU; >= us: at 64 MHz, a lower bound: a Cortex-M4 retires "
                 "at most one instruction per cycle, and flash wait states and multi-cycle loads make the real time longer",
                 f"= host: inferences whose int8 outputs are byte-identical to the host build's"]
    return "\n".join(lines + notes(explained, wide))
