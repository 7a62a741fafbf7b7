"""Write a run's int8 model as C: a TFLite Micro bundle (DIR/tflm/) and standalone C99 (DIR/c/), or
as an Arduino library (library.properties, src/ with the model, examples/ with a sketch).

DIR/c/ also holds sample inputs to try it on at once: the first test image of each class as a raw
file (samples/label<label>_test<index>.raw: 784 uint8 pixels, row by row, ink bright, what main.c
reads) and as a C array (tinydigits_samples.h), which main.c classifies when run with no argument.

    export_c(Run("runs/lesson"), Path("out"), "tinydigits export-c")   # needs model_int8.tflite (convert)
    export_arduino(Run("runs/lesson"), Path("TinyDigits"), "tinydigits export-arduino")
"""
from __future__ import annotations

from importlib import resources
from pathlib import Path

import numpy as np

from . import __version__, escape
from .artifacts import check_out, staged_folder, write_bytes, write_text, written_files
from .atomic import claim
from .codegen import generate, generated_banner, write_standalone
from .runtimes import minimum_arena, tflm_refuses
from .model import IMAGE_SIZE, NUM_CLASSES
from .runs import Run

SAMPLES_HEADER = "tinydigits_samples.h"  # DIR/c/: the sample images as a C array (main.c, -DTINYDIGITS_SAMPLES)
ARDUINO_LIBRARY = "TinyDigits"
ARDUINO_EXAMPLE = "ClassifySerial"
PIXELS = IMAGE_SIZE * IMAGE_SIZE  # the model's input: one MNIST image


def tflm_model_data(model: bytes, arena: int, io: dict, banner: str) -> tuple[str, str]:
    """model_data.h / model_data.cc: the .tflite bytes as an aligned array, its length, arena and quantization."""
    (in_s, in_z), (out_s, out_z) = ((io[k]["scale"], io[k]["zero_point"]) for k in ("input", "output"))
    header = f"""{banner}#ifndef TINYDIGITS_MODEL_DATA_H
#define TINYDIGITS_MODEL_DATA_H

// The int8 model for tflite::MicroInterpreter.
extern const unsigned char g_model_data[];
extern const unsigned int g_model_data_len;

// Smallest tensor arena the TFLM interpreter accepted for this model (found by bisection on the
// host, 64-bit; a 32-bit MCU needs slightly less). Keep it 16-byte aligned.
constexpr int kTensorArenaSize = {arena};

// int8 quantization: real = (q - zero_point) * scale
constexpr float kInputScale = {in_s:.9g}f;
constexpr int kInputZeroPoint = {in_z};
constexpr float kOutputScale = {out_s:.9g}f;
constexpr int kOutputZeroPoint = {out_z};

#endif
"""
    rows = [", ".join(f"0x{b:02x}" for b in model[i:i + 12]) for i in range(0, len(model), 12)]
    source = (f'{banner}#include "model_data.h"\n\n'
              f"alignas(16) const unsigned char g_model_data[] = {{\n    " + ",\n    ".join(rows) + "\n};\n"
              f"const unsigned int g_model_data_len = {len(model)};\n")
    return header, source


def tflm_example(registrations: list[str], banner: str) -> str:
    """main.cc: one image through tflite::MicroInterpreter, with only the model's ops registered (the op table's names)."""
    registrations = sorted(registrations)
    template = resources.files("tinydigits").joinpath("c_templates/tflm_main.cc").read_text()
    return banner + template.replace("{{N_OPS}}", str(len(registrations))).replace(
        "{{REGISTRATIONS}}", "\n".join(f"  resolver.{r}();" for r in registrations))


def sample_indices(labels: np.ndarray) -> list[int]:
    """The first test image of each class, in class order."""
    return [int(np.flatnonzero(labels == c)[0]) for c in range(NUM_CLASSES) if (labels == c).any()]


def samples_header(images: np.ndarray, labels: np.ndarray, indices: list[int], banner: str) -> str:
    """tinydigits_samples.h: test images as uint8 arrays (784 pixels, ink bright), with their labels."""
    rows = ",\n".join("    {" + ", ".join(str(int(p)) for p in images[i].reshape(-1)) + "}" for i in indices)
    return (f"{banner}#ifndef TINYDIGITS_SAMPLES_H\n#define TINYDIGITS_SAMPLES_H\n\n"
            f"/* {len(indices)} test images, one per class: {PIXELS} uint8 pixels each, row by row, ink bright. */\n"
            f"#define TINYDIGITS_SAMPLE_COUNT {len(indices)}\n\n"
            f"static const int tinydigits_sample_index[TINYDIGITS_SAMPLE_COUNT] = {{{', '.join(map(str, indices))}}};\n"
            f"static const int tinydigits_sample_label[TINYDIGITS_SAMPLE_COUNT] = "
            f"{{{', '.join(str(int(labels[i])) for i in indices)}}};\n"
            f"static const unsigned char tinydigits_samples[TINYDIGITS_SAMPLE_COUNT][{PIXELS}] = {{\n{rows}\n}};\n\n"
            "#endif\n")


def export_c(run: Run, out: Path, command: str, force: bool = False) -> list[Path]:
    """Write DIR/tflm/ and DIR/c/ (with its sample inputs) from RUN/model_int8.tflite, atomically as a whole
    (no DIR/tflm/ for a model TFLM cannot run: runtimes.tflm_refuses)."""
    with claim(out, wait=False, command=command):  # a second export to DIR stops with one line
        return _export_c(run, check_out(out, "export", force, run.folder), command, force)


def _export_c(run: Run, out: Path, command: str, force: bool) -> list[Path]:
    model = run.int8_model()
    source = str(run.paths.int8_model)
    facts = generate(model, source, command).facts  # refuses ops the C generator does not know, before anything is written
    tflm = not tflm_refuses(model)  # no DIR/tflm/ for a model the TFLM interpreter cannot run (int4 FULLY_CONNECTED)
    arena = (run.arena_bytes() or minimum_arena(model)) if tflm else None
    ds = run.dataset()
    samples = sample_indices(ds.y_test)
    banner = generated_banner(source, command)
    with staged_folder(out, "export", command, force) as tmp:
        if tflm:
            header, data = tflm_model_data(model, arena, facts, banner)
            write_text(tmp / "tflm" / "model_data.h", header)
            write_text(tmp / "tflm" / "model_data.cc", data)
            write_text(tmp / "tflm" / "main.cc", tflm_example(facts["tflm_registrations"], banner))
        write_standalone(model, tmp / "c", source, command, tflm_arena_bytes=arena)
        write_text(tmp / "c" / SAMPLES_HEADER, samples_header(ds.x_test, ds.y_test, samples, banner))
        for i in samples:
            write_bytes(tmp / "c" / "samples" / f"label{int(ds.y_test[i])}_test{i}.raw", ds.x_test[i].tobytes())
    return written_files(out)


def library_properties(source: str) -> str:
    """library.properties: one `key=value` per line, the run's path escaped so it cannot add a line."""
    source = escape.properties_value(source)
    return (f"name={ARDUINO_LIBRARY}\nversion={__version__}\nauthor=tinydigits\nmaintainer=tinydigits\n"
            f"sentence=A handwritten-digit classifier: the int8 model generated by tinydigits from {source}, in plain C.\n"
            f"paragraph=tinydigits_predict(input, output): {PIXELS} int8 pixels in, {NUM_CLASSES} int8 probabilities out, the digit "
            "returned. No runtime, no heap; outputs byte-identical to TensorFlow Lite Micro's.\n"
            "category=Data Processing\narchitectures=*\nincludes=tinydigits_model.h\n")


def test_digit_header(pixels, label: int, banner: str) -> str:
    """The sketch's built-in digit: 28x28 uint8 pixels in flash and its true label."""
    rows = [", ".join(str(int(p)) for p in row) for row in pixels.reshape(IMAGE_SIZE, IMAGE_SIZE)]
    return (f"{banner}#include <Arduino.h>\n\n#define TEST_DIGIT_LABEL {int(label)}\n\n"
            f"/* One test image, {IMAGE_SIZE}x{IMAGE_SIZE} uint8 pixels row by row (light ink on dark), in flash. */\n"
            f"static const uint8_t test_digit[{PIXELS}] PROGMEM = {{\n    " + ",\n    ".join(rows) + "\n};\n")


SKETCH_RAM_BYTES = 512    # what the sketch itself, the Serial buffers and the stack take beside the model (the .ino's check)
SKETCH_FLASH_BYTES = 6 * 1024  # the Arduino core, Serial and the sketch's code, with the model's kernels


def avr_fit(facts: dict) -> list[str]:
    """Whether the model fits each 8-bit Arduino (its activations in RAM, its weights in flash), in words;
    `tinydigits boards` measures it exactly."""
    from .targets import BOARDS

    lines = []
    for board in (b for b in BOARDS if b.fqbn.startswith("arduino:avr")):
        ram, flash = facts["arena_bytes"] + SKETCH_RAM_BYTES, facts["weight_bytes"] + SKETCH_FLASH_BYTES
        over = [f"RAM: {facts['arena_bytes']:,} B of activations + ~{SKETCH_RAM_BYTES} B for the sketch > "
                f"{board.ram_bytes:,} B"] if ram > board.ram_bytes else []
        over += [f"flash: {facts['weight_bytes']:,} B of weights + ~{SKETCH_FLASH_BYTES // 1024} KB of code > "
                 f"{board.flash_bytes // 1024} KB"] if flash > board.flash_bytes else []
        lines.append(f"{board.name}: " + (f"does not fit ({'; '.join(over)}); the sketch will not build for it"
                                          if over else "fits"))
    return lines


def export_arduino(run: Run, out: Path, command: str, force: bool = False) -> list[Path]:
    """Write an Arduino library folder for the run's model, atomically as a whole: the same C as export-c."""
    with claim(out, wait=False, command=command):  # a second export to DIR stops with one line
        return _export_arduino(run, check_out(out, "export", force, run.folder), command, force)


def _export_arduino(run: Run, out: Path, command: str, force: bool) -> list[Path]:
    model = run.int8_model()
    source = str(run.paths.int8_model)
    c = generate(model, source, command, run.arena_bytes())  # refuses ops the C generator does not know
    ds = run.dataset()
    banner = generated_banner(source, command)
    sketch = resources.files("tinydigits").joinpath("c_templates/arduino_sketch.ino").read_text()
    example = Path("examples") / ARDUINO_EXAMPLE
    with staged_folder(out, "export", command, force) as tmp:
        write_text(tmp / "library.properties", library_properties(source))
        for name, text in c.files.items():
            write_text(tmp / "src" / name, text)
        write_text(tmp / example / f"{ARDUINO_EXAMPLE}.ino", generated_banner(source, command, "ino") + sketch)
        write_text(tmp / example / "test_digit.h", test_digit_header(ds.x_test[0], ds.y_test[0], banner))
    return written_files(out)
