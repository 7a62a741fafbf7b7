"""Train a recipe and write a run folder.

A run folder (see runs.py, which reads it back) is what every later stage reads: `model.keras`, `history.json` (per-epoch lists of
loss, accuracy, val_loss, val_accuracy; "val" is the test set, as in the lesson, unless the recipe
holds out a validation split), `metrics.json` (test accuracy and loss, parameters, training time,
recipe, dataset, versions) and `curves.png` (the lesson's "model accuracy" and "model loss").

    result = train(Recipe(), load_dataset("mnist"))
    save_run(result, Path("runs/lesson"))

The model is a Keras model; the loop that trains it is a few lines of JAX, the way Keras' guide
"writing a training loop from scratch in JAX" does it (`model.stateless_call`,
`optimizer.stateless_apply`): one compiled call per epoch runs all its batches (`jax.lax.scan`),
with the augmentation, the teacher's outputs and the update inside; the images are shuffled on
the host. Keras' own `fit` dispatches one compiled call per batch, and at batch 32 that dispatch
costs several times the arithmetic. The updates are the lesson's: Adam (Keras' own), shuffled
batches, every image once per epoch. Keras and JAX are imported inside the functions, so that the
CLI starts without them. `train` asks XLA for one CPU thread first (`tinydigits.single_thread_xla`;
it has no effect once JAX has computed).
"""
from __future__ import annotations

import contextlib
import platform
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np

from . import redraws_in_place, single_thread_xla
from .artifacts import save_figure, staged_folder, write_bytes, write_json
from .data import Dataset, normalize
from .errors import TinyDigitsError
from .escape import html_text
from .interrupt import check as check_interrupt
from .lowbit import snap
from .model import NUM_CLASSES, Recipe, build_model, make_optimizer
from .predict import predict_digits
from .runs import RUN_FILES, Run

DISTILL_TEMPERATURE = 4.0  # softens teacher and student outputs so the teacher's near-misses teach (Hinton et al.)
PROBABILITY_FLOOR = 1e-7   # as Keras' cross-entropy: log(p) of a probability clipped to [1e-7, 1]
UNROLLED_STEPS = 4         # a conv model's batches per compiled call, at most (unrolled; see fit's chunked_epoch)


@dataclass
class TrainResult:
    model: object          # keras.Model
    recipe: Recipe
    history: dict          # metric name -> per-epoch list
    metrics: dict          # what metrics.json holds

    def __repr__(self):
        return f"TrainResult({summary_line(self)}, {len(self.history['loss'])} epochs)"

    def _repr_html_(self) -> str:
        """A notebook cell's view: the summary, then the first and last epoch of each metric."""
        keys = list(self.history)
        last = len(self.history["loss"])
        rows = "".join(f"<tr><td>{e}</td>" + "".join(f"<td>{self.history[k][e - 1]:.4f}</td>" for k in keys) + "</tr>"
                       for e in sorted({1, last}))
        return (f"<p><b>TrainResult</b> {html_text(summary_line(self))}</p><table><tr><th>epoch</th>"
                + "".join(f"<th>{k}</th>" for k in keys) + f"</tr>{rows}</table>")


def split_train(ds: Dataset, validation_split: float):
    """(x_train, y_train, x_val, y_val): the last `validation_split` of the training images held out."""
    n_val = int(round(len(ds.x_train) * validation_split))
    cut = len(ds.x_train) - n_val
    return ds.x_train[:cut], ds.y_train[:cut], ds.x_train[cut:], ds.y_train[cut:]


def train(recipe: Recipe, ds: Dataset, verbose: int = 1) -> TrainResult:
    """Fit `recipe` on `ds`; validate per epoch on the test set (or the held-out split)."""
    single_thread_xla()  # before Keras first touches JAX; no effect once XLA has started
    import keras

    if keras.backend.backend() != "jax":
        raise TinyDigitsError(f"training needs Keras' JAX backend (KERAS_BACKEND=jax), not {keras.backend.backend()!r}")
    with keras_without_tensorflow():
        keras.utils.set_random_seed(recipe.seed)
    x_train, y_train, x_val, y_val = split_train(ds, recipe.validation_split)
    validated_on_test = not len(x_val)
    if validated_on_test:
        x_val, y_val = ds.x_test, ds.y_test
    extra = 0
    if recipe.extra_data:  # your own digits, preprocessed as `predict` does, mixed in
        from .folders import load_image_folder

        extra_x, extra_y, _ = load_image_folder(Path(recipe.extra_data))
        extra = len(extra_x)
        x_train = np.concatenate([x_train] + [extra_x] * recipe.extra_repeat)
        y_train = np.concatenate([y_train] + [extra_y] * recipe.extra_repeat)
    model = build_model(recipe)
    if recipe.init:
        start_from(model, recipe.init)
    teacher = load_teacher(recipe.teacher) if recipe.teacher else None
    start = time.perf_counter()
    history = fit(model, recipe, (x_train, y_train), (x_val, y_val), teacher, verbose)
    seconds = time.perf_counter() - start
    if validated_on_test:  # the last epoch's scores are the test set's, with these very weights
        n = len(ds.y_test)
        test_accuracy, test_loss = round(history["val_accuracy"][-1] * n) / n, history["val_loss"][-1]
    else:
        probs = predict_digits(model, ds.x_test)
        test_accuracy = float(np.mean(probs.argmax(-1) == ds.y_test))
        test_loss = float(jax_task_loss(recipe, ds.y_test.astype(np.int32), probs).mean())
    metrics = {
        "test_accuracy": test_accuracy,
        "test_loss": test_loss,
        "params": int(model.count_params()),
        "train_seconds": round(seconds, 2),
        "recipe": recipe.to_dict(),
        "dataset": {"name": ds.name, "folder": str(ds.folder), "data_dir": str(ds.folder) if ds.custom else None,
                    "train": len(x_train), "extra": extra,
                    "validation": len(x_val) if recipe.validation_split else 0, "test": len(ds.x_test)},
        "versions": versions(),
    }
    return TrainResult(model, recipe, history, metrics)


def start_from(model, folder: str) -> None:
    """Copy a run's weights into `model` (`--init`): the same design, or one clear error."""
    source = Run(folder).model()
    shapes = [tuple(w.shape) for w in source.get_weights()]
    if shapes != [tuple(w.shape) for w in model.get_weights()]:
        raise TinyDigitsError(f"--init {folder}: its model ({source.name}) is not this design ({model.name}); "
                              "fine-tuning starts from the same layers")
    model.set_weights(source.get_weights())


@contextlib.contextmanager
def keras_without_tensorflow():
    """Keras, for the block, takes TensorFlow as not installed unless it is imported already.

    `keras.utils.set_random_seed` and `model.save` ask `tf.available` (to seed TensorFlow too, to
    recognise its TensorShape and DType objects), and that question imports TensorFlow: about 2 s
    of a 5-second `tinydigits train`, which never runs TensorFlow. While TensorFlow is not imported
    no object can be one of its types, so the answer "not available" changes nothing else.
    """
    from keras.src.utils import module_utils  # Keras' lazy TensorFlow module; private, hence the checks

    lazy = getattr(module_utils, "tensorflow", None)
    if "tensorflow" in sys.modules or getattr(lazy, "_available", True) is not None:
        yield
        return
    lazy._available = False
    try:
        yield
    finally:
        lazy._available = None


def load_teacher(folder: str):
    """The Keras model of a run folder, to distill from."""
    return Run(folder).model()


def task_loss(recipe: Recipe, labels, probs, smoothing: float = 0.0):
    """Per-image loss of softmax outputs (B, 10) against labels (B,): cross-entropy or MSE on one-hot targets."""
    import jax.numpy as jnp

    targets = jnp.eye(NUM_CLASSES)[labels] * (1 - smoothing) + smoothing / NUM_CLASSES
    if recipe.loss == "mse":
        return jnp.mean(jnp.square(targets - probs), axis=-1)
    return -jnp.sum(targets * jnp.log(jnp.clip(probs, PROBABILITY_FLOOR, 1.0)), axis=-1)


def jax_task_loss(recipe: Recipe, labels, probs):
    """task_loss as one compiled call: op by op, JAX compiles each of its small operations first."""
    import jax

    return jax.jit(task_loss, static_argnums=0)(recipe, labels, probs)


def distillation_loss(student, teacher, temperature: float = DISTILL_TEMPERATURE):
    """Per-image T^2 * KL(teacher || student), both softened: softmax(log(p) / T) = softmax(logits / T)."""
    import jax
    import jax.numpy as jnp

    soft = lambda p: jax.nn.log_softmax(jnp.log(jnp.clip(p, PROBABILITY_FLOOR, 1.0)) / temperature)  # noqa: E731
    log_t, log_s = soft(teacher), soft(student)
    return temperature ** 2 * jnp.sum(jnp.exp(log_t) * (log_t - log_s), axis=-1)


def fake_quantize(kernel, axes: tuple[int, ...] = (0,), bits: int = 8):
    """A kernel rounded to `bits` per output channel, symmetric, as the converter stores it (lowbit.snap, the
    converter's own code): the scale of each channel is its largest |weight| / 127 (int8; / 7 for int4;
    ternary: its mean |weight|) over `axes` (Dense (in, out): (0,); Conv2D (kh, kw, in, out): (0, 1, 2);
    a depthwise kernel (kh, kw, in, multiplier): (0, 1), each of in x multiplier its own).

    Forward: the stored values (times their scale); backward: the identity (straight-through estimator).
    """
    import jax
    import jax.numpy as jnp

    rounded = snap(kernel, axes, bits, xp=jnp)
    return kernel + jax.lax.stop_gradient(rounded - kernel)


def quantized_axes(model) -> list[tuple[int, ...] | None]:
    """For each of model.trainable_variables, the axes its per-channel scale is taken over (None: a bias, not
    quantized with the weights)."""
    axes = {}
    for layer in model._flatten_layers(include_self=False):
        for v in layer.trainable_weights:
            name = v.path.split("/")[-1]
            if len(v.shape) < 2 or id(v) in axes:
                continue
            depthwise = name == "depthwise_kernel" or type(layer).__name__ == "DepthwiseConv2D"
            axes[id(v)] = (0, 1) if depthwise else tuple(range(len(v.shape) - 1))
    return [axes.get(id(v)) for v in model.trainable_variables]


@contextlib.contextmanager
def max_pool_as_reshape():
    """While a model is traced for training, a 2x2 (any k x k, stride k, 'valid') max-pool is a reshape and
    a max instead of XLA's reduce_window. The values are the same; the gradient is not select-and-scatter,
    which XLA's CPU backend runs several times slower than the convolution around it (bench/README.md,
    "Training speed, CNNs"). Between maxima that tie exactly it splits the gradient where Keras' picks one:
    after a ReLU those are zeros, whose gradient the ReLU stops either way. Other pools go to Keras."""
    import jax.numpy as jnp
    from keras.src import ops

    keras_max_pool = ops.max_pool

    def max_pool(inputs, pool_size, strides=None, padding="valid", data_format=None):
        size = tuple(pool_size) if isinstance(pool_size, (tuple, list)) else (pool_size, pool_size)
        stride = size if strides is None else tuple(strides) if isinstance(strides, (tuple, list)) else (strides, strides)
        if (getattr(inputs, "ndim", 0) != 4 or stride != size or padding != "valid"
                or data_format not in (None, "channels_last")):
            return keras_max_pool(inputs, pool_size, strides, padding, data_format)
        _, h, w, c = inputs.shape
        (ph, pw), rows, cols = size, h // size[0], w // size[1]
        kept = inputs[:, :rows * ph, :cols * pw, :]
        return jnp.max(jnp.reshape(kept, (-1, rows, ph, cols, pw, c)), axis=(2, 4))

    ops.max_pool = max_pool
    try:
        yield
    finally:
        ops.max_pool = keras_max_pool


def fit(model, recipe: Recipe, train_data, val_data, teacher=None, verbose: int = 1) -> dict:
    """Train `model` in place and return its history (per-epoch lists of loss, accuracy, val_loss, ...).

    Images travel as uint8. Each epoch is one compiled call: for every batch of the shuffled images,
    (augment) -> (teacher) -> loss -> gradient -> Adam, then the validation scores.
    """
    import jax
    import jax.numpy as jnp
    import keras

    from .augment import distort

    images, labels = np.asarray(train_data[0]), np.asarray(train_data[1], np.int32)  # (N, 28, 28) uint8, (N,)
    val = (jnp.asarray(val_data[0]), jnp.asarray(val_data[1], jnp.int32))
    n = len(images)
    batch = min(recipe.batch_size, n)
    full, tail = divmod(n, batch)
    steps_per_epoch = full + (tail > 0)
    # Parameters and Adam's moments travel flat, (784 * 20,) not (784, 20): XLA's CPU loops vectorize
    # a long row, not 784 rows of 20, and the update's elementwise work runs about 7x faster.
    shapes = [tuple(v.shape) for v in model.trainable_variables]
    axes = quantized_axes(model)  # per variable: the axes of its int8 scale, None for a bias
    flat = [keras.Variable(jnp.ravel(v.value), name=v.name) for v in model.trainable_variables]
    optimizer = make_optimizer(recipe, steps_per_epoch)
    optimizer.build(flat)
    state = ([v.value for v in flat], [v.value for v in model.non_trainable_variables],
             [v.value for v in optimizer.variables])
    teacher_vars = ([v.value for v in teacher.trainable_variables],
                    [v.value for v in teacher.non_trainable_variables]) if teacher is not None else None
    track_ce = recipe.loss == "mse"  # an MSE recipe also reports cross-entropy, so its curves compare
    ce = recipe.replace(loss="crossentropy")

    def step(state, images, labels, key, teacher_vars, quantized):
        trainable, non_trainable, optimizer_vars = state
        images = normalize(images)  # (B, 28, 28) uint8 -> float32 in [0, 1]
        if recipe.augmented:
            images = distort(key, images, recipe.shift, recipe.rotate, recipe.scale, recipe.elastic, recipe.slant,
                             recipe.thickness)
        if teacher_vars is not None:
            teacher_probs, _ = teacher.stateless_call(*teacher_vars, images, training=False)

        def objective(trainable):
            trainable = [v.reshape(shape) for v, shape in zip(trainable, shapes)]
            if quantized:
                trainable = [v if a is None else fake_quantize(v, a, recipe.weight_bits) for v, a in zip(trainable, axes)]
            probs, _ = model.stateless_call(trainable, non_trainable, images, training=True)
            loss = task_loss(recipe, labels, probs, recipe.label_smoothing)
            if teacher_vars is not None:
                loss = (1 - recipe.distill_weight) * loss + recipe.distill_weight * distillation_loss(probs, teacher_probs)
            return loss.sum(), probs

        (loss, probs), grads = jax.value_and_grad(objective, has_aux=True)(trainable)
        grads = [g / len(labels) for g in grads]  # gradient of the batch mean
        trainable, optimizer_vars = optimizer.stateless_apply(optimizer_vars, grads, trainable)
        sums = {"loss": loss, "accuracy": jnp.sum(probs.argmax(-1) == labels)}
        if track_ce:
            sums["crossentropy"] = task_loss(ce, labels, probs).sum()
        return (trainable, non_trainable, optimizer_vars), sums

    def scores(state, images, labels):
        trainable = [v.reshape(shape) for v, shape in zip(state[0], shapes)]
        probs, _ = model.stateless_call(trainable, state[1], normalize(images))
        out = {"val_loss": task_loss(recipe, labels, probs).mean(), "val_accuracy": jnp.mean(probs.argmax(-1) == labels)}
        if track_ce:
            out["val_crossentropy"] = task_loss(ce, labels, probs).mean()
        return out

    def epoch_keys(seed, number):
        """Per-batch augmentation keys of one epoch (zeros when nothing is augmented)."""
        return (jax.random.split(jax.random.fold_in(jax.random.key(seed), number), steps_per_epoch) if recipe.augmented
                else jnp.zeros(steps_per_epoch))

    @partial(jax.jit, static_argnames="quantized", donate_argnums=0)
    def scanned_epoch(state, images, labels, seed, number, teacher_vars, val, quantized):
        """One epoch, all in one compiled call: every batch of the shuffled images, then validation scores."""
        keys = epoch_keys(seed, number)
        body = lambda s, xs: step(s, *xs, teacher_vars, quantized)  # noqa: E731
        batches = (images[:full * batch].reshape(full, batch, *images.shape[1:]), labels[:full * batch].reshape(full, batch))
        state, sums = jax.lax.scan(body, state, (*batches, keys[:full]))
        sums = jax.tree.map(jnp.sum, sums)
        if tail:  # the last, smaller batch
            state, tail_sums = step(state, images[full * batch:], labels[full * batch:], keys[-1], teacher_vars, quantized)
            sums = jax.tree.map(jnp.add, sums, tail_sums)
        return state, sums, scores(state, *val)

    @partial(jax.jit, static_argnames="quantized", donate_argnums=0)
    def unrolled_steps(state, images, labels, keys, teacher_vars, quantized):
        """A few batches in one compiled call, as straight-line code: (state, summed scores)."""
        total = None
        for i in range(len(labels)):  # unrolled when traced: the compiled program has no loop
            state, sums = step(state, images[i], labels[i], keys[i], teacher_vars, quantized)
            total = sums if total is None else jax.tree.map(jnp.add, total, sums)
        return state, total

    def chunked_epoch(state, images, labels, seed, number, teacher_vars, val, quantized):
        """One epoch as UNROLLED_STEPS batches per compiled call: XLA's CPU backend runs a convolution
        inside a loop (lax.scan) several times slower than in straight-line code (bench/README.md)."""
        keys = epoch_keys(seed, number)
        batches = (images[:full * batch].reshape(full, batch, *images.shape[1:]), labels[:full * batch].reshape(full, batch))
        per_call = max(k for k in range(1, UNROLLED_STEPS + 1) if full % k == 0)  # one program for every call
        total = None
        for first in range(0, full, per_call):
            state, sums = unrolled_steps(state, batches[0][first:first + per_call], batches[1][first:first + per_call],
                                         keys[first:first + per_call], teacher_vars, quantized)
            total = sums if total is None else jax.tree.map(jnp.add, total, sums)
        if tail:  # the last, smaller batch
            state, sums = unrolled_steps(state, images[None, full * batch:], labels[None, full * batch:], keys[-1:],
                                         teacher_vars, quantized)
            total = jax.tree.map(jnp.add, total, sums) if total is not None else sums
        return state, total, jitted_scores(state, *val)

    jitted_scores = jax.jit(scores)
    convolutional = any("Conv" in type(layer).__name__ for layer in model._flatten_layers(include_self=False))
    epoch = chunked_epoch if convolutional else scanned_epoch

    history = {}
    shuffle = np.random.default_rng(recipe.seed)  # the order of the images, a new one each epoch
    live = redraws_in_place(sys.stdout)  # Keras' progress bar; elsewhere one plain line per epoch
    with max_pool_as_reshape():  # the compiled calls are traced in the first epoch
        for e in range(recipe.epochs):
            quantized = e >= recipe.epochs - recipe.qat_tail
            title = f"Epoch {e + 1}/{recipe.epochs}" + (f" (int{recipe.weight_bits} weights)" if quantized else "")
            if verbose and live:
                print(title)
                bar = keras.utils.Progbar(steps_per_epoch, stateful_metrics=[
                    "loss", "accuracy", "crossentropy", "val_loss", "val_accuracy", "val_crossentropy"])
            start = time.perf_counter()
            order = shuffle.permutation(n)  # shuffled on the host: a gather in the compiled loop costs more
            state, sums, val_scores = epoch(state, images[order], labels[order], recipe.seed, e, teacher_vars, val, quantized)
            check_interrupt()  # Ctrl-C stops training after this epoch even if its KeyboardInterrupt was swallowed
            logs = {**{k: float(v) / n for k, v in sums.items()}, **{k: float(v) for k, v in val_scores.items()}}
            for k, v in logs.items():
                history.setdefault(k, []).append(v)
            if verbose and live:
                bar.update(steps_per_epoch, values=list(logs.items()), finalize=True)
            elif verbose:
                print(epoch_line(title, steps_per_epoch, time.perf_counter() - start, logs), flush=True)
    for variable, value, shape in zip(model.trainable_variables, state[0], shapes):
        variable.assign(value.reshape(shape))
    return history


def epoch_line(title: str, steps: int, seconds: float, logs: dict) -> str:
    """One epoch as one plain line, in the words of Keras' progress bar:
    `Epoch 1/20 - 1875/1875 - 1.2s 640us/step - accuracy: 0.8903 - loss: 0.3928 - ...`."""
    per_step = seconds / steps
    per_step = f"{per_step * 1e6:.0f}us/step" if per_step < 1e-3 else f"{per_step * 1e3:.0f}ms/step"
    return " - ".join([title, f"{steps}/{steps}", f"{seconds:.1f}s {per_step}", *(f"{k}: {v:.4f}" for k, v in logs.items())])


def versions() -> dict:
    import keras

    return {"python": platform.python_version(), "numpy": np.__version__, "keras": keras.__version__,
            "backend": keras.backend.backend()}


def save_run(result: TrainResult, run_dir: Path, force: bool = False, int8_model: bytes | None = None,
             command: str = "") -> Path:
    """Write the run folder atomically (with `int8_model`, also its model_int8.tflite, as search's best/ does).

    An existing folder is replaced only with `force`, and only if tinydigits wrote it.
    """
    from .plots import training_curves

    run_dir = Path(run_dir)
    with staged_folder(run_dir, "run", command or "tinydigits.train.save_run", force) as tmp:
        with keras_without_tensorflow():
            result.model.save(tmp / RUN_FILES.model)
        write_json(tmp / RUN_FILES.history, result.history)
        write_json(tmp / RUN_FILES.metrics, result.metrics)
        loss = "MSE" if result.recipe.loss == "mse" else "cross-entropy"
        save_figure(training_curves(result.history, title=result.recipe.name, loss_name=loss), tmp / RUN_FILES.curves)
        if int8_model is not None:
            write_bytes(tmp / RUN_FILES.int8_model, int8_model)
    return run_dir


def summary_line(result: TrainResult, run_dir: Path | None = None) -> str:
    m = result.metrics
    where = f" -> {run_dir}" if run_dir else ""
    return (f"{result.recipe.name}: test accuracy {m['test_accuracy']:.4f}, test loss {m['test_loss']:.4f}, "
            f"{m['params']:,} params, {m['train_seconds']:.1f} s{where}")
