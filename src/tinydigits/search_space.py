"""The designs `search` may try, and what each is expected to cost on the chip before it is trained.

Two families, both Recipe fields: dense (input 28, 14, 12, 10 or 7 px, one to three hidden ReLU
layers) and convolutional (one to three conv blocks of few channels, 3x3 or 5x5 kernels, each
block a convolution and a 2x2 pool or a stride-2 convolution, separable after the first or not,
input 28 or 14 px, then Flatten and an optional small hidden layer), each with int8 or packed int4
weights (`weight_bits`: twice the weights in the same flash, trained through the int4 grid). The estimates only order the
candidates and skip the impossible: every candidate the search trains is built for the board and
measured there (search.evaluate_candidate).

    designs = candidates(Budget(flash=8 * 1024, ram=2 * 1024), Recipe(**RECIPES["better"]))
    estimate(Recipe(conv=(8, 16), hidden=()))     # Estimate(weights=9088, flash=11.8 KB..., arena=7,840)
"""
from __future__ import annotations

from dataclasses import dataclass

from .model import IMAGE_SIZE, NUM_CLASSES, Recipe

WIDTHS = (8, 12, 16, 24, 32, 48, 64, 96, 128, 192, 256)
SECOND_WIDTHS = (8, 16, 32, 64, 96)  # second hidden layer
THIRD_WIDTHS = (16, 32)              # third hidden layer
# dense: the cropped 10x10 and 12x12 inputs won at every budget in bench/recipe_sweep.py, then 14, then 7 and 28
INPUT_TIERS = {10: 0, 12: 0, 14: 1, 7: 2, 28: 2}
CONV_FILTERS = ((4,), (8,), (4, 8), (6, 12), (8, 8), (8, 16), (12, 24), (16, 32), (4, 8, 16), (8, 12, 16),
                (8, 16, 16), (8, 16, 32), (16, 32, 32), (16, 32, 64))
CONV_HIDDEN = ((), (16,), (32,))
WEIGHT_BITS = (4, 8)      # int4 first: in bench/winners.json it won every budget
DENSE_CODE_BYTES = 1550   # flash of the dense inference code itself (-Os, Cortex-M4, the fast kernels), measured
CONV_CODE_BYTES = 2700    # ... with the convolution, pooling kernels too (c8x16 on the Nano 33 BLE: 11,608 - 9,394 B)
UNIT_BYTES = 9            # flash per output channel or unit: int32 bias, int32 multiplier, int8 shift
STACK_BYTES = 200         # an inference's stack beside its arena, about (measured per candidate)
TARGET_SHARE = 0.96       # candidates whose estimated flash is closest to this share of the budget go first


@dataclass(frozen=True)
class Budget:
    flash: int                 # bytes: the model's code + constant tables as built for `board`
    ram: int                   # bytes: the model's data + bss (its activations) + inference stack, on `board`
    board: str = "nano33ble"   # the board (targets.BOARDS) whose build is measured

    def fits(self, row: dict) -> bool:
        return row["flash_bytes"] <= self.flash and row["ram_bytes"] <= self.ram


@dataclass(frozen=True)
class Estimate:
    weights: int      # weight values (each bits / 8 bytes)
    channels: int     # output channels and units: each a bias, a multiplier and a shift
    arena: int        # bytes of activations live at once, at the worst op
    code: int         # bytes of kernels
    bits: int = 8     # per weight: 8, or 4 packed two to a byte

    @property
    def weight_bytes(self) -> int:
        return -(-self.weights * self.bits // 8)

    @property
    def flash(self) -> int:
        return self.weight_bytes + UNIT_BYTES * self.channels + self.code

    @property
    def ram(self) -> int:
        return self.arena + STACK_BYTES


def estimate(recipe: Recipe) -> Estimate:
    """Weights, channels, activation peak and code of `recipe`'s network, counted from its shapes."""
    side = recipe.input_size
    weights, channels, channels_in = 0, 0, 1
    arena = IMAGE_SIZE * IMAGE_SIZE + (side * side if side < IMAGE_SIZE else 0)  # the input, and its pooled copy
    for i, filters in enumerate(recipe.conv):
        k2 = recipe.kernel * recipe.kernel
        if recipe.separable and i > 0:
            weights += k2 * channels_in + channels_in * filters   # depthwise, then pointwise
            channels += channels_in + filters
        else:
            weights += k2 * channels_in * filters
            channels += filters
        full = -(-side // recipe.stride)                           # 'same' padding
        out = full if recipe.stride == 2 else full // 2
        arena = max(arena, side * side * channels_in + full * full * filters, full * full * filters + out * out * filters)
        side, channels_in = out, filters
    sizes = [side * side * channels_in, *recipe.hidden, NUM_CLASSES]
    for a, b in zip(sizes, sizes[1:]):
        weights += a * b
        channels += b
        arena = max(arena, a + b)
    return Estimate(weights, channels, arena, CONV_CODE_BYTES if recipe.conv else DENSE_CODE_BYTES,
                    8 if recipe.weight_bits == 8 else 4)  # ternary weights are stored as int4


def flash_estimate(recipe: Recipe) -> int:
    return estimate(recipe).flash


def dense_designs(base: Recipe) -> list[Recipe]:
    hidden = ([(w,) for w in WIDTHS] + [(a, b) for a in WIDTHS for b in SECOND_WIDTHS if b < a]
              + [(a, b, c) for a in WIDTHS for b in SECOND_WIDTHS for c in THIRD_WIDTHS if c < b <= a])
    return [base.replace(input_size=size, hidden=h, conv=(), weight_bits=bits)
            for bits in WEIGHT_BITS for size in INPUT_TIERS for h in hidden]


def conv_designs(base: Recipe) -> list[Recipe]:
    designs = []
    for filters in CONV_FILTERS:
        for kernel in (3, 5):
            for stride in (1, 2):
                for separable in ((False, True) if len(filters) > 1 else (False,)):
                    for size in (28, 14):
                        if size >> len(filters) < 2:
                            continue
                        for hidden in CONV_HIDDEN:
                            designs += [base.replace(conv=filters, kernel=kernel, stride=stride, separable=separable,
                                                     input_size=size, hidden=hidden, pool="max", weight_bits=bits)
                                        for bits in WEIGHT_BITS]
    return designs


def tier(recipe: Recipe) -> int:
    """The order families are tried in: convolutions first (they won every accuracy-per-byte record,
    see bench/README.md), plain 3x3 before 5x5 and separable, then dense by input size."""
    if recipe.conv:
        return (recipe.kernel != 3) + recipe.separable + (recipe.input_size != IMAGE_SIZE)
    return 3 + INPUT_TIERS[recipe.input_size]


def candidates(budget: Budget, base: Recipe, space: str = "all") -> list[Recipe]:
    """Every design of `space` (dense, conv or all) whose estimated flash and RAM fit the budget: by
    tier, deeper convolutions and fewer hidden layers first, then the ones closest to TARGET_SHARE of
    the flash budget."""
    base = base.replace(activation="relu", loss="crossentropy")
    designs = (dense_designs(base) if space in ("dense", "all") else []) + (conv_designs(base) if space in ("conv", "all") else [])
    possible = [r for r in designs if estimate(r).flash <= budget.flash and estimate(r).ram <= budget.ram]
    return sorted(possible, key=lambda r: (tier(r), r.weight_bits, -len(r.conv), len(r.hidden),
                                           abs(estimate(r).flash - TARGET_SHARE * budget.flash)))
