"""MAX_POOL_2D, AVERAGE_POOL_2D and MEAN (global average pooling over height and width)."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from . import OpSpec, Step, activation, dims4, int8_io, need, padding, same_quantization


# ---- MAX_POOL_2D and AVERAGE_POOL_2D -------------------------------------------------------------

def plan_pool(node) -> Step:
    int8_io(node)
    x, y = node.inputs[0], node.outputs[0]
    same_quantization(node, x, y)
    (in_h, in_w, c), (out_h, out_w, out_c) = dims4(x), dims4(y)
    o = node.options
    f_h, f_w = o.get("filter_height", 1), o.get("filter_width", 1)
    need(c == out_c and f_h >= 1 and f_w >= 1, node, "bad pooling shapes")
    top, left = padding(node, in_h, in_w, f_h, f_w, out_h, out_w)
    low, high = fp.activation_range(activation(node), y.scale[0], y.zero_point[0])
    params = {"in_h": in_h, "in_w": in_w, "channels": c, "out_h": out_h, "out_w": out_w, "f_h": f_h, "f_w": f_w,
              "stride_h": o.get("stride_h", 1), "stride_w": o.get("stride_w", 1), "pad_top": top, "pad_left": left,
              "act_min": low, "act_max": high}
    return Step(node, params)


def emit_pool(function: str):
    def emit(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
        p = step.params
        return [f"{function}({inputs[0]}, {output}, {p['in_h']}, {p['in_w']}, {p['channels']}, {p['out_h']}, {p['out_w']}, "
                f"{p['f_h']}, {p['f_w']}, {p['stride_h']}, {p['stride_w']}, {p['pad_top']}, {p['pad_left']}, "
                f"{p['act_min']}, {p['act_max']});"]
    return emit


def windows(step: Step, x: np.ndarray):
    """Yield (oy, ox, values (n, channels)) for each output pixel: the window clipped to the image."""
    p = step.params
    x = x.reshape(p["in_h"], p["in_w"], p["channels"]).astype(np.int64)
    for oy in range(p["out_h"]):
        y0 = oy * p["stride_h"] - p["pad_top"]
        for ox in range(p["out_w"]):
            x0 = ox * p["stride_w"] - p["pad_left"]
            window = x[max(y0, 0):min(y0 + p["f_h"], p["in_h"]), max(x0, 0):min(x0 + p["f_w"], p["in_w"])]
            yield oy, ox, window.reshape(-1, p["channels"])


def reference_max_pool(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    out = np.empty((p["out_h"], p["out_w"], p["channels"]), np.int64)
    for oy, ox, values in windows(step, inputs[0]):
        out[oy, ox] = values.max(axis=0)
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


def reference_average_pool(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    out = np.empty((p["out_h"], p["out_w"], p["channels"]), np.int64)
    for oy, ox, values in windows(step, inputs[0]):
        total, count = values.sum(axis=0), len(values)
        out[oy, ox] = np.where(total > 0, fp.trunc_div(total + count // 2, count), fp.trunc_div(total - count // 2, count))
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


# ---- MEAN ----------------------------------------------------------------------------------------

def plan_mean(node) -> Step:
    """MEAN over axes 1 and 2 of (1, H, W, C), as TFLM's QuantizedMeanOrSum: the division by H * W is folded
    into the multiplier (shifted left by floor(log2(H * W)) first, then divided, in 64-bit integers)."""
    int8_io(node)
    x, axis, y = node.inputs[0], node.inputs[1], node.outputs[0]
    need(axis is not None and axis.constant, node, "the axes must be constant")
    need(len(x.shape) == 4 and sorted(int(a) % 4 for a in axis.data.ravel()) == [1, 2], node,
         "only the mean over height and width of (1, H, W, C) (global average pooling) is supported")
    h, w, c = dims4(x)
    need(y.size == c, node, f"output {list(y.shape)} is not one value per channel")
    count = h * w
    multiplier, shift = fp.quantize_multiplier(float(np.float64(x.scale[0]) / np.float64(y.scale[0])))
    bits = min(count.bit_length() - 1, 32, 31 + shift)
    multiplier, shift = int((multiplier << bits) // count), shift - bits
    params = {"count": count, "channels": c, "zero_sum": x.zero_point[0] * count, "multiplier": multiplier, "shift": shift,
              "output_offset": y.zero_point[0]}
    return Step(node, params)


def emit_mean(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    return [f"mean_hw({inputs[0]}, {output}, {p['count']}, {p['channels']}, {p['zero_sum']}, {p['multiplier']}, "
            f"{p['shift']}, {p['output_offset']});"]


def reference_mean(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    total = inputs[0].reshape(p["count"], p["channels"]).astype(np.int64).sum(axis=0)
    out = fp.multiply_by_quantized_multiplier(total - p["zero_sum"], p["multiplier"], p["shift"]) + p["output_offset"]
    return np.clip(out, -128, 127).astype(np.int8)


MAX_POOL_2D = OpSpec("MAX_POOL_2D", plan_pool, emit_pool("max_pool_2d"), reference_max_pool, kernels=("pool_2d",),
                     tflm="AddMaxPool2D")
AVERAGE_POOL_2D = OpSpec("AVERAGE_POOL_2D", plan_pool, emit_pool("average_pool_2d"), reference_average_pool,
                         kernels=("pool_2d",), tflm="AddAveragePool2D", litert_arithmetic=True)
MEAN = OpSpec("MEAN", plan_mean, emit_mean, reference_mean, kernels=("mean",), tflm="AddMean")
