"""A .tflite file as a small typed graph: what every other module reads a model through.

A `Graph` holds `Tensor`s (shape, dtype, quantization, and the constant data of weights and
biases, decoded: int4 weights are unpacked to one int8 value each) and `Node`s (the builtin op's
name, its input and output tensors, its options as a dict with TFLite's field names in
snake_case and enums as names: `{"padding": "SAME", "stride_w": 2, "fused_activation_function":
"RELU"}`). Nothing else: no runtime, no interpreter. The flatbuffer is read with the schema that
LiteRT ships (`ai_edge_litert.schema_py_generated`, pure Python), and a damaged file is one
TinyDigitsError line, checked before anything uses it.

    graph = read(Path("runs/lesson/model_int8.tflite").read_bytes())
    [node.op for node in graph.nodes]      # ['RESHAPE', 'FULLY_CONNECTED', 'FULLY_CONNECTED', 'SOFTMAX']
    graph.nodes[1].inputs[1].data.shape    # (20, 784) int8 weights
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from .errors import TinyDigitsError

IDENTIFIER = b"TFL3"  # bytes 4-8 of every .tflite flatbuffer
DTYPES = {0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 6: "bool", 7: "int16", 9: "int8",
          10: "float64", 17: "int4"}  # schema TensorType -> name; others are refused by name
NUMPY = {"float32": np.float32, "float16": np.float16, "int32": np.int32, "uint8": np.uint8, "int64": np.int64,
         "bool": np.bool_, "int16": np.int16, "int8": np.int8, "float64": np.float64}
ENUM_OPTIONS = {"padding": "Padding", "fused_activation_function": "ActivationFunctionType"}


def _schema():
    from ai_edge_litert import schema_py_generated as schema  # pure Python flatbuffers code, no runtime

    return schema


@dataclass(frozen=True, eq=False)
class Tensor:
    index: int
    name: str
    shape: tuple[int, ...]
    dtype: str                                  # "int8", "int32", "int4", "float32", ...
    scale: tuple[float, ...] = ()               # quantization: real = (q - zero_point) * scale
    zero_point: tuple[int, ...] = ()
    quantized_dimension: int = 0                # the axis of per-channel scales
    data: np.ndarray | None = field(default=None, repr=False)  # constants only, in `shape` (int4 unpacked to int8)

    @property
    def size(self) -> int:
        return int(np.prod(self.shape, dtype=np.int64))

    @property
    def constant(self) -> bool:
        return self.data is not None

    @property
    def per_channel(self) -> bool:
        return len(self.scale) > 1

    def __repr__(self):
        q = f", scale {self.scale[0]:.6g}{'...' if self.per_channel else ''}, zp {self.zero_point[0]}" if self.scale else ""
        return f"Tensor({self.index}, {self.dtype}{list(self.shape)}{q}{', constant' if self.constant else ''})"


@dataclass(frozen=True, eq=False)
class Node:
    index: int
    op: str                                     # the builtin operator: "CONV_2D", "FULLY_CONNECTED", ...
    inputs: tuple[Tensor | None, ...]           # None where the model leaves an optional input out (-1)
    outputs: tuple[Tensor, ...]
    options: dict = field(default_factory=dict)

    def __repr__(self):
        return f"Node({self.index}, {self.op}, {[t.index if t else None for t in self.inputs]} -> {[t.index for t in self.outputs]})"


@dataclass(frozen=True, eq=False)
class Graph:
    tensors: tuple[Tensor, ...]
    nodes: tuple[Node, ...]
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]

    def __repr__(self):
        return f"Graph({len(self.nodes)} ops: {', '.join(n.op for n in self.nodes)})"

    def consumers(self, tensor: Tensor) -> list[Node]:
        return [n for n in self.nodes if any(t is tensor for t in n.inputs)]


def read(model: bytes) -> Graph:
    """The first subgraph of a .tflite flatbuffer, typed; a damaged or unsupported file is one error line."""
    if len(model) < 8 or model[4:8] != IDENTIFIER:
        raise TinyDigitsError("not a .tflite model (no TFL3 identifier)")
    schema = _schema()
    try:
        m = schema.ModelT.InitFromPackedBuf(bytearray(model), 0)
    except Exception as e:  # flatbuffers raises struct, index and type errors on damaged files
        raise TinyDigitsError(f"not a valid .tflite model (a damaged flatbuffer: {type(e).__name__})") from None
    try:
        return _graph(m, model, schema)
    except TinyDigitsError:
        raise
    except Exception as e:  # an index out of range, a missing table, a buffer of the wrong size
        raise TinyDigitsError(f"not a valid .tflite model (a damaged flatbuffer: {type(e).__name__}: {str(e)[:80]})") from None


def _graph(m, model: bytes, schema) -> Graph:
    if not m.subgraphs:
        raise TinyDigitsError("corrupt .tflite model (no subgraph)")
    sub = m.subgraphs[0]
    tensors = tuple(_tensor(i, t, m, model) for i, t in enumerate(sub.tensors or []))

    def tensor(i: int) -> Tensor | None:
        if i == -1:
            return None
        if not 0 <= i < len(tensors):
            raise TinyDigitsError(f"not a valid .tflite model (tensor index {i} of {len(tensors)})")
        return tensors[i]

    names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
    nodes = []
    for index, op in enumerate(sub.operators or []):
        code = m.operatorCodes[op.opcodeIndex]
        builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
        name = names.get(builtin, f"builtin #{builtin}")
        if name == "CUSTOM":
            name = f"CUSTOM ({code.customCode.decode(errors='replace') if code.customCode else '?'})"
        inputs = tuple(tensor(int(i)) for i in (op.inputs if op.inputs is not None else []))
        outputs = tuple(tensor(int(i)) for i in (op.outputs if op.outputs is not None else []))
        nodes.append(Node(index, name, inputs, outputs, _options(op.builtinOptions, schema)))
    return Graph(tensors, tuple(nodes), tuple(tensor(int(i)) for i in sub.inputs),
                 tuple(tensor(int(i)) for i in sub.outputs))


def _tensor(index: int, t, m, model: bytes) -> Tensor:
    dtype = DTYPES.get(t.type, f"type #{t.type}")
    shape = tuple(int(d) for d in (t.shape if t.shape is not None else []))
    q = t.quantization
    scale = tuple(float(s) for s in q.scale) if q is not None and q.scale is not None else ()
    zero_point = tuple(int(z) for z in q.zeroPoint) if q is not None and q.zeroPoint is not None else ()
    data = None
    if 0 < t.buffer < len(m.buffers):
        buffer = m.buffers[t.buffer]
        raw = (model[buffer.offset:buffer.offset + buffer.size] if buffer.offset > 1  # stored after the flatbuffer
               else bytes(buffer.data) if buffer.data is not None else b"")
        if raw:
            data = _decode(raw, dtype, shape, t.name)
    name = t.name.decode(errors="replace") if isinstance(t.name, bytes) else str(t.name or "")
    return Tensor(index, name, shape, dtype, scale, zero_point, int(q.quantizedDimension) if q is not None else 0, data)


def _decode(raw: bytes, dtype: str, shape: tuple[int, ...], name) -> np.ndarray:
    """A constant buffer as an array of `shape`; int4 is packed two per byte, the low nibble first."""
    count = int(np.prod(shape, dtype=np.int64))
    if dtype == "int4":
        packed = np.frombuffer(raw, np.uint8)
        if len(packed) != (count + 1) // 2:
            raise TinyDigitsError(f"not a valid .tflite model (int4 tensor {name!r}: {len(packed)} bytes for {count} values)")
        low = (packed << 4).astype(np.int8) >> 4          # sign-extended low nibble
        high = packed.astype(np.int8) >> 4                # arithmetic shift: the high nibble
        return np.stack([low, high], axis=1).ravel()[:count].reshape(shape)
    if dtype not in NUMPY:
        return None  # a constant of a type no op here reads (strings, ...): left out
    values = np.frombuffer(raw, NUMPY[dtype])
    if len(values) != count:
        raise TinyDigitsError(f"not a valid .tflite model (tensor {name!r}: {len(values)} values for shape {list(shape)})")
    return values.reshape(shape)


def _snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])", "_", name).lower()  # dilationWFactor: dilation_w_factor


def _options(options, schema) -> dict:
    """An op's builtin options object as a dict: snake_case names, enums by name."""
    if options is None:
        return {}
    out = {}
    for key, value in vars(options).items():
        key = _snake(key)
        if key in ENUM_OPTIONS:
            names = {v: k for k, v in vars(getattr(schema, ENUM_OPTIONS[key])).items() if not k.startswith("_")}
            value = names.get(value, value)
        elif isinstance(value, np.ndarray):
            value = value.tolist()
        out[key] = value
    return out
