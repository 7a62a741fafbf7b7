"""int8 .tflite -> C: a TFLM bundle, and a standalone C99 inference with no runtime at all.

The standalone C reproduces TFLite's reference integer kernels exactly (fixed-point multiplier and
shift, gemmlowp rounding, the fixed-point softmax), so its int8 outputs are byte-identical to
LiteRT's reference kernels and to TFLM. Ops it knows: FULLY_CONNECTED (no activation or ReLU),
RESHAPE, AVERAGE_POOL_2D, STRIDED_SLICE (a crop), SOFTMAX. Code is produced by small functions that return strings.

    files = export_c(int8_bytes, Path("out"), source="runs/lesson/model_int8.tflite", arena=2048)
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import numpy as np

from . import escape
from .artifacts import write_text
from .errors import TinyDigitsError
from .softmax_exp import exp_table

SUPPORTED_OPS = ("FULLY_CONNECTED", "RESHAPE", "AVERAGE_POOL_2D", "STRIDED_SLICE", "SOFTMAX")
ROWS_PER_BLOCK = 4  # weight rows the fully-connected kernels compute together (kernel_layout)
ACTIVATION_NONE, ACTIVATION_RELU = 0, 1  # tflite ActivationFunctionType


def c_identifier(name: str) -> str:
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
        raise TinyDigitsError(f"'{name}' is not a valid C identifier")
    return name


def quantize_multiplier(real: float) -> tuple[int, int]:
    """TFLite QuantizeMultiplier: real = multiplier * 2^(shift - 31), multiplier in [2^30, 2^31)."""
    if real == 0:
        return 0, 0
    q, shift = math.frexp(real)
    q_fixed = math.floor(q * (1 << 31) + 0.5)  # TfLiteRound, q > 0
    if q_fixed == 1 << 31:
        q_fixed //= 2
        shift += 1
    if shift < -31:
        return 0, 0
    return int(q_fixed), shift


@dataclass
class Op:
    kind: str
    params: dict = field(default_factory=dict)


def read_tflite(model: bytes):
    """The model's flatbuffer as TFLM's object API tree (ModelT), with a clear error if it is not one."""
    from tflite_micro.python.tflite_micro import runtime

    from .convert import LiteRT

    if len(model) < 8 or model[4:8] != b"TFL3":
        raise TinyDigitsError("not a .tflite model (no TFL3 identifier)")
    LiteRT(model)  # refuses a damaged flatbuffer (offsets, tensor and buffer indices) with one clear error
    try:
        return runtime.convert_bytearray_to_object(bytearray(model))
    except Exception as e:  # flatbuffers raises struct/index errors on damaged files
        raise TinyDigitsError(f"corrupt .tflite model ({type(e).__name__})") from None


def plan(model: bytes) -> tuple[list[Op], dict]:
    """The int8 model as a list of ops with every constant the C needs, plus input/output quantization."""
    m = read_tflite(model)
    graph = m.subgraphs[0]
    tensors = graph.tensors

    def q(i):
        t = tensors[i]
        return np.array(t.quantization.scale, np.float32), np.array(t.quantization.zeroPoint, np.int64)

    def data(i, dtype):
        return np.frombuffer(bytes(m.buffers[tensors[i].buffer].data), dtype)

    def check_int8(i, role):
        if tensors[i].type != 9:  # TensorType.INT8
            raise TinyDigitsError(f"the C generator needs a full-integer int8 model; {role} is not int8 "
                                  "(convert with `tinydigits convert`)")

    check_int8(graph.inputs[0], "the input")
    check_int8(graph.outputs[0], "the output")
    ops = []
    for op in graph.operators:
        name = builtin_name(m, op)
        if name not in SUPPORTED_OPS:
            raise TinyDigitsError(f"op {name} is not supported by the C generator (supported: {', '.join(SUPPORTED_OPS)})")
        (in_scale, in_zp), (out_scale, out_zp) = q(op.inputs[0]), q(op.outputs[0])
        if name == "RESHAPE":
            ops.append(Op("RESHAPE"))
            continue
        if name == "STRIDED_SLICE":
            ops.append(crop_op(op, [tensors[i].shape for i in (op.inputs[0], op.outputs[0])],
                               [data(i, np.int32) for i in op.inputs[1:4]],
                               np.array_equal(in_scale, out_scale) and np.array_equal(in_zp, out_zp)))
            continue
        act = op.builtinOptions.fusedActivationFunction if hasattr(op.builtinOptions, "fusedActivationFunction") else 0
        if act not in (ACTIVATION_NONE, ACTIVATION_RELU):
            raise TinyDigitsError(f"{name} with fused activation {act} is not supported by the C generator")
        act_min = max(-128, int(out_zp[0])) if act == ACTIVATION_RELU else -128
        if name == "FULLY_CONNECTED":
            w_scale, w_zp = q(op.inputs[1])
            weights = data(op.inputs[1], np.int8).reshape(tensors[op.inputs[1]].shape)
            if np.any(w_zp != 0):
                raise TinyDigitsError("FULLY_CONNECTED with asymmetric weights is not supported")
            if len(w_scale) == 1:  # per-tensor: TFLite multiplies the scales in float32 first
                reals = [float(np.float32(in_scale[0] * w_scale[0])) / float(out_scale[0])]
            else:                  # per-channel: in double
                reals = [float(in_scale[0]) * float(s) / float(out_scale[0]) for s in w_scale]
            mult, shift = zip(*(quantize_multiplier(r) for r in reals))
            bias = data(op.inputs[2], np.int32) if len(op.inputs) > 2 and op.inputs[2] >= 0 else np.zeros(len(weights), np.int32)
            ops.append(Op(name, dict(weights=weights, bias=bias, multiplier=list(mult), shift=list(shift),
                                     input_offset=-int(in_zp[0]), output_offset=int(out_zp[0]),
                                     act_min=act_min, act_max=127)))
        elif name == "AVERAGE_POOL_2D":
            o = op.builtinOptions
            shape = tensors[op.inputs[0]].shape  # (1, H, W, C)
            if o.padding != 1 or o.filterHeight != o.filterWidth or o.strideH != o.strideW:  # 1: VALID
                raise TinyDigitsError("AVERAGE_POOL_2D: only square VALID pooling is supported by the C generator")
            if in_scale[0] != out_scale[0] or in_zp[0] != out_zp[0]:
                raise TinyDigitsError("AVERAGE_POOL_2D with rescaling is not supported by the C generator")
            ops.append(Op(name, dict(height=int(shape[1]), width=int(shape[2]), channels=int(shape[3]),
                                     pool=int(o.filterHeight), stride=int(o.strideH), act_min=act_min, act_max=127)))
        elif name == "SOFTMAX":
            if abs(out_scale[0] - 1 / 256) > 1e-9 or out_zp[0] != -128:
                raise TinyDigitsError("SOFTMAX output must have scale 1/256 and zero point -128")
            beta = float(op.builtinOptions.beta)
            real = min(beta * float(in_scale[0]) * (1 << (31 - 5)), (1 << 31) - 1.0)
            mult, left_shift = quantize_multiplier(real)
            radius = math.floor(((1 << 5) - 1) * (1 << (31 - 5)) / (1 << left_shift))
            # LiteRT's float table (TINYDIGITS_MATCH_LITERT): table[255 - v] = expf(-input_scale * beta * v)
            scale = np.float32(-np.float32(in_scale[0]) * np.float32(beta))
            table = np.exp(scale * np.arange(255, -1, -1, dtype=np.float32)).astype(np.float32)
            ops.append(Op(name, dict(input_multiplier=mult, input_left_shift=left_shift, diff_min=-radius, table=table)))
    io = {"input": q(graph.inputs[0]), "output": q(graph.outputs[0]),
          "input_size": int(np.prod(tensors[graph.inputs[0]].shape)),
          "output_size": int(np.prod(tensors[graph.outputs[0]].shape))}
    return ops, io


def crop_op(op, shapes, constants, same_quantization: bool) -> Op:
    """STRIDED_SLICE as the C generator runs it: a crop of (1, H, W, C), stride 1, same quantization."""
    (_, height, width, channels), (_, out_h, out_w, out_c) = shapes
    begin, _, strides = constants
    o = op.builtinOptions
    if (len(begin) != 4 or np.any(strides != 1) or out_c != channels or not same_quantization
            or o.ellipsisMask or o.newAxisMask or o.shrinkAxisMask):
        raise TinyDigitsError("STRIDED_SLICE: only a stride-1 crop of height and width is supported by the C generator")
    top, left = (0 if o.beginMask >> axis & 1 else int(begin[axis]) for axis in (1, 2))
    return Op("STRIDED_SLICE", dict(width=int(width), channels=int(channels), top=top, left=left,
                                    out_h=int(out_h), out_w=int(out_w)))


def builtin_name(m, op) -> str:
    """The builtin op name ('FULLY_CONNECTED', ...) of operator `op` in the ModelT `m`."""
    from tflite_micro.python.tflite_micro import runtime

    return op_name(runtime.get_builtin_code_from_operator_code(m.operatorCodes[op.opcodeIndex]))


def op_names(model: bytes) -> list[str]:
    """The builtin ops of a .tflite model, in graph order."""
    m = read_tflite(model)
    return [builtin_name(m, op) for op in m.subgraphs[0].operators]


def op_name(code: int) -> str:
    from tflite_micro.tensorflow.lite.micro.python import schema_py_generated as schema

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    return names.get(code, f"builtin #{code}")


# ---------------------------------------------------------------------------------- C text

def kernel_layout(weights: np.ndarray) -> np.ndarray:
    """(units, depth) int8 weights -> the 1-D order the C kernels read (`fully_connected` in kernels.c).

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


def c_array(ctype: str, name: str, values, per_line: int = 16, attributes: str = "TINYDIGITS_FLASH") -> str:
    if ctype == "float":  # exact: C99 hexadecimal float literals
        values = [f"{float(v).hex()}f" for v in np.asarray(values, np.float32).ravel()]
        per_line = 4
    else:
        values = [int(v) for v in np.asarray(values).ravel()]
    rows = [", ".join(str(v) for v in values[i:i + per_line]) for i in range(0, len(values), per_line)]
    return (f"static const {ctype} {c_identifier(name)}[{len(values)}] {attributes} = {{\n    "
            + ",\n    ".join(rows) + "\n};\n")


def generated_banner(source: str, command: str, comment: str = "c") -> str:
    """What made a file, as a comment of its format ("c", "ino" or "make"); the path and the command go
    through escape.py, so no name can end the comment (`*/`) or add a line of make code."""
    lines = [f"Generated by tinydigits from {source}", f"with `{command}`.", "Do not edit: regenerate instead."]
    if comment == "make":
        return "".join(f"# {escape.make_comment(line)}\n" for line in lines)
    say = escape.ino_comment if comment == "ino" else escape.c_comment
    return "/* " + "\n * ".join(say(line) for line in lines) + " */\n"


def model_header(io: dict, banner: str) -> str:
    (in_s, in_z), (out_s, out_z) = io["input"], io["output"]
    return f"""{banner}#ifndef TINYDIGITS_MODEL_H
#define TINYDIGITS_MODEL_H

#include <stdint.h>

#define TINYDIGITS_INPUT_SIZE {io['input_size']}
#define TINYDIGITS_OUTPUT_SIZE {io['output_size']}
/* int8 quantization: real = (q - zero_point) * scale; a pixel p/255 enters as round(p/255/scale) + zero_point */
#define TINYDIGITS_INPUT_SCALE {float(in_s[0]):.9g}f
#define TINYDIGITS_INPUT_ZERO_POINT ({int(in_z[0])})
#define TINYDIGITS_OUTPUT_SCALE {float(out_s[0]):.9g}f
#define TINYDIGITS_OUTPUT_ZERO_POINT ({int(out_z[0])})

#ifdef __cplusplus
extern "C" {{
#endif

/* Runs the int8 model on one image: input[784] int8, fills output[10] int8; returns the argmax.
   Reentrant: no heap, no global mutable state; uses a few hundred bytes of stack. */
int tinydigits_predict(const int8_t *input, int8_t *output);

#ifdef __cplusplus
}}
#endif

#endif
"""


def model_source(ops: list[Op], io: dict, banner: str) -> str:
    widths = [io["input_size"]] + [len(op.params["bias"]) for op in ops if op.kind == "FULLY_CONNECTED"]
    widths += [op.params["height"] * op.params["width"] * op.params["channels"] // op.params["pool"] ** 2
               for op in ops if op.kind == "AVERAGE_POOL_2D"]
    widths += [op.params["out_h"] * op.params["out_w"] * op.params["channels"] for op in ops if op.kind == "STRIDED_SLICE"]
    buffer = max(w for w in widths[1:] + [io["output_size"]])
    consts, calls = [], []
    src, hops = "input", 0
    for i, op in enumerate(ops):
        p = op.params
        dst = "output" if i == len(ops) - 1 else f"buf{hops % 2}"
        if op.kind == "RESHAPE":
            continue
        if op.kind == "FULLY_CONNECTED":
            units, depth = p["weights"].shape
            # sum(w * (x + offset)) + b == sum(w * x) + (b + offset * sum(w)): one add less per weight
            folded = p["bias"].astype(np.int64) + p["input_offset"] * p["weights"].astype(np.int64).sum(axis=1)
            consts += [c_array("int8_t", f"weights{i}", kernel_layout(p["weights"]), attributes="TINYDIGITS_FLASH TINYDIGITS_WORD_ALIGNED"),
                       c_array("int32_t", f"bias{i}", folded),
                       c_array("int32_t", f"multiplier{i}", p["multiplier"]), c_array("int8_t", f"shift{i}", p["shift"])]
            calls.append(f"    fully_connected({src}, {dst}, {depth}, {units}, weights{i}, bias{i}, multiplier{i}, shift{i}, "
                         f"{int(len(p['multiplier']) > 1)}, {p['output_offset']}, {p['act_min']}, {p['act_max']});")
        elif op.kind == "AVERAGE_POOL_2D":
            calls.append(f"    average_pool({src}, {dst}, {p['height']}, {p['width']}, {p['channels']}, {p['pool']}, "
                         f"{p['stride']}, {p['act_min']}, {p['act_max']});")
        elif op.kind == "STRIDED_SLICE":
            calls.append(f"    crop({src}, {dst}, {p['width']}, {p['channels']}, {p['top']}, {p['left']}, "
                         f"{p['out_h']}, {p['out_w']});")
        elif op.kind == "SOFTMAX":
            exps = exp_table(p["input_multiplier"], p["input_left_shift"], p["diff_min"])
            consts.append(f"#if TINYDIGITS_MATCH_LITERT\n{c_array('float', f'softmax_table{i}', p['table'])}#endif\n")
            consts.append(f"#if TINYDIGITS_SOFTMAX_EXP_TABLE && !TINYDIGITS_MATCH_LITERT\n{c_array('int32_t', f'softmax_exps{i}', exps, per_line=8)}#endif\n")
            calls += ["#if TINYDIGITS_MATCH_LITERT",
                      f"    softmax({src}, {dst}, {io['output_size']}, softmax_table{i});",
                      "#elif TINYDIGITS_SOFTMAX_EXP_TABLE",
                      f"    softmax({src}, {dst}, {io['output_size']}, softmax_exps{i}, {len(exps)});",
                      "#else",
                      f"    softmax({src}, {dst}, {io['output_size']}, {p['input_multiplier']}, "
                      f"{p['input_left_shift']}, {p['diff_min']});",
                      "#endif"]
        src, hops = dst, hops + 1
    if src != "output":
        raise TinyDigitsError("the model's last op must write the output")
    kernels = resources.files("tinydigits").joinpath("c_templates/kernels.c").read_text()
    used = "".join(f"#define TINYDIGITS_USES_{kind} {int(any(op.kind == kind for op in ops))}\n"
                   for kind in SUPPORTED_OPS if kind != "RESHAPE")
    # every weight in [-127, 127], as TFLite quantizes them: the AVR kernel adds two products in 16 bits
    symmetric = all(op.params["weights"].min() >= -127 for op in ops if op.kind == "FULLY_CONNECTED")
    used += f"#define TINYDIGITS_WEIGHTS_SYMMETRIC {int(symmetric)}\n"
    return f"""{banner}#include "tinydigits_model.h"

/* By default the int8 arithmetic is TFLite's reference integer kernels, as in TFLite Micro: no float,
   outputs byte-identical to the TFLM interpreter. Build with -DTINYDIGITS_MATCH_LITERT=1 to follow
   LiteRT's CPU kernels instead (single-rounding requantization, float softmax): byte-identical to LiteRT. */
#ifndef TINYDIGITS_MATCH_LITERT
#define TINYDIGITS_MATCH_LITERT 0
#endif
/* -DTINYDIGITS_NAIVE_KERNELS=1 builds the portable reference kernels on every target (to compare). */
#ifndef TINYDIGITS_NAIVE_KERNELS
#define TINYDIGITS_NAIVE_KERNELS 0
#endif
/* The fast kernels read 4 weights with one 32-bit load, which must be aligned on some cores. */
#if defined(__GNUC__)
#define TINYDIGITS_WORD_ALIGNED __attribute__((aligned(4)))
#else
#define TINYDIGITS_WORD_ALIGNED
#endif
{used}
{kernels}
/* ---- the model: int8 weights, int32 biases, per-layer requantization constants -------------- */
{"".join(consts)}
int tinydigits_predict(const int8_t *input, int8_t *output) {{
    int8_t buf0[{buffer}], buf1[{buffer}];  /* activations ping-pong between two stack buffers */
    (void)buf0; (void)buf1;
{chr(10).join(calls)}
    int best = 0;
    for (int c = 1; c < TINYDIGITS_OUTPUT_SIZE; ++c) if (output[c] > output[best]) best = c;
    return best;
}}
"""


def write_standalone(model: bytes, out: Path, source: str, command: str) -> list[Path]:
    """DIR/c/: tinydigits_model.h/.c, main.c (classifies raw 784-byte files) and a Makefile."""
    ops, io = plan(model)
    banner = generated_banner(source, command)
    templates = resources.files("tinydigits").joinpath("c_templates")
    files = {
        "tinydigits_model.h": model_header(io, banner),
        "tinydigits_model.c": model_source(ops, io, banner),
        "main.c": banner + templates.joinpath("main.c").read_text(),
        "Makefile": generated_banner(source, command, "make") + templates.joinpath("Makefile").read_text(),
    }
    return [write_text(out / name, text) for name, text in files.items()]
