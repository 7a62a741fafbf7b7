"""Write a run's int8 model as C: a TFLite Micro bundle (DIR/tflm/) and standalone C99 (DIR/c/).

    export_c(Run("runs/lesson"), Path("out"), "tinydigits export-c")   # needs model_int8.tflite (convert)
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

from .artifacts import MANIFEST, preflight, staged_folder, write_text
from .codegen import generated_banner, op_names, plan, write_standalone
from .convert import minimum_arena
from .errors import TinyDigitsError
from .runs import Run

TFLM_REGISTRATIONS = {"FULLY_CONNECTED": "AddFullyConnected", "RESHAPE": "AddReshape",
                      "SOFTMAX": "AddSoftmax", "AVERAGE_POOL_2D": "AddAveragePool2D"}


def tflm_model_data(model: bytes, arena: int, io: dict, banner: str) -> tuple[str, str]:
    """model_data.h / model_data.cc: the .tflite bytes as an aligned array, its length, arena and quantization."""
    (in_s, in_z), (out_s, out_z) = io["input"], io["output"]
    header = f"""{banner}#ifndef TINYDIGITS_MODEL_DATA_H
#define TINYDIGITS_MODEL_DATA_H

// The int8 model for tflite::MicroInterpreter.
extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

// Smallest tensor arena the TFLM interpreter accepted for this model (found by bisection on the
// host, 64-bit; a 32-bit MCU needs slightly less). Keep it 16-byte aligned.
constexpr int kTensorArenaSize = {arena};

// int8 quantization: real = (q - zero_point) * scale
constexpr float kInputScale = {float(in_s[0]):.9g}f;
constexpr int kInputZeroPoint = {int(in_z[0])};
constexpr float kOutputScale = {float(out_s[0]):.9g}f;
constexpr int kOutputZeroPoint = {int(out_z[0])};

#endif
"""
    rows = [", ".join(f"0x{b:02x}" for b in model[i:i + 12]) for i in range(0, len(model), 12)]
    source = (f'{banner}#include "model_data.h"\n\n'
              f"alignas(16) const unsigned char g_model_data[] = {{\n    " + ",\n    ".join(rows) + "\n};\n"
              f"const unsigned int g_model_data_len = {len(model)};\n")
    return header, source


def tflm_example(ops: list[str], banner: str) -> str:
    registrations = sorted({TFLM_REGISTRATIONS[op] for op in ops if op in TFLM_REGISTRATIONS})
    template = resources.files("tinydigits").joinpath("c_templates/tflm_main.cc").read_text()
    return banner + template.replace("{{N_OPS}}", str(len(registrations))).replace(
        "{{REGISTRATIONS}}", "\n".join(f"  resolver.{r}();" for r in registrations))


def export_c(run: Run, out: Path, command: str, force: bool = False) -> list[Path]:
    """Write DIR/tflm/ and DIR/c/ from RUN/model_int8.tflite, atomically as a whole."""
    out = Path(out)
    preflight(out, force)
    if out.resolve() == run.folder.resolve() or out.resolve() in run.folder.resolve().parents:
        raise TinyDigitsError(f"{out}: holds the run {run.folder} that is being exported; choose another --out")
    model = run.int8_model()
    source = str(run.paths.int8_model)
    ops, io = plan(model)  # refuses ops the C generator does not know, before anything is written
    arena = run.arena_bytes() or minimum_arena(model)
    banner = generated_banner(source, command)
    with staged_folder(out, "export", command, force) as tmp:
        header, data = tflm_model_data(model, arena, io, banner)
        write_text(tmp / "tflm" / "model_data.h", header)
        write_text(tmp / "tflm" / "model_data.cc", data)
        write_text(tmp / "tflm" / "main.cc", tflm_example(op_names(model), banner))
        write_standalone(model, tmp / "c", source, command)
    return sorted(p for p in out.rglob("*") if p.is_file() and p.name != MANIFEST)
