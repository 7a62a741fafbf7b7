"""Bring your own model: a Keras .keras/.h5 file or an int8 .tflite becomes a run folder every command takes.

Checked before anything is converted or written: the input (28x28, 28x28x1 or a flat 784 pixels,
scaled to [0, 1] as the lesson does, ink bright; `pixels="0-255"` or `"-1-1"` folds another scaling
into the first layer, and a model that starts with a Rescaling layer is taken to expect 0-255), the output (10 classes), and every layer (convert.check_supported names the
first one it cannot convert, an LSTM say, before TensorFlow's converter ever sees it). The run
folder is what `train` writes: model.keras and a metrics.json whose test_accuracy is the float
model's on the test set, plus `imported` (where it came from); its manifest's command says so too.

An int8 .tflite is kept as it is, as the run's model_int8.tflite (every op checked by the C
generator's table), and model.keras is rebuilt from it with the int8 weights dequantized (so
predict, evaluate and serve work; `convert` scores it and keeps the .tflite you brought).

    import_model(Path("my_cnn.keras"), Path("runs/mine"), command="tinydigits import my_cnn.keras --out runs/mine")
"""
from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

from .artifacts import preflight, save_figure, staged_folder, write_bytes, write_json
from .errors import TinyDigitsError, first_line
from .model import IMAGE_SIZE, NUM_CLASSES
from .runs import RUN_FILES
from .tflite import IDENTIFIER

INPUT_SHAPES = ((IMAGE_SIZE, IMAGE_SIZE), (IMAGE_SIZE, IMAGE_SIZE, 1), (IMAGE_SIZE * IMAGE_SIZE,))
PIXELS = {"0-1": (1.0, 0.0), "0-255": (255.0, 0.0), "-1-1": (2.0, -1.0)}  # the model's input = scale * (p/255) + offset
HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def model_format(path: Path) -> str:
    """'tflite', 'keras' or 'h5', from the file's first bytes (not its name)."""
    try:
        with open(path, "rb") as f:
            head = f.read(8)
    except FileNotFoundError:
        raise TinyDigitsError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise TinyDigitsError(f"{path}: is a folder, not a model file (.keras, .h5 or .tflite)") from None
    except OSError as e:
        raise TinyDigitsError(f"{path}: cannot read it ({e.strerror})") from None
    if head[4:8] == IDENTIFIER:
        return "tflite"
    if head == HDF5_SIGNATURE:
        return "h5"
    if zipfile.is_zipfile(path):
        return "keras"
    raise TinyDigitsError(f"{path}: not a Keras model (.keras, .h5) or a .tflite file")


def load_keras(path: Path):
    import keras

    try:
        return keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as e:  # Keras raises many types for unknown layers, custom objects, damaged files
        raise TinyDigitsError(f"{path}: cannot load it as a Keras model ({type(e).__name__}: {first_line(e, 160)})") from None


def check_io(model, name: str) -> None:
    inputs, outputs = model.inputs, model.outputs
    if len(inputs) != 1 or len(outputs) != 1:
        raise TinyDigitsError(f"{name}: the model has {len(inputs)} inputs and {len(outputs)} outputs; one of each is needed")
    shape = tuple(model.input_shape[1:])
    if shape not in INPUT_SHAPES:
        raise TinyDigitsError(f"{name}: input shape {shape} is not an MNIST image (28, 28), (28, 28, 1) or (784,)")
    if tuple(model.output_shape[1:]) != (NUM_CLASSES,):
        raise TinyDigitsError(f"{name}: output shape {tuple(model.output_shape[1:])} is not {NUM_CLASSES} classes")


def leading_rescaling(model):
    """The Rescaling layer a model starts with (after shape-only layers), or None: a model that divides by
    255 itself takes pixels of 0-255."""
    for layer in model.layers:
        kind = type(layer).__name__
        if kind == "Rescaling":
            return layer
        if kind not in ("InputLayer", "Reshape"):
            return None
    return None


def fold_pixel_scaling(model, pixels: str):
    """A copy of `model` that takes pixels in [0, 1] where it took `pixels` ("0-255", "-1-1"; "auto": 0-255
    if it starts with a Rescaling, else 0-1): the scaling is folded into a leading Rescaling, or into the
    first Conv2D/Dense (exact; only shape-changing and pooling layers may come before it)."""
    import keras

    if pixels == "auto":
        pixels = "0-255" if leading_rescaling(model) is not None else "0-1"
    if pixels not in PIXELS:
        raise TinyDigitsError(f"--pixels must be one of auto, {', '.join(PIXELS)}, got {pixels!r}")
    scale, offset = PIXELS[pixels]
    if (scale, offset) == (1.0, 0.0):
        return model
    clone = keras.models.clone_model(model)
    clone.set_weights(model.get_weights())
    passthrough = ("InputLayer", "Reshape", "Flatten", "Dropout", "MaxPooling2D", "AveragePooling2D")
    for layer in clone.layers:
        kind = type(layer).__name__
        if kind in passthrough:
            continue
        if kind == "Rescaling":  # its input is scale * x + offset: one affine map
            layer.scale, layer.offset = float(layer.scale) * scale, float(layer.scale) * offset + float(layer.offset)
            return clone
        if kind not in ("Conv2D", "Dense") or (offset and kind == "Conv2D" and layer.padding != "valid"):
            raise TinyDigitsError(f"--pixels {pixels}: the scaling cannot be folded into layer {layer.name!r} ({kind}); "
                                  "it needs a Dense or Conv2D first (with valid padding for an offset)")
        kernel, *rest = layer.get_weights()
        bias = rest[0] if rest else None
        if bias is None and offset:
            raise TinyDigitsError(f"--pixels {pixels}: layer {layer.name!r} has no bias to take the offset")
        new_bias = None if bias is None else bias + offset * kernel.reshape(-1, kernel.shape[-1]).sum(axis=0)
        layer.set_weights([kernel * scale] + ([new_bias] if bias is not None else []))
        return clone
    raise TinyDigitsError(f"--pixels {pixels}: the model has no Conv2D or Dense layer to fold the scaling into")


def import_model(path: Path, out: Path, dataset: str = "mnist", data_dir: Path | None = None, pixels: str = "auto",
                 command: str = "", force: bool = False) -> dict:
    """Check `path`, score it on the test set, and write the run folder `out` as one set; its metrics."""
    from .convert import check_supported
    from .data import load_dataset
    from .plots import training_curves  # noqa: F401  (matplotlib ready before the slow part)
    from .train import versions

    path, out = Path(path), Path(out)
    preflight(out, force, kind="run")
    kind = model_format(path)
    if kind == "tflite":
        int8 = path.read_bytes()
        model = keras_from_tflite(int8, path.name)
    else:
        model, int8 = load_keras(path), None
        check_io(model, path.name)
        check_supported(model)  # an unsupported layer is refused here, before any conversion
        if pixels == "auto":
            pixels = "0-255" if leading_rescaling(model) is not None else "0-1"
        model = fold_pixel_scaling(model, pixels)
    ds = load_dataset(dataset, data_dir=data_dir)
    metrics = score(model, int8, ds)
    metrics.update(params=int(model.count_params()), train_seconds=None, recipe=None,
                   dataset={"name": ds.name, "folder": str(ds.folder), "data_dir": str(ds.folder) if ds.custom else None,
                            "train": 0, "validation": 0, "test": len(ds.x_test)},
                   imported={"from": str(path.resolve()), "format": kind, "pixels": pixels, "name": model.name,
                             "sha256": hashlib.sha256(path.read_bytes()).hexdigest()},
                   versions=versions())
    with staged_folder(out, "run", command or f"tinydigits import {path}", force) as tmp:
        model.save(tmp / RUN_FILES.model)
        write_json(tmp / RUN_FILES.metrics, metrics)
        write_json(tmp / RUN_FILES.history, {})
        if int8 is not None:
            write_bytes(tmp / RUN_FILES.int8_model, int8)
        save_figure(score_figure(metrics), tmp / RUN_FILES.curves)
    return metrics


def score(model, int8: bytes | None, ds) -> dict:
    """test_accuracy and test_loss of the float model (and int8_test_accuracy for an imported .tflite)."""
    from .evaluate import cross_entropy
    from .predict import predict_digits

    probs = predict_digits(model, ds.x_test)
    if not np.allclose(probs.sum(axis=1), 1, atol=1e-3):  # logits: the loss of their softmax
        e = np.exp(probs - probs.max(axis=1, keepdims=True))
        probs = e / e.sum(axis=1, keepdims=True)
    metrics = {"test_accuracy": float((probs.argmax(1) == ds.y_test).mean()), "test_loss": cross_entropy(probs, ds.y_test)}
    if int8 is not None:
        from .runtimes import LiteRT

        metrics["int8_test_accuracy"] = float((LiteRT(int8).predict(ds.x_test).argmax(1) == ds.y_test).mean())
    return metrics


def score_figure(metrics: dict):
    """curves.png for a run with no training history: what it scored, said in words."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 1.6))
    ax.axis("off")
    ax.set_title(f"imported: {metrics['imported']['name']} ({metrics['imported']['format']})")
    ax.text(0.5, 0.4, f"no training history; test accuracy {metrics['test_accuracy']:.4f}", ha="center", va="center")
    return fig


def keras_from_tflite(int8: bytes, name: str):
    """The int8 model as a float Keras model (weights dequantized), so the commands that run Keras can."""
    import keras
    from keras import layers

    from .codegen import plan
    from .tflite import read

    graph = read(int8)
    plan(graph)  # every op is one the C generator runs, and the input and output are int8
    if graph.inputs[0].size != IMAGE_SIZE * IMAGE_SIZE or graph.outputs[0].size != NUM_CLASSES:
        raise TinyDigitsError(f"{name}: not a digit model (input {list(graph.inputs[0].shape)}, "
                              f"output {list(graph.outputs[0].shape)})")
    x = keras.Input(tuple(graph.inputs[0].shape[1:]))
    values = {graph.inputs[0].index: x}
    acts = {"NONE": None, "RELU": "relu", "RELU6": "relu6"}

    def dequantized(t):
        scale = np.asarray(t.scale, np.float32)
        shape = [-1 if i == t.quantized_dimension else 1 for i in range(len(t.shape))] if len(scale) > 1 else [1]
        return (t.data.astype(np.float32) - np.asarray(t.zero_point or [0], np.float32).reshape(shape)) * scale.reshape(shape)

    for node in graph.nodes:
        o = node.options
        args = [values[t.index] for t in node.inputs if t is not None and not t.constant]
        w, b = (node.inputs[i] if len(node.inputs) > i else None for i in (1, 2))
        bias = dequantized(b) if b is not None and b.constant else None
        act = acts.get(o.get("fused_activation_function", "NONE"))
        pad = (o.get("padding") or "VALID").lower()
        strides = (o.get("stride_h", 1), o.get("stride_w", 1))
        if node.op == "CONV_2D":
            kernel = dequantized(w).transpose(1, 2, 3, 0)  # (out, kh, kw, in) -> (kh, kw, in, out)
            layer = layers.Conv2D(kernel.shape[-1], kernel.shape[:2], strides, pad, activation=act, use_bias=bias is not None)
            y = layer(args[0])
            layer.set_weights([kernel] + ([bias] if bias is not None else []))
        elif node.op == "DEPTHWISE_CONV_2D":
            kernel = dequantized(w)[0]                       # (kh, kw, in * m)
            cin = node.inputs[0].shape[3]
            kernel = kernel.reshape(*kernel.shape[:2], cin, -1)
            layer = layers.DepthwiseConv2D(kernel.shape[:2], strides, pad, depth_multiplier=kernel.shape[-1], activation=act,
                                           use_bias=bias is not None)
            y = layer(args[0])
            layer.set_weights([kernel] + ([bias] if bias is not None else []))
        elif node.op == "FULLY_CONNECTED":
            kernel = dequantized(w).T
            layer = layers.Dense(kernel.shape[1], activation=act, use_bias=bias is not None)
            y = layer(layers.Reshape((kernel.shape[0],))(args[0]) if len(args[0].shape) != 2 else args[0])
            layer.set_weights([kernel] + ([bias] if bias is not None else []))
        elif node.op in ("MAX_POOL_2D", "AVERAGE_POOL_2D"):
            pool = layers.MaxPooling2D if node.op == "MAX_POOL_2D" else layers.AveragePooling2D
            y = pool((o["filter_height"], o["filter_width"]), strides, pad)(args[0])
            y = layers.Activation(act)(y) if act else y
        elif node.op == "MEAN":
            y = layers.GlobalAveragePooling2D(keepdims=len(node.outputs[0].shape) == 4)(args[0])
        elif node.op == "RESHAPE":
            y = layers.Reshape(tuple(node.outputs[0].shape[1:]))(args[0])
        elif node.op == "SOFTMAX":
            y = layers.Softmax()(args[0])
        elif node.op == "ADD":
            y = layers.Add()(args)
            y = layers.Activation(act)(y) if act else y
        elif node.op == "STRIDED_SLICE":
            from .codegen.ops.dense import plan_strided_slice

            p = plan_strided_slice(node).params
            height = node.inputs[0].shape[1]
            y = layers.Cropping2D(((p["top"], height - p["top"] - p["out_h"]),
                                   (p["left"], p["width"] - p["left"] - p["out_w"])))(args[0])
        elif node.op in ("RELU", "RELU6"):
            y = layers.ReLU(6.0 if node.op == "RELU6" else None)(args[0])
        else:
            raise TinyDigitsError(f"{name}: op {node.op} cannot be rebuilt as a Keras layer")
        values[node.outputs[0].index] = y
    return keras.Model(x, values[graph.outputs[0].index], name=Path(name).stem.replace("-", "_").replace(".", "_") or "imported")
