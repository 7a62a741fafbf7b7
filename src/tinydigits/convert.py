"""Keras model -> float32 and full-integer int8 .tflite.

The TFLite graph is built from the Keras model's weights with plain TensorFlow ops, layer by
layer along the model's own graph (Keras runs it: `_run_through_graph`), so conversion works the
same whatever Keras backend trained or loaded the model (JAX, TensorFlow, PyTorch) and needs
nothing but the model. The batch is fixed at 1, so a Flatten is one RESHAPE (never
SHAPE/STRIDED_SLICE/PACK); a BatchNormalization is folded into the convolution or Dense layer
before it, and Dropout is dropped. The layers it knows are `SUPPORTED`; anything else is refused
by name before TensorFlow's converter sees it (which segfaults on some, an int8 LSTM for one). A
BatchNormalization no layer before it can absorb (one after a ReLU), and a Rescaling, become a 1x1
depthwise convolution: the same affine map per channel, as an op the C generator runs.
TensorFlow is imported only inside the functions: the commands that do not convert never load it.

    check_supported(model)                                 # one TinyDigitsError naming the first unknown layer
    float_bytes, int8_bytes = to_tflite(model), to_tflite(model, calibration=x_train[:500])
    report = convert_run(Run("runs/lesson"))   # `tinydigits convert`: model_*.tflite, deploy.json, flips.png
"""
from __future__ import annotations

import numpy as np

from .atomic import claim
from .artifacts import preflight, save_figure, staged_folder, write_bytes, write_json
from .data import normalize
from .errors import TinyDigitsError, first_line
from .lowbit import WEIGHT_BITS, narrow_to_int4, snap
from .runs import RUN_FILES, Run
from .verify import compare_forms

CALIBRATION_IMAGES = 500  # representative training images for the int8 ranges
ACTIVATIONS = ("relu", "relu6", "linear", "softmax", "sigmoid", "tanh")  # sigmoid/tanh convert; the C generator refuses them
IDENTITY_LAYERS = ("Dropout", "SpatialDropout1D", "SpatialDropout2D", "GaussianNoise", "GaussianDropout",
                   "AlphaDropout", "ActivityRegularization", "Identity")  # nothing at inference
FOLDABLE = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense")   # a BatchNormalization after one is folded in
LAYERS = ("Conv2D", "DepthwiseConv2D", "SeparableConv2D", "MaxPooling2D", "AveragePooling2D", "GlobalAveragePooling2D",
          "BatchNormalization", "ReLU", "Activation", "Softmax", "Flatten", "Reshape", "Dense", "Add", "Cropping2D", "Rescaling",
          *IDENTITY_LAYERS)
SUPPORTED = ("Conv2D, DepthwiseConv2D, SeparableConv2D, MaxPooling2D, AveragePooling2D, GlobalAveragePooling2D, "
             "BatchNormalization, ReLU/ReLU6, Activation, Softmax, Dropout, Flatten, Reshape, Dense, Add, Cropping2D, "
             "Rescaling")


def _graph(model):
    """The Keras graph that runs `model` (a Sequential runs one of its own once built)."""
    graph = getattr(model, "_functional", None) or model
    if not hasattr(graph, "_nodes_by_depth"):
        raise TinyDigitsError(f"model {model.name!r} ({type(model).__name__}) has no layer graph to convert "
                              "(a subclassed keras.Model); build it as a Sequential or functional model")
    return graph


def _nodes(graph):
    """The graph's layer calls, inputs first."""
    return [node for depth in sorted(graph._nodes_by_depth, reverse=True) for node in graph._nodes_by_depth[depth]
            if node.operation is not None and not node.is_input]


def _activation_name(layer) -> str:
    name = getattr(getattr(layer, "activation", None), "__name__", "linear")
    if name not in ACTIVATIONS:
        raise TinyDigitsError(f"layer {layer.name!r} ({type(layer).__name__}): activation {name!r} cannot be "
                              f"converted; supported: {', '.join(ACTIVATIONS)}")
    return name


def check_supported(model) -> None:
    """Refuse, in one line, a model with a layer (or a layer option) the converter or generator does not know."""
    for node in _nodes(_graph(model)):
        layer = node.operation
        kind = type(layer).__name__
        if hasattr(layer, "_nodes_by_depth") or hasattr(layer, "_functional"):  # a model inside the model
            check_supported(layer)
            continue
        if kind not in LAYERS:
            raise TinyDigitsError(f"layer {layer.name!r} ({kind}) cannot be converted; supported: {SUPPORTED}")
        if getattr(layer, "data_format", "channels_last") != "channels_last":
            raise TinyDigitsError(f"layer {layer.name!r} ({kind}): only channels_last is supported")
        if kind in ("Conv2D", "DepthwiseConv2D", "SeparableConv2D"):
            if tuple(layer.dilation_rate) != (1, 1) or getattr(layer, "groups", 1) != 1:
                raise TinyDigitsError(f"layer {layer.name!r} ({kind}): dilation and groups must be 1")
        if kind == "ReLU" and (layer.negative_slope or layer.threshold or layer.max_value not in (None, 6)):
            raise TinyDigitsError(f"layer {layer.name!r} (ReLU): only ReLU and ReLU6 are supported "
                                  "(no negative slope, threshold or other maximum)")
        if kind in ("Activation", "Conv2D", "DepthwiseConv2D", "SeparableConv2D", "Dense"):
            _activation_name(layer)
        if kind == "Rescaling" and not all(np.ndim(v) == 0 for v in (layer.scale, layer.offset)):
            raise TinyDigitsError(f"layer {layer.name!r} (Rescaling): only one scale and offset for all channels")


def _folded_batch_norms(graph) -> dict:
    """BatchNormalization layers that directly follow a linear Conv2D/DepthwiseConv2D/SeparableConv2D/Dense
    (the only reader of its output): producer layer -> its BatchNormalization."""
    readers = {}
    for node in _nodes(graph):
        for t in node.input_tensors:
            readers.setdefault(id(t), []).append(node)
    folds = {}
    for node in _nodes(graph):
        layer = node.operation
        if type(layer).__name__ != "BatchNormalization":
            continue
        history = node.input_tensors[0]._keras_history
        producer = history.operation
        if layer.axis not in (-1, len(node.input_tensors[0].shape) - 1):
            raise TinyDigitsError(f"layer {layer.name!r} (BatchNormalization): only the channel axis (-1) is supported")
        if (type(producer).__name__ in FOLDABLE and _activation_name(producer) == "linear"
                and len(readers.get(id(node.input_tensors[0]), [])) == 1):
            folds[id(producer)] = layer
    return folds  # the others (after an activation, say) become a 1x1 depthwise convolution: _batch_norm_fn


def _bn_scale_shift(bn) -> tuple[np.ndarray, np.ndarray]:
    """y = x * scale + shift, the BatchNormalization at inference."""
    w = {v.path.split("/")[-1]: np.asarray(v) for v in bn.weights}
    gamma = w.get("gamma", np.ones_like(w["moving_mean"])) if bn.scale else np.ones_like(w["moving_mean"])
    beta = w.get("beta", np.zeros_like(w["moving_mean"])) if bn.center else np.zeros_like(w["moving_mean"])
    scale = gamma / np.sqrt(w["moving_variance"] + bn.epsilon)
    return scale.astype(np.float32), (beta - w["moving_mean"] * scale).astype(np.float32)


def _layer_fn(layer, folds: dict, weight_bits: int = 8):
    """A TensorFlow function computing one Keras layer at inference (batch 1, NHWC); with `weight_bits` < 8
    each kernel, as it will be stored (a BatchNormalization folded in), is snapped to that grid first."""
    import tensorflow as tf

    kind = type(layer).__name__
    activations = {"relu": tf.nn.relu, "relu6": tf.nn.relu6, "linear": tf.identity, "softmax": tf.nn.softmax,
                   "sigmoid": tf.sigmoid, "tanh": tf.tanh}
    if hasattr(layer, "_nodes_by_depth") or hasattr(layer, "_functional"):
        inner = _tf_function(layer, weight_bits)
        return lambda x, *args, **kwargs: inner(x)
    if kind in IDENTITY_LAYERS or (kind == "BatchNormalization" and any(bn is layer for bn in folds.values())):
        return lambda x, *args, **kwargs: x
    if kind == "BatchNormalization":
        return _batch_norm_fn(layer)
    if kind == "Rescaling":
        return _rescaling_fn(layer)
    weights = {v.path.split("/")[-1]: np.asarray(v) for v in layer.weights}
    act = activations[_activation_name(layer)] if kind in FOLDABLE or kind == "Activation" else None
    scale, shift = _bn_scale_shift(folds[id(layer)]) if id(layer) in folds else (None, None)

    def finish(y, bias):  # + bias (with a folded BatchNormalization), then the activation
        if bias is not None or scale is not None:
            b = np.zeros(y.shape[-1], np.float32) if bias is None else bias.astype(np.float32)
            y = y + tf.constant(b * scale + shift if scale is not None else b)
        return act(y)

    def scaled(kernel, axis_shape=None, axes=(0, 1, 2)):  # times a folded BatchNormalization's scale, per output channel
        k = kernel if scale is None or axis_shape is None else kernel * scale.reshape(axis_shape)
        return tf.constant(k if weight_bits == 8 else snap(k, axes, weight_bits).astype(np.float32))

    strides = [1, *getattr(layer, "strides", (1, 1)), 1] if kind != "Dense" else None
    padding = getattr(layer, "padding", "valid").upper()
    if kind == "Conv2D":
        k = scaled(weights["kernel"], (1, 1, 1, -1))
        return lambda x, *a, **kw: finish(tf.nn.conv2d(x, k, strides, padding), weights.get("bias"))
    if kind == "DepthwiseConv2D":
        kernel = weights["kernel"] if "kernel" in weights else weights["depthwise_kernel"]
        k = scaled(kernel, (1, 1, kernel.shape[2], kernel.shape[3]), axes=(0, 1))
        return lambda x, *a, **kw: finish(tf.nn.depthwise_conv2d(x, k, strides, padding), weights.get("bias"))
    if kind == "SeparableConv2D":
        depthwise = scaled(weights["depthwise_kernel"], axes=(0, 1))
        pointwise = scaled(weights["pointwise_kernel"], (1, 1, 1, -1))
        return lambda x, *a, **kw: finish(tf.nn.conv2d(tf.nn.depthwise_conv2d(x, depthwise, strides, padding),
                                                       pointwise, [1, 1, 1, 1], "VALID"), weights.get("bias"))
    if kind == "Dense":
        k = scaled(weights["kernel"], (1, -1), axes=(0,))
        return lambda x, *a, **kw: finish(tf.matmul(_flat_for_dense(x, layer), k), weights.get("bias"))
    if kind in ("MaxPooling2D", "AveragePooling2D"):
        pool = tf.nn.max_pool2d if kind == "MaxPooling2D" else tf.nn.avg_pool2d
        return lambda x, *a, **kw: pool(x, list(layer.pool_size), list(layer.strides), padding)
    if kind == "GlobalAveragePooling2D":
        return lambda x, *a, **kw: tf.reduce_mean(x, axis=[1, 2], keepdims=bool(layer.keepdims))
    if kind == "ReLU":
        return lambda x, *a, **kw: tf.nn.relu6(x) if layer.max_value == 6 else tf.nn.relu(x)
    if kind == "Activation":
        return lambda x, *a, **kw: act(x)
    if kind == "Softmax":
        return lambda x, *a, **kw: tf.nn.softmax(x)
    if kind == "Flatten":
        return lambda x, *a, **kw: tf.reshape(x, [-1, int(np.prod(x.shape[1:]))])
    if kind == "Reshape":
        return lambda x, *a, **kw: tf.reshape(x, [-1, *layer.target_shape])
    if kind == "Cropping2D":
        (top, bottom), (left, right) = layer.cropping
        return lambda x, *a, **kw: x[:, top:x.shape[1] - bottom, left:x.shape[2] - right, :]
    if kind == "Add":
        return lambda inputs, *a, **kw: tf.add_n(list(inputs)) if len(inputs) > 2 else tf.add(inputs[0], inputs[1])
    raise TinyDigitsError(f"layer {layer.name!r} ({kind}) cannot be converted; supported: {SUPPORTED}")


def _batch_norm_fn(layer):
    """A BatchNormalization that no layer before it can absorb (one after a ReLU, say): y = x * scale + shift
    per channel, which is exactly a 1x1 depthwise convolution with a bias: one DEPTHWISE_CONV_2D op (a flat
    tensor is viewed as (1, 1, C) around it, two RESHAPEs that cost nothing)."""
    import tensorflow as tf

    scale, shift = _bn_scale_shift(layer)
    kernel = tf.constant(scale.reshape(1, 1, -1, 1))

    def bn(x, *args, **kwargs):
        flat = len(x.shape) == 2
        y = tf.reshape(x, [-1, 1, 1, x.shape[-1]]) if flat else x
        y = tf.nn.depthwise_conv2d(y, kernel, [1, 1, 1, 1], "VALID") + tf.constant(shift)
        return tf.reshape(y, [-1, x.shape[-1]]) if flat else y
    return bn


def _rescaling_fn(layer):
    """A Rescaling inside the model (x * scale + offset, one factor for every value), as a 1x1 depthwise
    convolution: one DEPTHWISE_CONV_2D (import_model folds a leading one into the input instead)."""
    import tensorflow as tf

    if float(layer.scale) == 1.0 and float(layer.offset) == 0.0:
        return lambda x, *args, **kwargs: x

    def rescale(x, *args, **kwargs):
        y = x if len(x.shape) == 4 else tf.reshape(x, [-1, 1, 1, int(np.prod(x.shape[1:]))])
        kernel = tf.constant(np.full((1, 1, y.shape[-1], 1), float(layer.scale), np.float32))
        y = tf.nn.depthwise_conv2d(y, kernel, [1, 1, 1, 1], "VALID") + float(layer.offset)
        return y if len(x.shape) == 4 else tf.reshape(y, [-1, *x.shape[1:]])
    return rescale


def _flat_for_dense(x, layer):
    if len(x.shape) != 2:
        raise TinyDigitsError(f"layer {layer.name!r} (Dense) gets a {list(x.shape[1:])} tensor; "
                              "only a flat input is supported (put a Flatten before it)")
    return x


def _tf_function(model, weight_bits: int = 8):
    """model's forward pass as TensorFlow ops on the model's own graph. The weights are read here, eagerly
    (a TensorFlow-backend variable cannot become numpy inside tf.function's tracing)."""
    graph = _graph(model)
    folds = _folded_batch_norms(graph)
    functions = {id(node.operation): _layer_fn(node.operation, folds, weight_bits) for node in _nodes(graph)}
    return lambda x: graph._run_through_graph(x, operation_fn=lambda layer: functions[id(layer)])


def calibration_images(x_train: np.ndarray, count: int = CALIBRATION_IMAGES, seed: int = 0) -> np.ndarray:
    """`count` training images drawn at random: the representative set for the int8 ranges."""
    if not 1 <= count <= len(x_train):
        raise TinyDigitsError(f"calibration count must be between 1 and {len(x_train)}, got {count}")
    return x_train[np.random.default_rng(seed).choice(len(x_train), count, replace=False)]


def to_tflite(model, calibration: np.ndarray | None = None, weight_bits: int = 8) -> bytes:
    """Float32 .tflite bytes, or full-integer int8 when `calibration` (N, 28, 28) uint8 images are given.

    int8 means int8 weights (per channel) and activations, int32 biases, int8 input and output: what
    TFLM and the generated C run. The converter settings are all spelled out below. With `weight_bits`
    4 (or 2) the kernels are snapped to that grid, converted so, and stored as INT4 (lowbit.py); the
    activations stay int8, with the ranges the int8 model's calibration gives.
    """
    import tensorflow as tf

    if weight_bits not in WEIGHT_BITS:
        raise TinyDigitsError(f"weight bits must be one of {', '.join(map(str, WEIGHT_BITS))}, got {weight_bits}")
    if weight_bits != 8 and calibration is None:
        raise TinyDigitsError(f"{weight_bits}-bit weights need an int8 model: give calibration images")
    check_supported(model)
    shape = [1, *model.input_shape[1:]]
    fn = tf.function(_tf_function(model, weight_bits), input_signature=[tf.TensorSpec(shape, tf.float32, name="image")])
    try:
        concrete = fn.get_concrete_function()
    except TinyDigitsError:
        raise
    except Exception as e:  # a layer whose shapes do not fit together
        raise TinyDigitsError(f"the model cannot be traced for conversion: {first_line(e, 200)}") from None
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete])
    if calibration is not None:
        samples = normalize(np.asarray(calibration)).reshape(-1, *shape[1:])
        converter.optimizations = [tf.lite.Optimize.DEFAULT]                  # quantize
        converter.representative_dataset = lambda: ([s[None]] for s in samples)  # activation ranges
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]  # no float fallback
        converter.inference_input_type = tf.int8                              # int8 in ...
        converter.inference_output_type = tf.int8                             # ... and int8 out
    try:
        converted = bytes(converter.convert())
    except Exception as e:  # the converter's own exceptions carry MLIR dumps; keep the first line
        raise TinyDigitsError(f"TFLite conversion failed: {first_line(e, 200)}") from None
    return converted if weight_bits == 8 else narrow_to_int4(converted, weight_bits)


def convert_run(run: Run, calibration: int = CALIBRATION_IMAGES, tflm: bool = True, command: str = "") -> dict:
    """Convert a run's model.keras to both .tflite forms, score every form; add the four files as one set."""
    from .plots import image_gallery

    with claim(run.folder, wait=True, command=command):  # a second writer of the run waits for this one
        run.refresh()  # what a writer we waited for changed
        preflight(run.folder, resume="run")
        ds = run.dataset()
        model = run.model()
        float_bytes = to_tflite(model)
        if (run.imported or {}).get("format") == "tflite":  # the int8 model the user brought is the one deployed
            int8_bytes = run.int8_model()
        else:
            bits = run.recipe.weight_bits if run.recipe is not None else 8
            int8_bytes = to_tflite(model, calibration_images(ds.x_train, calibration), weight_bits=bits)
        report = compare_forms(model, float_bytes, int8_bytes, ds.x_test, ds.y_test, tflm=tflm)
        report["calibration_images"] = calibration
        flips = report["flips"]
        figure = image_gallery(ds.x_test[[f["index"] for f in flips[:32]]],
                               [f"#{f['index']}: {f['float']}->{f['int8']} (true {f['label']})" for f in flips[:32]],
                               f"{len(flips)} test images whose digit flips from float to int8")
        with staged_folder(run.folder, "run", command, update=True) as tmp:
            write_bytes(tmp / RUN_FILES.float_model, float_bytes)
            write_bytes(tmp / RUN_FILES.int8_model, int8_bytes)
            save_figure(figure, tmp / RUN_FILES.flips)
            write_json(tmp / RUN_FILES.deploy, report)
        run.refresh()  # export-c after convert in one notebook must see the new model_int8.tflite
        return report
