"""The fully-connected kernels on each microcontroller core: the fast path beside the portable one.

For one board per core, the run's standalone C is built twice with the board's own flags: as
generated (the core's fast kernels: Cortex-M DSP intrinsics, Cortex-M0 or AVR assembly) and with
-DTINYDIGITS_NAIVE_KERNELS=1 (the portable reference C), and both run in the emulator on the same
test images in the same run. Printed per build: instructions (Cortex-M and RISC-V, QEMU) or cycles (AVR,
simavr, cycle-exact) per inference and per multiply-accumulate of the whole inference (softmax
included), the model's flash (code + weights), and how many outputs equal the host build's.

    TINYDIGITS_DATA=../shared/datasets python bench/mcu_speed.py runs/lesson --images 50
"""
import argparse
import dataclasses
import tempfile
from pathlib import Path

import tinydigits  # noqa: F401
from tinydigits.boards import core_name, model_c
from tinydigits.codegen import plan
from tinydigits.runs import Run
from tinydigits.targets import family, find

# Cortex-M0, M4, M7, M33, AVR; RV32IMC, RV32IMAC + Zba/Zbb/Zbs, RV32EC (these three: no fast kernels yet)
BOARDS = ("microbit", "nano33ble", "stm32f746", "nrf5340", "uno", "esp32c3", "pico2-riscv", "ch32v003")
NAIVE = "-DTINYDIGITS_NAIVE_KERNELS=1"


def macs(model: bytes) -> int:
    """Multiply-accumulates of one inference: the fully-connected layers' weights."""
    return sum(op.params["weights"].size for op in plan(model)[0] if op.kind == "FULLY_CONNECTED")


def measure(key: str, c_dir: Path, inputs, host_outputs, work: Path) -> dict:
    board = find(key)
    tools = family(board)
    row = {"core": core_name(board.core), "board": board.name}
    for kernels, flags in (("naive", (NAIVE,)), ("fast", ())):
        firmware = tools.build(c_dir, dataclasses.replace(board, cflags=board.cflags + flags), work / key / kernels)
        outputs, figures = tools.run(firmware, inputs)
        row[kernels] = {"count": figures.get("cycles_per_inference", figures.get("instructions_per_inference")),
                        "flash": firmware.flash_bytes, "matches": int((outputs == host_outputs).all(axis=1).sum())}
    row["unit"] = "cycles" if board.toolchain == "avr" else "instructions"
    return row


def main(run: Run, images: int):
    n = macs(run.int8_model())
    print(f"{run.folder}: {n:,} MACs per inference, {images} test images per build")
    print(f"{'core':11} {'kernels':7} {'per inference':>17} {'per MAC':>8} {'model flash':>12} {'= host':>8}")
    with model_c(run, images, "bench/mcu_speed.py") as (c_dir, inputs, host_outputs), tempfile.TemporaryDirectory() as tmp:
        for key in BOARDS:
            row = measure(key, c_dir, inputs, host_outputs, Path(tmp))
            for kernels in ("naive", "fast"):
                b = row[kernels]
                print(f"{row['core']:11} {kernels:7} {b['count']:>10,} {'instr.' if row['unit'] == 'instructions' else row['unit']:6} {b['count'] / n:>8.2f} "
                      f"{b['flash']:>10,} B {b['matches']:>4}/{images}")
            fast, naive = row["fast"], row["naive"]
            print(f"{'':11} fast: {naive['count'] / fast['count']:.1f}x fewer {row['unit']}, "
                  f"flash {fast['flash'] - naive['flash']:+,} B")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run", type=Path, help="a run folder that `tinydigits convert` has processed")
    parser.add_argument("--images", type=int, default=50, help="test images per build (default 50)")
    args = parser.parse_args()
    main(Run(args.run), args.images)
