"""Prove the deployed model is the trained one: every form scored on the full test set.

Forms: Keras float32 -> LiteRT float32 -> LiteRT int8 -> TFLM int8 (the interpreter that runs
on the chip). For each: size, test accuracy, agreement of the predicted digit with Keras, latency
per image, and for TFLM the minimum tensor arena. Also the test images whose digit flips
between float and int8. "int8" is the activations: a model with int4 weights (`weight_bits` 4 in
the report) has the same rows, and its TFLM row is marked `skipped` with the reason where TFLM
cannot run it (int4 FULLY_CONNECTED).

    report = compare_forms(model, float_bytes, int8_bytes, ds.x_test, ds.y_test)   # what deploy.json holds
"""
from __future__ import annotations


import numpy as np

from .predict import model_input, predict_digits
from .runtimes import TFLM, LiteRT, latency_us, tflm_refuses
from .tflite import read


def compare_forms(model, float_bytes: bytes, int8_bytes: bytes, x: np.ndarray, y: np.ndarray, tflm: bool = True) -> dict:
    keras_probs = predict_digits(model, x)
    reference = keras_probs.argmax(axis=1)
    lite_float, lite_int8 = LiteRT(float_bytes), LiteRT(int8_bytes)
    int8_q = lite_int8.run(lite_int8.prepare(x))
    int8_probs = lite_int8.output_q.dequantize(int8_q)
    forms = [
        _form("Keras float32", None, keras_probs, y, reference,
              latency_us(lambda im: model.predict_on_batch(model_input(model, im)), x)),
        _form("LiteRT float32", len(float_bytes), lite_float.predict(x), y, reference,
              latency_us(lite_float.predict, x)),
        _form("LiteRT int8", len(int8_bytes), int8_probs, y, reference, latency_us(lite_int8.predict, x)),
    ]
    graph = read(int8_bytes)
    refused = tflm_refuses(graph) if tflm else ""
    if refused:  # int4 FULLY_CONNECTED: the form is there, marked, not scored
        forms.append({"form": "TFLM int8", "bytes": len(int8_bytes), "skipped": refused})
    elif tflm:
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
    filters = [n.inputs[1].dtype for n in graph.nodes if n.op in ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")]
    return {"forms": forms, "quantization": quantization_facts(lite_int8), "flips": flips,
            "ops": [node.op for node in graph.nodes], "weight_bits": 4 if "int4" in filters else 8}


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
        if "skipped" in f:
            lines.append(f"{f['form']:16} {size:>8}  not scored: {f['skipped']}")
            continue
        arena = f"{f['arena_bytes']:,} B" if "arena_bytes" in f else ""
        lines.append(f"{f['form']:16} {size:>8} {f['accuracy']:9.4f} {f['agreement_with_keras']:16.4f} "
                     f"{f['latency_us']:11.1f} us  {arena}".rstrip())
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
