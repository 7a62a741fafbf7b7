"""ADD (two tensors of one shape: a residual connection), RELU and RELU6 as ops of their own."""
from __future__ import annotations

import numpy as np

from .. import fixedpoint as fp
from . import OpSpec, Step, activation, flat, int8_io, need

ADD_LEFT_SHIFT = 20  # TFLM's for int8: the inputs are shifted up by 20 bits before they are rescaled


# ---- ADD -----------------------------------------------------------------------------------------

def plan_add(node) -> Step:
    """TFLM's CalculateOpDataAdd: each input rescaled to twice the larger input scale, the sum to the output."""
    int8_io(node, inputs=2)
    a, b, y = node.inputs[0], node.inputs[1], node.outputs[0]
    need(a.shape == b.shape == y.shape, node, f"broadcasting {list(a.shape)} + {list(b.shape)} is not supported")
    need(not (a.constant or b.constant), node, "adding a constant tensor is not supported")
    twice_max = 2 * max(a.scale[0], b.scale[0])
    multipliers = [fp.quantize_multiplier(r) for r in
                   (a.scale[0] / twice_max, b.scale[0] / twice_max, twice_max / ((1 << ADD_LEFT_SHIFT) * y.scale[0]))]
    need(all(shift <= 0 for _, shift in multipliers), node, "a rescaling multiplier is not below one")
    (am, ash), (bm, bsh), (om, osh) = multipliers
    low, high = fp.activation_range(activation(node), y.scale[0], y.zero_point[0])
    params = {"count": flat(y), "a_offset": -a.zero_point[0], "b_offset": -b.zero_point[0], "left_shift": ADD_LEFT_SHIFT,
              "a_multiplier": am, "a_shift": ash, "b_multiplier": bm, "b_shift": bsh, "out_multiplier": om,
              "out_shift": osh, "output_offset": y.zero_point[0], "act_min": low, "act_max": high}
    return Step(node, params)


def emit_add(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    return [f"add({inputs[0]}, {inputs[1]}, {output}, {p['count']}, {p['a_offset']}, {p['b_offset']}, {p['left_shift']}, "
            f"{p['a_multiplier']}, {p['a_shift']}, {p['b_multiplier']}, {p['b_shift']}, {p['out_multiplier']}, "
            f"{p['out_shift']}, {p['output_offset']}, {p['act_min']}, {p['act_max']});"]


def reference_add(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    mbqm = fp.multiply_by_quantized_multiplier
    x = mbqm((inputs[0].astype(np.int64) + p["a_offset"]) << p["left_shift"], p["a_multiplier"], p["a_shift"])
    y = mbqm((inputs[1].astype(np.int64) + p["b_offset"]) << p["left_shift"], p["b_multiplier"], p["b_shift"])
    out = mbqm(fp.wrap32(x + y), p["out_multiplier"], p["out_shift"]) + p["output_offset"]
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


# ---- RELU and RELU6 ------------------------------------------------------------------------------

def plan_relu(node) -> Step:
    """TFLM's CalculateReluOpData: the multiplier is input scale / output scale divided in float32."""
    int8_io(node)
    x, y = node.inputs[0], node.outputs[0]
    multiplier, shift = fp.quantize_multiplier(float(np.float32(x.scale[0]) / np.float32(y.scale[0])))
    params = {"count": flat(y), "input_zero_point": x.zero_point[0], "multiplier": multiplier, "shift": shift,
              "output_offset": y.zero_point[0], "act_min": max(-128, y.zero_point[0]), "act_max": 127}
    return Step(node, params)


def emit_relu(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    return [f"relu({inputs[0]}, {output}, {p['count']}, {p['input_zero_point']}, {p['multiplier']}, {p['shift']}, "
            f"{p['output_offset']}, {p['act_min']}, {p['act_max']});"]


def reference_relu(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    out = p["output_offset"] + fp.multiply_by_quantized_multiplier(inputs[0].astype(np.int64) - p["input_zero_point"],
                                                                   p["multiplier"], p["shift"])
    return np.clip(out, p["act_min"], p["act_max"]).astype(np.int8)


def plan_relu6(node) -> Step:
    """TFLM's Relu6: a clamp between the input's zero and its 6, in the input's quantization."""
    int8_io(node)
    x = node.inputs[0]
    six = int(np.clip(fp.round_half_away(np.float32(6.0) / np.float32(x.scale[0])) + x.zero_point[0], -128, 127))
    return Step(node, {"count": flat(x), "low": x.zero_point[0], "high": six})


def emit_relu6(step: Step, inputs: list[str], output: str, scratch: str, names: dict) -> list[str]:
    p = step.params
    return [f"relu6({inputs[0]}, {output}, {p['count']}, {p['low']}, {p['high']});"]


def reference_relu6(step: Step, inputs: list[np.ndarray]) -> np.ndarray:
    p = step.params
    return np.clip(inputs[0], p["low"], p["high"]).astype(np.int8)


ADD = OpSpec("ADD", plan_add, emit_add, reference_add, kernels=("add",), tflm="AddAdd")
RELU = OpSpec("RELU", plan_relu, emit_relu, reference_relu, kernels=("relu",), tflm="AddRelu")
RELU6 = OpSpec("RELU6", plan_relu6, emit_relu6, reference_relu6, kernels=("relu",), tflm="AddRelu6")
