"""The training recipe and the network it builds.

`Recipe()` is the lesson, exactly: Flatten(28x28) -> Dense(20, relu) -> Dense(10, softmax), Adam at
lr 0.001, sparse categorical cross-entropy, 20 epochs of batch 32, no schedule, no augmentation.
`conv=(8, 16)` puts the course's next lesson in front of it: each number a convolution block (a 3x3
Conv2D with that many filters and the activation, then a 2x2 max-pool; or a stride-2 convolution
with `stride=2`), before the Flatten.
Every other design tinydigits trains (the lesson's variations, the search's candidates) is the same
recipe with fields changed. `RECIPES["better"]` is the training that buys accuracy per byte: more
epochs of larger batches, a one-cycle learning rate, small random distortions of the training
images and quantization-aware fine-tuning (bench/README.md measures each, and label smoothing and
distillation, which did not pay here).

    recipe = Recipe().replace(hidden=(64, 32), activation="tanh")
    cnn = Recipe(conv=(8, 16), hidden=())          # conv 8 -> pool -> conv 16 -> pool -> Dense(10)
    better = Recipe(**RECIPES["better"])
    model = build_model(recipe)            # keras.Sequential, not compiled
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .errors import TinyDigitsError
from .lowbit import WEIGHT_BITS

NUM_CLASSES = 10
IMAGE_SIZE = 28  # MNIST images are 28x28 pixels
ACTIVATIONS = ("relu", "linear", "sigmoid", "tanh")
LOSSES = ("crossentropy", "mse")
INPUT_SIZES = (28, 14, 12, 10, 7)  # 14, 7: average-pooled 2x2 or 4x4; 12, 10: pooled 2x2, then the border cropped
SCHEDULES = ("constant", "cosine", "onecycle")
ONECYCLE_WARMUP = 0.3      # one-cycle: share of the steps spent warming up from lr / 25 to lr
MAX_ROTATION = 45.0        # degrees: beyond this a 6 and a 9 trade places; augmentation must keep the label
MAX_SHIFT = 6.0            # pixels: MNIST digits sit in a 20x20 box inside 28x28
POOLS = ("max", "avg")
QAT_SHARE = 0.5           # low-bit weights without --qat-epochs: the last half of the epochs are quantization-aware
MAX_THICKNESS = 3.0        # pixels: MNIST's strokes are 2-4 px wide; more erases a thin digit or fills its loops


@dataclass(frozen=True)
class Recipe:
    conv: tuple[int, ...] = ()          # filters per convolution block, before the dense layers; () is the lesson
    kernel: int = 3                     # convolution kernel side, pixels
    pool: str = "max"                   # the 2x2 pooling after each convolution: max or avg
    separable: bool = False             # blocks after the first: depthwise + pointwise (SeparableConv2D)
    stride: int = 1                     # 2: a stride-2 convolution instead of convolution + pooling
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
    schedule: str = "constant"          # learning rate per step: constant (the lesson), cosine to 0, or onecycle
    shift: float = 0.0                  # augmentation (training only): random shift, up to this many pixels
    rotate: float = 0.0                 # augmentation: random rotation, up to this many degrees either way
    scale: float = 0.0                  # augmentation: random zoom by up to this fraction (0.1: 90% to 110%)
    elastic: float = 0.0                # augmentation: elastic distortion, alpha in pixels (Simard et al. 2003: 34)
    slant: float = 0.0                  # augmentation: rows sheared by up to this many degrees, as hands slant
    thickness: float = 0.0              # augmentation: strokes dilated or eroded by up to this many pixels (pens)
    extra_data: str = ""                # a folder of your own digits (DIR/<digit>/*.png|jpg) mixed into training
    extra_repeat: int = 1               # each of those images appears this many times per epoch
    init: str = ""                      # run folder whose weights training starts from (fine-tuning; "" = random)
    label_smoothing: float = 0.0        # targets (1 - e) * one-hot + e / 10: a less over-confident softmax
    teacher: str = ""                   # run folder of a larger trained model to distill from ("" = none)
    distill_weight: float = 0.5         # with a teacher: the share of the loss that follows its softened outputs
    weight_bits: int = 8                # bits per stored weight: 8, 4 (int4, packed two per byte) or 2 (ternary)
    qat_epochs: int | None = None       # the last N epochs train through the weights as stored (quantization-aware);
                                        # None: none at 8 bits, at fewer the last QAT_SHARE of the epochs

    def __post_init__(self):
        checks = [
            (all(isinstance(h, int) and h > 0 for h in self.hidden), f"hidden sizes must be positive integers, got {self.hidden}"),
            (all(isinstance(f, int) and 0 < f <= 512 for f in self.conv), f"conv filters must be integers in 1..512, got {self.conv}"),
            (isinstance(self.kernel, int) and 1 <= self.kernel <= 7, f"kernel must be 1 to 7 pixels, got {self.kernel}"),
            (self.pool in POOLS, f"pool {self.pool!r} is not one of {', '.join(POOLS)}"),
            (self.stride in (1, 2), f"stride must be 1 or 2, got {self.stride}"),
            (self.input_size >> len(self.conv) >= 1, f"{len(self.conv)} conv blocks halve a {self.input_size}px input "
                                                      "to nothing; use fewer"),
            (self.activation in ACTIVATIONS, f"activation {self.activation!r} is not one of {', '.join(ACTIVATIONS)}"),
            (self.loss in LOSSES, f"loss {self.loss!r} is not one of {', '.join(LOSSES)}"),
            (self.epochs >= 1, f"epochs must be at least 1, got {self.epochs}"),
            (self.batch_size >= 1, f"batch size must be at least 1, got {self.batch_size}"),
            (0 < self.lr < 10, f"learning rate must be in (0, 10), got {self.lr}"),
            (self.input_size in INPUT_SIZES, f"input size must be one of {INPUT_SIZES}, got {self.input_size}"),
            (0 <= self.validation_split < 1, f"validation split must be in [0, 1), got {self.validation_split}"),
            (self.schedule in SCHEDULES, f"schedule {self.schedule!r} is not one of {', '.join(SCHEDULES)}"),
            (0 <= self.shift <= MAX_SHIFT, f"shift must be in [0, {MAX_SHIFT:g}] pixels, got {self.shift}"),
            (0 <= self.rotate <= MAX_ROTATION, f"rotate must be in [0, {MAX_ROTATION:g}] degrees, got {self.rotate}"),
            (0 <= self.scale < 0.5, f"scale must be in [0, 0.5), got {self.scale}"),
            (0 <= self.elastic <= 100, f"elastic must be in [0, 100] pixels, got {self.elastic}"),
            (0 <= self.slant <= MAX_ROTATION, f"slant must be in [0, {MAX_ROTATION:g}] degrees, got {self.slant}"),
            (0 <= self.thickness <= MAX_THICKNESS, f"thickness must be in [0, {MAX_THICKNESS:g}] pixels, got {self.thickness}"),
            (self.extra_repeat >= 1, f"extra repeat must be at least 1, got {self.extra_repeat}"),
            (0 <= self.label_smoothing < 1, f"label smoothing must be in [0, 1), got {self.label_smoothing}"),
            (0 < self.distill_weight <= 1, f"distill weight must be in (0, 1], got {self.distill_weight}"),
            (0 <= self.seed < 2**32, f"seed must be in [0, 2**32), got {self.seed}"),
            (self.weight_bits in WEIGHT_BITS, f"weight bits must be one of {', '.join(map(str, WEIGHT_BITS))}, "
                                              f"got {self.weight_bits}"),
            (self.qat_epochs is None or 0 <= self.qat_epochs <= self.epochs,
             f"qat epochs must be in [0, epochs={self.epochs}], got {self.qat_epochs}"),
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
        for key in ("hidden", "conv"):
            if key in changes:
                changes[key] = tuple(changes[key])
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["hidden"], d["conv"] = list(self.hidden), list(self.conv)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "Recipe":
        return cls().replace(**d)

    @property
    def qat_tail(self) -> int:
        """How many final epochs train through the stored weights: qat_epochs, or its default for the weight bits."""
        if self.qat_epochs is not None:
            return self.qat_epochs
        return 0 if self.weight_bits == 8 else max(1, round(self.epochs * QAT_SHARE))

    @property
    def augmented(self) -> bool:
        return any((self.shift, self.rotate, self.scale, self.elastic, self.slant, self.thickness))

    @property
    def name(self) -> str:
        """A short label such as `h20-relu-ce` (used by compare and search); training changes are suffixes."""
        return self.design + self.training_tag

    @property
    def design(self) -> str:
        """The network alone, as stored: `14px-h32-relu-ce`, `c8x16-h20-relu-ce`, `c8x16-k5-avg-sep-s2-hnone-relu-ce`,
        `h20-relu-ce-w4` (4-bit weights)."""
        size = "" if self.input_size == IMAGE_SIZE else f"{self.input_size}px-"
        conv = ""
        if self.conv:
            conv = "c" + "x".join(map(str, self.conv)) + "".join(
                f"-{part}" for part, on in ((f"k{self.kernel}", self.kernel != 3), ("avg", self.pool == "avg"),
                                            ("sep", self.separable), ("s2", self.stride == 2)) if on) + "-"
        hidden = "x".join(map(str, self.hidden)) or "none"
        bits = f"-w{self.weight_bits}" if self.weight_bits != 8 else ""
        return f"{size}{conv}h{hidden}-{self.activation}-{'ce' if self.loss == 'crossentropy' else 'mse'}{bits}"

    @property
    def training_tag(self) -> str:
        """'' for the lesson's training; else e.g. '-e60-b128-onecycle-aug1,5,0.05,0-qat5'."""
        parts = [f"e{self.epochs}" if self.epochs != Recipe.epochs else "",
                 f"lr{self.lr:g}" if self.lr != Recipe.lr else "",
                 f"b{self.batch_size}" if self.batch_size != Recipe.batch_size else "",
                 self.schedule if self.schedule != Recipe.schedule else "",
                 f"aug{self.shift:g},{self.rotate:g},{self.scale:g},{self.elastic:g}" if self.augmented else "",
                 f"slant{self.slant:g}" if self.slant else "",
                 f"pen{self.thickness:g}" if self.thickness else "",
                 f"extra{self.extra_repeat}" if self.extra_data else "",
                 "init" if self.init else "",
                 f"ls{self.label_smoothing:g}" if self.label_smoothing else "",
                 f"kd{self.distill_weight:g}" if self.teacher else "",
                 f"qat{self.qat_tail}" if self.qat_tail else ""]
        return "".join(f"-{p}" for p in parts if p)


# Named trainings, each a set of Recipe fields: the lesson's, and the one measured to buy the most
# accuracy per byte (bench/README.md, "Recipe ablation"). Fields given beside a name override it.
RECIPES = {
    "lesson": {},
    "better": {"epochs": 60, "batch_size": 128, "lr": 0.003, "schedule": "onecycle", "shift": 1.0, "rotate": 5.0,
               "scale": 0.05, "qat_epochs": 5},
}


def conv_blocks(recipe: Recipe) -> list:
    """Each entry of recipe.conv as its layers: Conv2D (or SeparableConv2D after the first) and a 2x2 pool,
    or one stride-2 convolution; 'same' padding, so each block halves the image."""
    from keras import layers

    blocks = []
    for i, filters in enumerate(recipe.conv):
        conv = layers.SeparableConv2D if recipe.separable and i > 0 else layers.Conv2D
        blocks.append(conv(filters, recipe.kernel, strides=recipe.stride, padding="same", activation=recipe.activation))
        if recipe.stride == 1:
            blocks.append(layers.MaxPooling2D(2) if recipe.pool == "max" else layers.AveragePooling2D(2))
    return blocks


def build_model(recipe: Recipe = Recipe()):
    """The network as a literal keras.Sequential; the lesson's default reads as its diagram."""
    import keras
    from keras import layers

    pool = 2 if recipe.input_size in (12, 10) else IMAGE_SIZE // recipe.input_size
    crop = (IMAGE_SIZE // pool - recipe.input_size) // 2
    downsample = [layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1)),
                  layers.AveragePooling2D(pool)] if pool > 1 else []
    downsample += [layers.Cropping2D(crop)] if crop else []
    if recipe.conv and not downsample:
        downsample = [layers.Reshape((IMAGE_SIZE, IMAGE_SIZE, 1))]        # a convolution needs a channel axis
    return keras.Sequential([
        keras.Input(shape=(IMAGE_SIZE, IMAGE_SIZE)),                       # (N, 28, 28) float32 in [0, 1]
        *downsample,                                                       # (N, 28/p, 28/p, 1)
        *conv_blocks(recipe),                                              # (N, 28/2^k, 28/2^k, filters)
        layers.Flatten(),                                                  # (N, 784) for the lesson
        *[layers.Dense(units, activation=recipe.activation) for units in recipe.hidden],
        layers.Dense(NUM_CLASSES, activation="softmax"),                   # (N, 10) probabilities
    ], name=recipe.design.replace("-", "_"))


def learning_rate(recipe: Recipe, steps_per_epoch: int):
    """The recipe's learning rate: a float (constant, the lesson) or a Keras schedule over all the steps.

    cosine: from lr down to 0. onecycle: linear warm-up from lr / 25 to lr over the first 30% of
    the steps, then cosine down to 0 (Keras' CosineDecay with warm-up).
    """
    import keras

    total = recipe.epochs * steps_per_epoch
    if recipe.schedule == "cosine":
        return keras.optimizers.schedules.CosineDecay(recipe.lr, total)
    if recipe.schedule == "onecycle":
        warmup = int(ONECYCLE_WARMUP * total)
        return keras.optimizers.schedules.CosineDecay(recipe.lr / 25, total - warmup, warmup_target=recipe.lr,
                                                      warmup_steps=warmup)
    return recipe.lr


def make_optimizer(recipe: Recipe, steps_per_epoch: int):
    """Adam (Keras' defaults, as the lesson) at the recipe's learning rate or schedule."""
    import keras

    return keras.optimizers.Adam(learning_rate=learning_rate(recipe, steps_per_epoch))
