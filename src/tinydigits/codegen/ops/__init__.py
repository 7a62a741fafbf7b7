"""The op table: what each TFLite op means to tinydigits, in one place.

An `OpSpec` says, for one builtin op, everything the generator and every report need:

    plan(node)                      -> Step: the op's integers (shapes, offsets, multipliers), its constant
                                       arrays in the order the C kernel reads them, MACs and scratch bytes
    emit(step, inputs, output, scratch) -> the C statements of the call, on arena addresses
    reference(step, inputs)         -> the int8 output, in numpy, as TFLM's reference kernel computes it
    kernels                         -> the files of c_templates/kernels/ its C needs (in order), or a function of
                                       the step for an op whose kernel its plan picks (int8 or int4 weights)
    tflm                            -> its MicroMutableOpResolver registration ("AddConv2D")
    alias                           -> the output is the input's bytes, reinterpreted (RESHAPE): no code

A new op is one entry in OPS plus its kernel file. The planner (codegen.generate), the memory plan
(codegen.memory), the tests (tests/test_ops.py runs every entry's C against its reference and TFLM)
and the reports (flash, MACs, arena in `boards`, `search`, the web page) all read this table.

    spec = OPS["CONV_2D"]
    step = spec.plan(node)            # step.macs, step.weight_bytes, step.scratch_bytes
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from ...errors import TinyDigitsError
from ...tflite import Node

C_TYPES = {np.dtype(np.int8): "int8_t", np.dtype(np.uint8): "uint8_t", np.dtype(np.int32): "int32_t",
           np.dtype(np.float32): "float"}  # uint8: int4 weights, packed two per byte


@dataclass
class Step:
    """One op of the model, planned: everything its C call and its numpy reference need."""
    node: Node
    params: dict                                       # integers and arrays (TFLite's layouts) by name
    constants: dict = field(default_factory=dict)      # name -> (array in the kernel's layout, #if guard or "")
    macs: int = 0                                      # multiply-accumulates per inference
    scratch_bytes: int = 0                             # arena bytes the kernel needs during the call

    @property
    def weight_bytes(self) -> int:
        """Bytes of constant tables this op puts in flash (weights, biases, multipliers ...), unguarded ones."""
        return sum(a.nbytes for a, guard in self.constants.values() if not guard)


@dataclass(frozen=True)
class OpSpec:
    name: str
    plan: Callable[[Node], Step]
    emit: Callable[..., list[str]] | None
    reference: Callable[[Step, list[np.ndarray]], np.ndarray]
    kernels: tuple[str, ...] | Callable[[Step], tuple[str, ...]] = ()
    tflm: str = ""
    alias: bool = False
    litert_arithmetic: bool = False  # -DTINYDIGITS_MATCH_LITERT=1 reproduces LiteRT's built-in CPU kernel

    def kernels_of(self, step: Step) -> tuple[str, ...]:
        """The kernel files `step`'s C needs."""
        return self.kernels(step) if callable(self.kernels) else self.kernels


# ---- helpers the entries share ---------------------------------------------------------------

def need(condition: bool, node: Node, why: str) -> None:
    if not condition:
        raise TinyDigitsError(f"{node.op} (op {node.index}): {why}; the C generator cannot run it")


def int8_io(node: Node, inputs: int = 1) -> None:
    """Every activation in and out of `node` is int8 and quantized (the generator runs full-integer models)."""
    for t in [*node.inputs[:inputs], *node.outputs]:
        need(t is not None and t.dtype == "int8" and t.scale, node,
             f"tensor {t.name!r} is {t.dtype if t else 'missing'}, not quantized int8 "
             "(convert with `tinydigits convert`: full-integer int8)")


def same_quantization(node: Node, a, b) -> None:
    need(np.float32(a.scale[0]) == np.float32(b.scale[0]) and a.zero_point[0] == b.zero_point[0], node,
         "input and output quantization differ")


def activation(node: Node) -> str:
    act = node.options.get("fused_activation_function", "NONE")
    need(act in ("NONE", "RELU", "RELU6", "RELU_N1_TO_1"), node, f"fused activation {act} is not supported")
    return act


def dims4(t) -> tuple[int, int, int]:
    """(height, width, channels) of a (1, H, W, C) tensor."""
    shape = t.shape
    if len(shape) != 4 or shape[0] != 1:
        raise TinyDigitsError(f"tensor {t.name!r} has shape {list(shape)}, expected (1, height, width, channels)")
    return tuple(int(d) for d in shape[1:])


def padding(node: Node, in_h: int, in_w: int, f_h: int, f_w: int, out_h: int, out_w: int) -> tuple[int, int]:
    """(top, left) padding as TFLite computes it (ComputePaddingHeightWidth), checked against the output's size."""
    o = node.options
    s_h, s_w = o.get("stride_h", 1), o.get("stride_w", 1)
    need(o.get("dilation_h_factor", 1) == 1 and o.get("dilation_w_factor", 1) == 1, node, "dilation must be 1")
    need(s_h >= 1 and s_w >= 1, node, f"strides must be positive, got {s_h}x{s_w}")
    same = o.get("padding") == "SAME"
    need(same or o.get("padding") == "VALID", node, f"padding {o.get('padding')!r} is not supported")
    expect = ((-(-in_h // s_h), -(-in_w // s_w)) if same else ((in_h - f_h + s_h) // s_h, (in_w - f_w + s_w) // s_w))
    need(expect == (out_h, out_w), node, f"output {out_h}x{out_w} does not follow from the input and options {expect}")
    pad = lambda s, i, f, out: max((out - 1) * s + f - i, 0) // 2 if same else 0  # noqa: E731
    return pad(s_h, in_h, f_h, out_h), pad(s_w, in_w, f_w, out_w)


def flat(t) -> int:
    return t.size


def weight_bits(node: Node, w) -> int:
    """8 or 4: the bits of a filter the C kernels read (int4 values lie in [-8, 7])."""
    need(w is not None and w.constant and w.dtype in ("int8", "int4") and w.scale, node, "weights must be constant int8 or int4")
    need(not any(w.zero_point), node, "asymmetric weights are not supported")
    return 4 if w.dtype == "int4" else 8


# ---- the table ---------------------------------------------------------------------------------
from . import conv, dense, elementwise, pool  # noqa: E402  (the entries use the helpers above)

OPS: dict[str, OpSpec] = {spec.name: spec for spec in (
    dense.FULLY_CONNECTED, dense.SOFTMAX, dense.RESHAPE, dense.STRIDED_SLICE,
    conv.CONV_2D, conv.DEPTHWISE_CONV_2D,
    pool.MAX_POOL_2D, pool.AVERAGE_POOL_2D, pool.MEAN,
    elementwise.ADD, elementwise.RELU, elementwise.RELU6,
)}


def spec_of(node: Node) -> OpSpec:
    if node.op not in OPS:
        raise TinyDigitsError(f"op {node.op} is not supported by the C generator (supported: {', '.join(OPS)})")
    return OPS[node.op]
