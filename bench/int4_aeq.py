"""tinydigits' int4 conversion against ai-edge-quantizer's, on a trained run.

    python bench/int4_aeq.py runs/lesson-w4        # a run trained with --weight-bits 4

Converts the run's Keras model to int4 weights / int8 activations twice: with `to_tflite(...,
weight_bits=4)` (TFLite's int8 model of the snapped kernels, filters narrowed to INT4) and with
ai-edge-quantizer's static recipe (int4 weights for FULLY_CONNECTED and CONV_2D, int8 for the rest,
its own calibration on the same 500 training images). Prints each model's size and LiteRT accuracy
on the 10,000 test images, its input quantization, whether the int4 weights are the same values,
and what ai-edge-quantizer says when asked for int4 DEPTHWISE_CONV_2D.
"""
import argparse

import numpy as np

from tinydigits.convert import _tf_function, calibration_images, to_tflite
from tinydigits.data import normalize
from tinydigits.runs import Run
from tinydigits.runtimes import LiteRT
from tinydigits import tflite


def aeq_int4(model, images: np.ndarray) -> tuple[bytes, str]:
    import tensorflow as tf
    from ai_edge_quantizer import qtyping, quantizer

    module = tf.Module()  # ai-edge-quantizer calibrates through a signature
    module.f = tf.function(_tf_function(model), input_signature=[tf.TensorSpec([1, *model.input_shape[1:]], tf.float32)])
    converter = tf.lite.TFLiteConverter.from_concrete_functions([module.f.get_concrete_function()], module)
    float_model = bytes(converter.convert())
    q = quantizer.Quantizer(float_model)
    q.add_static_config(".*", qtyping.TFLOperationName.ALL_SUPPORTED, 8, 8)
    for op in (qtyping.TFLOperationName.FULLY_CONNECTED, qtyping.TFLOperationName.CONV_2D):
        q.add_static_config(".*", op, 8, 4)
    try:
        q.add_static_config(".*", qtyping.TFLOperationName.DEPTHWISE_CONV_2D, 8, 4)
        depthwise = "accepted"
    except ValueError as e:
        depthwise = f"refused: {str(e).split(':')[0]}: {str(e).split(':')[1][:40]}"
    from ai_edge_litert.interpreter import Interpreter

    signature = Interpreter(model_content=float_model).get_signature_list()
    key = next(iter(signature))
    name = signature[key]["inputs"][0]
    samples = normalize(images).reshape(-1, 1, *model.input_shape[1:])
    result = q.quantize(q.calibrate({key: [{name: s} for s in samples]}), enable_progress_report=False)
    return bytes(result.quantized_model), depthwise


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run")
    args = parser.parse_args()
    run = Run(args.run)
    ds, model = run.dataset(), run.model()
    images = calibration_images(ds.x_train)
    ours = to_tflite(model, images, weight_bits=4)
    theirs, depthwise = aeq_int4(model, images)
    for name, m in (("tinydigits", ours), ("ai-edge-quantizer", theirs)):
        lite = LiteRT(m)
        accuracy = (lite.predict(ds.x_test).argmax(1) == ds.y_test).mean()
        print(f"{name:18} {len(m):>7,} bytes  accuracy {accuracy:.4f}  input scale {lite.input_q.scale:.8f} "
              f"zero point {lite.input_q.zero_point}")
    filters = lambda m: sorted(((t.shape, t.data.tobytes()) for t in tflite.read(m).tensors if t.dtype == "int4"))  # noqa: E731
    print(f"int4 weights the same values: {filters(ours) == filters(theirs)} ({len(filters(ours))} int4 tensors)")
    print(f"ai-edge-quantizer and int4 DEPTHWISE_CONV_2D: {depthwise}")


if __name__ == "__main__":
    main()
