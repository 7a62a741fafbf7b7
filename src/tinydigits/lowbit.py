"""Low-bit weights: the grid quantization-aware training rounds to, and the int4 .tflite the converter writes.

A kernel of `bits` (8, 4 or 2) is stored per output channel, symmetric: each channel's scale is its
largest |weight| / LEVELS[bits] and its weights are the integers in [-LEVELS, LEVELS] times that
scale (int8: [-127, 127], as TFLite's converter; int4: [-7, 7], the same rule as ai-edge-quantizer's
int4; 2 bits: ternary {-1, 0, 1}, whose scale is the channel's mean |weight| (BitNet b1.58's absmean:
the largest |weight| would round most weights to zero)). `snap` is that rounding, in numpy or JAX: the
training forward pass (train.fake_quantize) and the converter (convert.to_tflite) call the same code.

An int4 model is TFLite's own full-integer int8 model of the snapped kernels, with each FULLY_CONNECTED,
CONV_2D and DEPTHWISE_CONV_2D filter narrowed to INT4 (`narrow_to_int4`): the int8 values of a snapped
kernel lie exactly on the coarse grid, so the narrowing is exact; the int32 bias is rescaled to the
new filter scale (input scale x int4 scale). INT4 constants are packed two per byte, the low nibble
first, over the flat tensor (`pack_int4`; tflite.py unpacks them): what LiteRT and TFLM read.

    w4 = snap(kernel, axes=(0,), bits=4)             # float kernel on the int4 grid (per output channel)
    int4_model = narrow_to_int4(int8_model, bits=4)  # FC / CONV_2D / DEPTHWISE_CONV_2D filters as INT4
"""
from __future__ import annotations

import numpy as np

from .errors import TinyDigitsError

WEIGHT_BITS = (8, 4, 2)
LEVELS = {8: 127, 4: 7, 2: 1}  # largest |integer| a weight of that many bits is stored as
NARROWED_OPS = ("FULLY_CONNECTED", "CONV_2D", "DEPTHWISE_CONV_2D")  # their filter (input 1) becomes INT4
GRID_TOLERANCE = 0.03  # how close (in int4 steps) an int8 value of a snapped kernel lies to the grid: 0.5 * 7/127 = 0.028


def snap(kernel, axes: tuple[int, ...], bits: int, xp=np):
    """`kernel` rounded to `bits` per output channel (the channel is every axis not in `axes`), symmetric."""
    levels = LEVELS[bits]
    magnitude = xp.abs(kernel)
    size = xp.max(magnitude, axis=axes, keepdims=True) if bits != 2 else xp.mean(magnitude, axis=axes, keepdims=True)
    scale = xp.maximum(size, 1e-12) / levels
    return xp.clip(xp.round(kernel / scale), -levels, levels) * scale


def pack_int4(values: np.ndarray) -> np.ndarray:
    """Integers in [-8, 7] -> uint8, two per byte, the low nibble first (an odd count ends in a 0 nibble)."""
    v = np.asarray(values, np.int64).ravel()
    if v.size and (v.min() < -8 or v.max() > 7):
        raise TinyDigitsError(f"int4 values must be in [-8, 7], got [{v.min()}, {v.max()}]")
    nibbles = (v & 0xF).astype(np.uint8)
    if len(nibbles) % 2:
        nibbles = np.append(nibbles, np.uint8(0))
    return nibbles[0::2] | (nibbles[1::2] << 4)


def _operator_names(schema) -> dict[int, str]:
    return {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}


def narrow_to_int4(int8_model: bytes, bits: int = 4) -> bytes:
    """The int8 model with every FULLY_CONNECTED, CONV_2D and DEPTHWISE_CONV_2D filter as INT4 of `bits`
    levels (4: [-7, 7]; 2: {-1, 0, 1}). The filters must have been snapped to that grid before conversion
    (convert.to_tflite does it); a value off the grid is an error, not a silent second rounding."""
    from ai_edge_litert import schema_py_generated as schema
    from ai_edge_litert.tools import flatbuffer_utils

    levels = LEVELS[bits]
    model = flatbuffer_utils.read_model_from_bytearray(bytearray(int8_model))
    names = _operator_names(schema)
    sub = model.subgraphs[0]
    done: set[int] = set()
    for op in sub.operators:
        code = model.operatorCodes[op.opcodeIndex]
        if names.get(max(code.builtinCode, code.deprecatedBuiltinCode)) not in NARROWED_OPS:
            continue
        inputs = [int(i) for i in op.inputs]
        if inputs[1] in done:
            continue
        x, w = sub.tensors[inputs[0]], sub.tensors[inputs[1]]
        bias = sub.tensors[inputs[2]] if len(inputs) > 2 and inputs[2] >= 0 else None
        if w.type != schema.TensorType.INT8 or model.buffers[w.buffer].data is None:
            raise TinyDigitsError(f"tensor {w.name!r}: only a constant int8 filter can be narrowed to int4")
        _narrow_filter(model, x, w, bias, levels, schema)
        done.add(inputs[1])
    return bytes(flatbuffer_utils.convert_object_to_bytearray(model))


def _narrow_filter(model, x, w, bias, levels: int, schema) -> None:
    """One filter (per-channel int8, on the grid) -> INT4 values and scales; its int32 bias rescaled."""
    q8 = np.asarray(model.buffers[w.buffer].data, np.uint8).view(np.int8).reshape(w.shape).astype(np.float64)
    s8 = np.asarray(w.quantization.scale, np.float64)
    axis = int(w.quantization.quantizedDimension)
    s4 = (s8 * 127 / levels).astype(np.float32)
    shape = [1] * q8.ndim
    shape[axis if len(s8) > 1 else 0] = -1
    exact = q8 * (s8 / s4.astype(np.float64)).reshape(shape)
    q4 = np.round(exact)
    if np.abs(exact - q4).max(initial=0) > GRID_TOLERANCE or np.abs(q4).max(initial=0) > levels:
        raise TinyDigitsError(f"tensor {w.name!r}: its int8 weights are not on the {levels}-level grid "
                              "(snap the kernel before converting)")
    model.buffers[w.buffer].data = pack_int4(q4.astype(np.int64))
    w.type = schema.TensorType.INT4
    w.quantization.scale = [float(s) for s in s4]
    if bias is None:
        return
    b8 = np.asarray(model.buffers[bias.buffer].data, np.uint8).view(np.int32).astype(np.float64)
    old = np.asarray(bias.quantization.scale, np.float64)
    new = np.float32(x.quantization.scale[0]) * s4           # input scale x filter scale, float32 as TFLite
    b4 = np.round(b8 * old / new.astype(np.float64))
    model.buffers[bias.buffer].data = b4.astype(np.int32).view(np.uint8)
    bias.quantization.scale = [float(s) for s in new]
