"""FULLY_CONNECTED, SOFTMAX, RESHAPE and STRIDED_SLICE (a crop): the ops of the lesson's dense models.

Each op is a `plan` (node -> Step), an `emit` (the C call) and a `reference` (numpy, TFLM's
reference kernel computed the way TFLM computes it), gathered into its OpSpec entry at the end.
"""
from __future__ import annotations

import numpy as np

from ...lowbit import pack_int4
from .. import fixedpoint as fp
from . import OpSpec, Step, activation, flat, int8_io, need, same_quantization, weight_bits

ROWS_PER_BLOCK = 4  # weight rows the dot-product kernels compute together (kernel_layout)
SOFTMAX_INPUT_BITS = 5  # gemmlowp: the scaled differences are Q5.26
EXP_CUTOFF = -(15 << 26)  # softmax.c skips exp(x) for x <= -15 in Q5.26: too small to count (same bytes)


def kernel_layout(weights: np.ndarray) -> np.ndarray:
    """(units, depth) int8 weights -> the 1-D order the C kernels read (`block_dot` in kernels/dot.c).

    Rows go in blocks of ROWS_PER_BLOCK (the last block may have fewer); each row is padded with zeros to
    a multiple of 4 bytes; within a block the rows take turns, 4 bytes at a time: row 0's bytes 0-3, row
    1's bytes 0-3, ..., row 0's bytes 4-7, ... So one 32-bit load of the input serves 4 rows, and each
    row's next 4 weights are one aligned 32-bit load away. Same bytes, only padding added.
    """
    units, depth = weights.shape
    padded = np.zeros((units, -(-depth // 4) * 4), np.int8)
    padded[:, :depth] = weights
    blocks = [padded[first:first + ROWS_PER_BLOCK] for first in range(0, units, ROWS_PER_BLOCK)]
    return np.concatenate([b.reshape(len(b), -1, 4).transpose(1, 0, 2).ravel() for b in blocks])


INT4_GROUP = 8  # int4 weights per 32-bit word of kernel_layout_int4


def kernel_layout_int4(weights: np.ndarray) -> np.ndarray:
    """(units, depth) int4 values -> the uint8 bytes the int4 dot kernels read (kernels/dot_int4.c), packed.

    Each row is padded with zeros to a multiple of 8 weights; every 8 weights w0..w7 become 4 bytes, byte j
    holding w_j in its low nibble and w_{j+4} in its high one (two's complement). So a Cortex-M4 turns the
    word into two words of 4 int8 (x 16) with a shift and two masks, and pairs them with the inputs as
    for int8 weights. The rows then go in blocks of 4 taking turns a word at a time (`kernel_layout`'s
    order): each row's next 8 weights are one aligned 32-bit load away.
    """
    units, depth = weights.shape
    padded = np.zeros((units, -(-depth // INT4_GROUP) * INT4_GROUP), np.int64)
    padded[:, :depth] = weights
    order = padded.reshape(units, -1, 2, 4).transpose(0, 1, 3, 2)   # (units, groups, j, low/high): w_j, w_{j+4}
    packed = pack_int4(order).reshape(units, -1)                     # (units, 4 bytes per group)
    return kernel_layout(packed.view(np.int8)).view(np.uint8)


def dot_constants(weights: np.ndarray, bias: np.ndarray, input_offset: int, reals: list[float],
                  bits: int = 8) -> tuple[dict, dict]:
    """What the dot-product kernels read for (units, depth) weights of `bits` (8 or 4): the params and the
    flash constants.

    sum(w * (x + offset)) + b == sum(w * x) + (b + offset * sum(w)): the offset is folded into the bias.
    """
    multiplier, shift = zip(*(fp.quantize_multiplier(r) for r in reals))
    folded = bias.astype(np.int64) + input_offset * weights.astype(np.int64).sum(axis=1)
    params = {"weights": weights, "bias": bias, "multiplier": np.array(multiplier, np.int64), "weight_bits": bits,
              "shift": np.array(shift, np.int64), "input_offset": input_offset, "per_channel": int(len(reals) > 1)}
    layout = kernel_layout_int4(weights) if bits == 4 else kernel_layout(weights)
    constants = {"weights": (layout, ""), "bias": (folded.astype(np.int32), ""),
                 "multiplier": (np.array(multiplier, np.int32), ""), "shift": (np.array(shift, np.int8), "")}
    return params, constants


def requantize_reference(acc: np.ndarray, step: Step) -> np.ndarray:
    """(..., channels) int64 accumulators + bias -> int8 outputs, per channel, clamped."""
    p = step.params
    channels = acc.shape[-1]
    mult = np.broadcast_to(p["multiplier"], (channels,)) if p["per_channel"] else np.full(channels, p["multiplier"][0])
    shift = np.broadcast_to(p["shift"], (channels,)) if p["per_channel"] else np.full(channels, p["shift"][0])
    out = fp.multiply_by_quantized_multiplier(fp.wrap32(acc + p["bias"]), mult, shift) + p["output_offset"]
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


# ---- FULLY_CONNECTED ---------------------------------------------------------------------------

def plan_fully_connected(node) -> Step:
    int8_io(node)
    x, w = node.inputs[0], node.inputs[1]
    b = node.inputs[2] if len(node.inputs) > 2 else None
    y = node.outputs[0]
    bits = weight_bits(node, w)
    need(node.options.get("weights_format", 0) == 0, node, "shuffled weights are not supported")
    units, depth = w.shape
    rows = flat(x) // depth
    need(rows * depth == flat(x) and rows * units == flat(y), node, f"shapes {x.shape} x {w.shape} -> {y.shape} do not match")
    in_s, out_s = x.scale[0], y.scale[0]
    if len(w.scale) == 1:  # per-tensor: TFLite multiplies the two scales in float32 first
        reals = [float(np.float32(np.float32(in_s) * np.float32(w.scale[0]))) / out_s]
    else:                  # per-channel: in double
        reals = [in_s * s / out_s for s in w.scale]
    bias = b.data.astype(np.int64) if b is not None and b.constant else np.zeros(units, np.int64)
    params, constants = dot_constants(w.data.astype(np.int8), bias, -x.zero_point[0], reals, bits)
    low, high = fp.activation_range(activation(node), out_s, y.zero_point[0])
    params.update(depth=depth, units=units, rows=rows, output_offset=y.zero_point[0], act_min=low, act_max=high)
    return Step(node, params, constants, macs=rows * units * depth)


def dot_kernels(step: Step) -> tuple[str, ...]:
    """The kernel files of a FULLY_CONNECTED step: the int8 or the int4 dot products."""
    return ("dot_int4", "fully_connected_int4") if step.params["weight_bits"] == 4 else ("dot", "fully_connected")


def emit_fully_connected(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    kernel = "fully_connected_int4" if p["weight_bits"] == 4 else "fully_connected"
    args = (f"{p['depth']}, {p['units']}, {names['weights']}, {names['bias']}, {names['multiplier']}, {names['shift']}, "
            f"{p['per_channel']}, {p['output_offset']}, {p['act_min']}, {p['act_max']}")
    if p["rows"] == 1:
        return [f"{kernel}({inputs[0]}, {output}, {args});"]
    return [f"for (int r = 0; r < {p['rows']}; ++r)",
            f"    {kernel}({inputs[0]} + r * {p['depth']}, {output} + r * {p['units']}, {args});"]


def reference_fully_connected(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    x = inputs[0].reshape(p["rows"], p["depth"]).astype(np.int64) + p["input_offset"]
    return requantize_reference(x @ p["weights"].astype(np.int64).T, step)


# ---- SOFTMAX -----------------------------------------------------------------------------------

def plan_softmax(node) -> Step:
    int8_io(node)
    x, y = node.inputs[0], node.outputs[0]
    need(abs(y.scale[0] - 1 / 256) < 1e-9 and y.zero_point[0] == -128, node, "output must have scale 1/256, zero point -128")
    beta = float(node.options.get("beta", 1.0))
    real = min(beta * x.scale[0] * (1 << (31 - SOFTMAX_INPUT_BITS)), (1 << 31) - 1.0)
    multiplier, left_shift = fp.quantize_multiplier(real)
    radius = int(((1 << SOFTMAX_INPUT_BITS) - 1) * (1 << (31 - SOFTMAX_INPUT_BITS)) / (1 << left_shift))
    depth = x.shape[-1]
    params = {"depth": depth, "rows": flat(x) // depth, "input_multiplier": multiplier, "input_left_shift": left_shift,
              "diff_min": -radius}
    exps = exp_table(multiplier, left_shift, -radius)
    # LiteRT's float table (TINYDIGITS_MATCH_LITERT): table[255 - v] = expf(-input_scale * beta * v)
    scale = np.float32(-np.float32(x.scale[0]) * np.float32(beta))
    table = np.exp(scale * np.arange(255, -1, -1, dtype=np.float32)).astype(np.float32)
    constants = {"table": (table, "TINYDIGITS_MATCH_LITERT"),
                 "exps": (np.array(exps, np.int32), "TINYDIGITS_SOFTMAX_EXP_TABLE && !TINYDIGITS_MATCH_LITERT")}
    return Step(node, params, constants)


def emit_softmax(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    lines = []
    for r in range(p["rows"]):
        src, dst = (f"{inputs[0]} + {r * p['depth']}", f"{output} + {r * p['depth']}") if r else (inputs[0], output)
        lines += ["#if TINYDIGITS_MATCH_LITERT", f"softmax({src}, {dst}, {p['depth']}, {names['table']});",
                  "#elif TINYDIGITS_SOFTMAX_EXP_TABLE",
                  f"softmax({src}, {dst}, {p['depth']}, {names['exps']}, {len(step.constants['exps'][0])});", "#else",
                  f"softmax({src}, {dst}, {p['depth']}, {p['input_multiplier']}, {p['input_left_shift']}, {p['diff_min']});",
                  "#endif"]
    return lines


def scaled_exp(diff, step_or_params) -> np.ndarray:
    """exp of the int8 differences x - max(x) in Q0.31, as TFLite's softmax computes it (0 below diff_min)."""
    p = step_or_params
    diff = np.asarray(diff, np.int64)
    rescaled = fp.srdhm(fp.wrap32(diff * (1 << p["input_left_shift"])), p["input_multiplier"])
    return np.where(diff >= p["diff_min"], fp.exp_on_negative_values(rescaled), 0)


def reference_softmax(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    x = inputs[0].reshape(p["rows"], p["depth"]).astype(np.int64)
    diff = x - x.max(axis=1, keepdims=True)
    exps = scaled_exp(diff, p)
    sum_of_exps = fp.rdbpot(exps, 12).sum(axis=1, keepdims=True)        # Q12.19
    headroom_plus_one = fp.count_leading_zeros32(sum_of_exps)
    num_bits_over_unit = 12 - headroom_plus_one
    shifted_sum_minus_one = fp.wrap32((sum_of_exps << headroom_plus_one) - (1 << 31))
    shifted_scale = fp.one_over_one_plus_x_for_x_in_0_1(shifted_sum_minus_one)
    out = fp.rdbpot(fp.srdhm(shifted_scale, exps), num_bits_over_unit + 31 - 8) - 128
    return np.where(diff >= p["diff_min"], np.clip(out, -128, 127), -128).astype(np.int8)


def stored_exps(diffs, input_multiplier: int, input_left_shift: int, diff_min: int) -> np.ndarray:
    """What softmax.c stores in exps[] for each difference d <= 0: scaled_exp, or 0 where it skips one
    too small to count (x <= -15 in Q5.26: it adds nothing to the sum and gives -128 either way)."""
    p = {"input_multiplier": input_multiplier, "input_left_shift": input_left_shift, "diff_min": diff_min}
    diffs = np.asarray(diffs, np.int64)
    rescaled = fp.srdhm(fp.wrap32(diffs * (1 << input_left_shift)), input_multiplier)
    return np.where((rescaled > EXP_CUTOFF) & (diffs >= diff_min), scaled_exp(diffs, p), 0)


def exp_table(input_multiplier: int, input_left_shift: int, diff_min: int) -> list[int]:
    """table[-d] = the exponential softmax.c computes for the difference d = 0, -1, ... to the last nonzero one.

    The Cortex-M0 build reads it instead of computing exp (~300 instructions each there, with no
    32 x 32 -> 64-bit multiply): one value per possible difference, computed as the C does it.
    """
    table = [int(v) for v in stored_exps(-np.arange(256), input_multiplier, input_left_shift, diff_min)]
    while table and table[-1] == 0:
        table.pop()
    return table


# ---- RESHAPE and STRIDED_SLICE -------------------------------------------------------------------

def plan_reshape(node) -> Step:
    int8_io(node)
    x, y = node.inputs[0], node.outputs[0]
    same_quantization(node, x, y)
    need(flat(x) == flat(y), node, f"{list(x.shape)} and {list(y.shape)} hold different numbers of values")
    return Step(node, {})


def plan_strided_slice(node) -> Step:
    """STRIDED_SLICE as the C runs it: a stride-1 crop of height and width of (1, H, W, C)."""
    int8_io(node)
    x, y = node.inputs[0], node.outputs[0]
    same_quantization(node, x, y)
    begin, strides = (t.data if t is not None and t.constant else None for t in (node.inputs[1], node.inputs[3]))
    o = node.options
    need(len(x.shape) == 4 and len(y.shape) == 4 and begin is not None and len(begin) == 4 and strides is not None
         and np.all(strides == 1) and y.shape[3] == x.shape[3] and y.shape[0] == 1
         and not (o.get("ellipsis_mask") or o.get("new_axis_mask") or o.get("shrink_axis_mask")),
         node, "only a stride-1 crop of height and width is supported")
    top, left = (0 if o.get("begin_mask", 0) >> axis & 1 else int(begin[axis]) for axis in (1, 2))
    params = {"width": x.shape[2], "channels": x.shape[3], "top": top, "left": left, "out_h": y.shape[1], "out_w": y.shape[2]}
    return Step(node, params)


def emit_strided_slice(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    return [f"crop({inputs[0]}, {output}, {p['width']}, {p['channels']}, {p['top']}, {p['left']}, {p['out_h']}, {p['out_w']});"]


def reference_strided_slice(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    x = inputs[0].reshape(-1, p["width"], p["channels"])
    return x[p["top"]:p["top"] + p["out_h"], p["left"]:p["left"] + p["out_w"]].copy()


FULLY_CONNECTED = OpSpec("FULLY_CONNECTED", plan_fully_connected, emit_fully_connected, reference_fully_connected,
                         kernels=dot_kernels, tflm="AddFullyConnected", litert_arithmetic=True)
SOFTMAX = OpSpec("SOFTMAX", plan_softmax, emit_softmax, reference_softmax, kernels=("softmax",), tflm="AddSoftmax",
                 litert_arithmetic=True)
RESHAPE = OpSpec("RESHAPE", plan_reshape, None, lambda step, inputs: inputs[0].copy(), tflm="AddReshape", alias=True,
                 litert_arithmetic=True)
STRIDED_SLICE = OpSpec("STRIDED_SLICE", plan_strided_slice, emit_strided_slice, reference_strided_slice,
                       kernels=("strided_slice",), tflm="AddStridedSlice", litert_arithmetic=True)
