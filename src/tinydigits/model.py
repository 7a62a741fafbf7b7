"""The training recipe and the network it builds.

`Recipe()` is the lesson, exactly: Flatten(28x28) -> Dense(20, relu) -> Dense(10, softmax), Adam at
lr 0.001, sparse categorical cross-entropy, 20 epochs of batch 32. Every other design tinydigits
trains (the lesson's variations, the search's candidates) is the same recipe with fields changed.

    recipe = Recipe().replace(hidden=(64, 32), activation="tanh")
    model = build_model(recipe)            # keras.Sequential, not compiled
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import TinyDigitsError

NUM_CLASSES = 10
IMAGE_SIZE = 28  # MNIST images are 28x28 pixels
ACTIVATIONS = ("relu", "linear", "sigmoid", "tanh")
LOSSES = ("crossentropy", "mse")
INPUT_SIZES = (28, 14, 7)  # 14 and 7: the image average-pooled 2x2 or 4x4 before the dense layers


@dataclass(frozen=True)
class Recipe:
    hidden: tuple[int, ...] = (20,)     # units per hidden layer; () is softmax regression
    activation: str = "relu"            # of the hidden layers; "linear" shows why a non-linearity matters
    loss: str = "crossentropy"          # or "mse" on one-hot targets: "from regression to classification"
    epochs: int = 20
    batch_size: int = 32                # Keras' default
    lr: float = 0.001                   # Adam's default learning rate
    seed: int = 0                       # same seed, same weights and same result on CPU
    dataset: str = "mnist"
    input_size: int = 28                # pixels per side the dense layers see (28, 14 or 7)
    validation_split: float = 0.0       # >0: hold out the last part of the training images (search)

    def __post_init__(self):
        checks = [
            (all(isinstance(h, int) and h > 0 for h in self.hidden), f"hidden sizes must be positive integers, got {self.hidden}"),
            (self.activation in ACTIVATIONS, f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"),
            (self.loss in LOSSES, f"loss {self.loss!r} is not one of {', '.join(LOSSES)}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 10, f"learning rate must be in (0, 10), got {self.lr}"),
            (self.input_size in INPUT_SIZES, f"input size must be one of {INPUT_SIZES}, got {self.input_size}"),
            (0 <= self.validation_split < 1, f"validation split must be in [0, 1), got {self.validation_split}"),
        ]
        for ok, message in checks:
            if not ok:
                raise TinyDigitsError(message)

    def replace(self, **changes) -> "Recipe":
        """A copy with fields changed by name; an unknown name is an error, not a silent no-op."""
        known = {f.name for f in dataclasses.fields(self)}
        unknown = sorted(set(changes) - known)
        if unknown:
            raise TinyDigitsError(f"unknown recipe field {unknown[0]!r} (known: {', '.join(sorted(known))})")
        if "hidden" in changes:
            changes["hidden"] = tuple(changes["hidden"])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"] = list(self.hidden)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        return cls().replace(**d)

    @property
    def name(self) -> str:
        """A short label such as `h20-relu-ce` (used by compare and search)."""
        size = "" if self.input_size == IMAGE_SIZE else f"{self.input_size}px-"
        hidden = "x".join(map(str, self.hidden)) or "none"
        training = (f"-lr{self.lr:g}" if self.lr != Recipe.lr else "") + \
                   (f"-b{self.batch_size}" if self.batch_size != Recipe.batch_size else "")
        return f"{size}h{hidden}-{self.activation}-{'ce' if self.loss == 'crossentropy' else 'mse'}{training}"


def build_model(recipe: Recipe = Recipe()):
    """The network as a literal keras.Sequential; the lesson's default reads as its diagram."""
    import keras
    from keras import layers

    pool = IMAGE_SIZE // recipe.input_size
    downsample = [layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1)),
                  layers.AveragePooling2D(pool)] if pool > 1 else []
    return keras.Sequential([
        keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE)),                       # (N, 28, 28) float32 in [0, 1]
        *downsample,                                                       # (N, 28/p, 28/p, 1)
        layers.Flatten(),                                                  # (N, 784) for the lesson
        *[layers.Dense(units, activation=recipe.activation) for units in recipe.hidden],
        layers.Dense(NUM_CLASSES, activation="softmax"),                   # (N, 10) probabilities
    ], name=recipe.name.replace("-", "_"))


def compile_model(model, recipe: Recipe = Recipe(), steps_per_execution: int = 1):
    """Adam, the recipe's loss, accuracy. MSE compares the softmax output with one-hot targets."""
    import keras

    if recipe.loss == "crossentropy":
        loss = keras.losses.SparseCategoricalCrossentropy()
    else:
        def loss(y_true, y_pred):  # labels (N,) -> one-hot (N, 10), then mean squared error
            one_hot = keras.ops.one_hot(keras.ops.cast(keras.ops.reshape(y_true, (-1,)), "int32"), NUM_CLASSES)
            return keras.ops.mean(keras.ops.square(one_hot - y_pred), axis=-1)
        loss.__name__ = "mse_one_hot"
    # an MSE-trained model also reports cross-entropy per epoch, so its curves compare with the others
    extra = [] if recipe.loss == "crossentropy" else [keras.metrics.SparseCategoricalCrossentropy(name="crossentropy")]
    model.compile(optimizer=keras.optimizers.Adam(learning_rate=recipe.lr), loss=loss,
                  metrics=["accuracy", *extra], steps_per_execution=steps_per_execution, jit_compile=True)
    return model
