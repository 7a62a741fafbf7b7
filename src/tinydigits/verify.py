"""Prove the deployed model is the trained one: every form scored on the full test set.

Forms: Keras float32 -> LiteRT float32 -> LiteRT int8 -> TFLM int8 (the interpreter that runs
on the chip). For each: size, test accuracy, agreement of the predicted digit with Keras, latency
per image, and for TFLM the minimum tensor arena. Also the test images whose digit flips
between float and int8.

    report = convert_run(Run("runs/lesson"))   # adds model_*.tflite, deploy.json, flips.png
"""
from __future__ import annotations


import numpy as np

from .artifacts import preflight, save_figure, staged_folder, write_bytes, write_json
from .atomic import claim
from .codegen import op_names
from .convert import CALIBRATION_IMAGES, TFLM, LiteRT, calibration_images, latency_us, to_tflite
from .data import normalize
from .runs import RUN_FILES, Run


def convert_run(run: Run, calibration: int = CALIBRATION_IMAGES, tflm: bool = True, command: str = "") -> dict:
    """Convert a run's model.keras to both .tflite forms, score every form; add the four files as one set."""
    from .plots import image_gallery

    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        run.refresh()  # what a writer we waited for changed
        preflight(run.folder, resume="run")
        ds = run.dataset()
        model = run.model()
        float_bytes = to_tflite(model)
        int8_bytes = to_tflite(model, calibration_images(ds.x_train, calibration))
        report = compare_forms(model, float_bytes, int8_bytes, ds.x_test, ds.y_test, tflm=tflm)
        report["calibration_images"] = calibration
        flips = report["flips"]
        figure = image_gallery(ds.x_test[[f["index"] for f in flips[:32]]],
                               [f"#{f['index']}: {f['float']}->{f['int8']} (true {f['label']})" for f in flips[:32]],
                               f"{len(flips)} test images whose digit flips from float to int8")
        with staged_folder(run.folder, "run", command, update=True) as tmp:
            write_bytes(tmp / RUN_FILES.float_model, float_bytes)
            write_bytes(tmp / RUN_FILES.int8_model, int8_bytes)
            save_figure(figure, tmp / RUN_FILES.flips)
            write_json(tmp / RUN_FILES.deploy, report)
        run.refresh()  # export-c after convert in one notebook must see the new model_int8.tflite
        return report


def compare_forms(model, float_bytes: bytes, int8_bytes: bytes, x: np.ndarray, y: np.ndarray, tflm: bool = True) -> dict:
    keras_probs = np.asarray(model.predict(normalize(x), batch_size=1000, verbose=0))
    reference = keras_probs.argmax(axis=1)
    lite_float, lite_int8 = LiteRT(float_bytes), LiteRT(int8_bytes)
    int8_q = lite_int8.run(lite_int8.prepare(x))
    int8_probs = lite_int8.output_q.dequantize(int8_q)
    forms = [
        _form("Keras float32", None, keras_probs, y, reference,
              latency_us(lambda im: model.predict_on_batch(normalize(im)), x)),
        _form("LiteRT float32", len(float_bytes), lite_float.predict(x), y, reference,
              latency_us(lite_float.predict, x)),
        _form("LiteRT int8", len(int8_bytes), int8_probs, y, reference, latency_us(lite_int8.predict, x)),
    ]
    if tflm:
        micro = TFLM(int8_bytes)  # with the smallest arena it accepts
        tflm_q = micro.run(lite_int8.prepare(x))
        row = _form("TFLM int8", len(int8_bytes), lite_int8.output_q.dequantize(tflm_q), y, reference,
                    latency_us(lambda im: micro.run(lite_int8.prepare(im)), x))
        row["arena_bytes"] = micro.arena_size
        row["identical_to_litert_int8"] = float((tflm_q == int8_q).all(axis=1).mean())
        forms.append(row)
    int8_digits = int8_probs.argmax(axis=1)
    flips = [{"index": int(i), "label": int(y[i]), "float": int(reference[i]), "int8": int(int8_digits[i])}
             for i in np.flatnonzero(int8_digits != reference)]
    return {"forms": forms, "quantization": quantization_facts(lite_int8), "flips": flips,
            "ops": op_names(int8_bytes)}


def _form(name, size, probs, y, reference, latency) -> dict:
    digits = probs.argmax(axis=1)
    return {"form": name, "bytes": size, "accuracy": float((digits == y).mean()),
            "agreement_with_keras": float((digits == reference).mean()), "latency_us": round(latency, 1)}


def quantization_facts(lite: LiteRT) -> dict:
    return {"input_scale": float(lite.input_q.scale), "input_zero_point": int(lite.input_q.zero_point),
            "output_scale": float(lite.output_q.scale), "output_zero_point": int(lite.output_q.zero_point)}


def format_forms(report: dict) -> str:
    lines = [f"{'form':16} {'bytes':>8} {'accuracy':>9} {'agrees w/ Keras':>16} {'latency/image':>14}  arena"]
    for f in report["forms"]:
        size = f"{f['bytes']:,}" if f["bytes"] else "-"
        arena = f"{f['arena_bytes']:,} B" if "arena_bytes" in f else ""
        lines.append(f"{f['form']:16} {size:>8} {f['accuracy']:9.4f} {f['agreement_with_keras']:16.4f} "
                     f"{f['latency_us']:11.1f} us  {arena}")
    return "\n".join(lines)


def explain_quantization(q: dict, pixel: int = 200) -> str:
    """The worked example users ask for: one pixel into the int8 input, one int8 output back."""
    s, z = q["input_scale"], q["input_zero_point"]
    x = pixel / 255
    qx = int(np.clip(round(x / s) + z, -128, 127))
    so, zo = q["output_scale"], q["output_zero_point"]
    qo = 127
    return "\n".join([
        f"input:  scale {s:.8f} (= 1/{1 / s:.1f}), zero point {z}",
        f"  a pixel of {pixel}/255: x = {x:.4f}, q = round(x / s) + z = round({x / s:.2f}) + ({z}) = {qx}",
        "  so a uint8 pixel p enters the model as the int8 value p - 128 when s = 1/255 and z = -128",
        f"output: scale {so:.8f} (= 1/{1 / so:.0f}), zero point {zo}",
        f"  an int8 output q = {qo} reads back as (q - z) * s = ({qo} - ({zo})) * {so:.6f} = {(qo - zo) * so:.4f}",
    ])
