"""CONV_2D and DEPTHWISE_CONV_2D: per-channel int8 (or int4) filters, SAME or VALID padding, any stride.

CONV_2D runs as im2col + the dot-product kernels of FULLY_CONNECTED (kernels/conv_2d.c), so every
core's fast path serves both; DEPTHWISE_CONV_2D has its own loop. int4 filters stay packed in flash,
two per byte, and have kernels of their own (conv_2d_int4.c on dot_int4.c; depthwise_conv_2d_int4.c
reads TFLite's own packing, the low nibble first over the flat filter). The multipliers are TFLM's
(PopulateConvolutionQuantizationParams: input scale * filter scale / output scale in double, per
output channel), the padding TFLite's (ComputePaddingHeightWidth).
"""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from ...lowbit import pack_int4
from . import OpSpec, Step, activation, dims4, int8_io, need, padding, weight_bits
from .dense import dot_constants, requantize_reference


def filter_tensors(node):
    """(input, filter, bias or None, output, the filter's bits)."""
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    return x, w, b, node.outputs[0], weight_bits(node, w)


def channel_reals(x, w, y, channels: int) -> list[float]:
    scales = w.scale if len(w.scale) > 1 else w.scale * channels
    return [x.scale[0] * s / y.scale[0] for s in scales]  # Python floats: double, as TFLM


def geometry(node, x, y, f_h: int, f_w: int) -> dict:
    (in_h, in_w, in_c), (out_h, out_w, out_c) = dims4(x), dims4(y)
    top, left = padding(node, in_h, in_w, f_h, f_w, out_h, out_w)
    return {"in_h": in_h, "in_w": in_w, "in_c": in_c, "out_h": out_h, "out_w": out_w, "out_c": out_c, "k_h": f_h,
            "k_w": f_w, "stride_h": node.options.get("stride_h", 1), "stride_w": node.options.get("stride_w", 1),
            "pad_top": top, "pad_left": left}


def patches(x: np.ndarray, p: dict, fill: int) -> np.ndarray:
    """(out_h, out_w, k_h, k_w, in_c): the input under the filter at every output pixel, `fill` outside."""
    padded = np.full((p["in_h"] + p["k_h"] + p["out_h"] * p["stride_h"], p["in_w"] + p["k_w"] + p["out_w"] * p["stride_w"],
                      p["in_c"]), fill, np.int64)
    padded[p["pad_top"]:p["pad_top"] + p["in_h"], p["pad_left"]:p["pad_left"] + p["in_w"]] = x.reshape(p["in_h"], p["in_w"], p["in_c"])
    ys = np.arange(p["out_h"])[:, None] * p["stride_h"] + np.arange(p["k_h"])[None, :]   # (out_h, k_h)
    xs = np.arange(p["out_w"])[:, None] * p["stride_w"] + np.arange(p["k_w"])[None, :]   # (out_w, k_w)
    return padded[ys[:, None, :, None], xs[None, :, None, :]]                               # (oh, ow, kh, kw, c)


# ---- CONV_2D -------------------------------------------------------------------------------------

def plan_conv_2d(node) -> Step:
    int8_io(node)
    x, w, b, y, bits = filter_tensors(node)
    out_c, f_h, f_w, f_c = w.shape
    g = geometry(node, x, y, f_h, f_w)
    need(f_c == g["in_c"] and out_c == g["out_c"], node, f"filters {list(w.shape)} do not match the input {list(x.shape)}")
    depth = f_h * f_w * f_c
    bias = b.data.astype(np.int64) if b is not None and b.constant else np.zeros(out_c, np.int64)
    params, constants = dot_constants(w.data.reshape(out_c, depth).astype(np.int8), bias, -x.zero_point[0],
                                      channel_reals(x, w, y, out_c), bits)
    low, high = fp.activation_range(activation(node), y.scale[0], y.zero_point[0])
    params.update(g, depth=depth, pad_value=x.zero_point[0], output_offset=y.zero_point[0], act_min=low, act_max=high)
    pointwise = f_h == f_w == 1 and g["stride_h"] == g["stride_w"] == 1 and g["pad_top"] == g["pad_left"] == 0
    return Step(node, params, constants, macs=g["out_h"] * g["out_w"] * out_c * depth,
                scratch_bytes=0 if pointwise else depth)


def emit_conv_2d(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    kernel = "conv_2d_int4" if p["weight_bits"] == 4 else "conv_2d"
    return [f"{kernel}({inputs[0]}, {output}, {scratch}, {p['in_h']}, {p['in_w']}, {p['in_c']}, {p['out_h']}, {p['out_w']}, "
            f"{p['out_c']}, {p['k_h']}, {p['k_w']}, {p['stride_h']}, {p['stride_w']}, {p['pad_top']}, {p['pad_left']}, "
            f"{p['pad_value']}, {names['weights']}, {names['bias']}, {names['multiplier']}, {names['shift']}, "
            f"{p['per_channel']}, {p['output_offset']}, {p['act_min']}, {p['act_max']});"]


def reference_conv_2d(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    """TFLite's ConvPerChannel: taps outside the image are skipped (filled with the zero point: + 0)."""
    p = step.params
    cols = patches(inputs[0], p, fill=-p["input_offset"]) + p["input_offset"]   # (oh, ow, kh, kw, c)
    acc = cols.reshape(p["out_h"], p["out_w"], -1) @ p["weights"].astype(np.int64).T
    return requantize_reference(acc, step)


# ---- DEPTHWISE_CONV_2D ---------------------------------------------------------------------------

def plan_depthwise_conv_2d(node) -> Step:
    int8_io(node)
    x, w, b, y, bits = filter_tensors(node)
    one, f_h, f_w, out_c = w.shape
    g = geometry(node, x, y, f_h, f_w)
    multiplier = out_c // g["in_c"]
    need(one == 1 and out_c == g["out_c"] and multiplier * g["in_c"] == out_c, node,
         f"filters {list(w.shape)} do not match the input {list(x.shape)}")
    need(node.options.get("depth_multiplier", multiplier) in (0, multiplier), node, "depth multiplier does not match the shapes")
    reals = channel_reals(x, w, y, out_c)
    mult, shift = zip(*(fp.quantize_multiplier(r) for r in reals))
    bias = b.data.astype(np.int64) if b is not None and b.constant else np.zeros(out_c, np.int64)
    low, high = fp.activation_range(activation(node), y.scale[0], y.zero_point[0])
    weights = w.data.reshape(f_h, f_w, out_c).astype(np.int8)
    params = {**g, "depth_multiplier": multiplier, "weights": weights, "bias": bias,
              "multiplier": np.array(mult, np.int64), "shift": np.array(shift, np.int64),
              "per_channel": int(len(reals) > 1), "input_offset": -x.zero_point[0], "weight_bits": bits,
              "output_offset": y.zero_point[0], "act_min": low, "act_max": high}
    stored = pack_int4(weights.ravel()) if bits == 4 else weights.ravel()   # TFLite's order (k_h, k_w, out_c)
    constants = {"weights": (stored, ""), "bias": (bias.astype(np.int32), ""),
                 "multiplier": (np.array(mult, np.int32), ""), "shift": (np.array(shift, np.int8), "")}
    return Step(node, params, constants, macs=g["out_h"] * g["out_w"] * out_c * f_h * f_w)


def emit_depthwise_conv_2d(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    kernel = "depthwise_conv_2d_int4" if p["weight_bits"] == 4 else "depthwise_conv_2d"
    return [f"{kernel}({inputs[0]}, {output}, {p['in_h']}, {p['in_w']}, {p['in_c']}, {p['out_h']}, {p['out_w']}, "
            f"{p['depth_multiplier']}, {p['k_h']}, {p['k_w']}, {p['stride_h']}, {p['stride_w']}, {p['pad_top']}, "
            f"{p['pad_left']}, {p['input_offset']}, {names['weights']}, {names['bias']}, {names['multiplier']}, "
            f"{names['shift']}, {p['per_channel']}, {p['output_offset']}, {p['act_min']}, {p['act_max']});"]


def reference_depthwise_conv_2d(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    cols = patches(inputs[0], p, fill=-p["input_offset"]) + p["input_offset"]   # (oh, ow, kh, kw, in_c)
    cols = np.repeat(cols, p["depth_multiplier"], axis=-1)                      # channel ic * m + j reads ic
    acc = (cols * p["weights"].astype(np.int64)[None, None]).sum(axis=(2, 3))   # (oh, ow, out_c)
    return requantize_reference(acc, step)


def conv_kernels(step: Step) -> tuple[str, ...]:
    """CONV_2D's kernel files: im2col on the int8 or the int4 dot products."""
    return ("dot_int4", "fully_connected_int4", "conv_2d_int4") if step.params["weight_bits"] == 4 else \
        ("dot", "fully_connected", "conv_2d")


def depthwise_kernels(step: Step) -> tuple[str, ...]:
    return ("depthwise_conv_2d_int4",) if step.params["weight_bits"] == 4 else ("depthwise_conv_2d",)


CONV_2D = OpSpec("CONV_2D", plan_conv_2d, emit_conv_2d, reference_conv_2d, kernels=conv_kernels, tflm="AddConv2D")
DEPTHWISE_CONV_2D = OpSpec("DEPTHWISE_CONV_2D", plan_depthwise_conv_2d, emit_depthwise_conv_2d,
                           reference_depthwise_conv_2d, kernels=depthwise_kernels, tflm="AddDepthwiseConv2D")
