import pytest

from tinydigits.errors import TinyDigitsError
from tinydigits.model import RECIPES, Recipe, build_model, learning_rate


def test_default_recipe_is_the_lesson():
    r = Recipe()
    assert (r.hidden, r.activation, r.loss, r.epochs, r.batch_size, r.lr, r.dataset, r.input_size) == \
        ((20,), "relu", "crossentropy", 20, 32, 0.001, "mnist", 28)


def test_lesson_model_shape_and_parameter_count():
    model = build_model(Recipe())
    assert [type(layer).__name__ for layer in model.layers] == ["Flatten", "Dense", "Dense"]
    assert [layer.units for layer in model.layers[1:]] == [20, 10]
    assert model.layers[1].activation.__name__ == "relu" and model.layers[2].activation.__name__ == "softmax"
    assert model.count_params() == 15910  # 784*20 + 20 + 20*10 + 10
    assert model.output_shape == (None, 10)


@pytest.mark.parametrize("changes, params", [
    ({"hidden": (64, 32)}, 784 * 64 + 64 + 64 * 32 + 32 + 32 * 10 + 10),
    ({"hidden": ()}, 7850),                                   # softmax regression
    ({"input_size": 14}, 196 * 20 + 20 + 210),               # 2x2 average pooling first
    ({"input_size": 7, "hidden": (32,)}, 49 * 32 + 32 + 330),
])
def test_variants(changes, params):
    assert build_model(Recipe().replace(**changes)).count_params() == params


@pytest.mark.parametrize("changes, message", [
    ({"activation": "swish"}, "activation 'swish'"),
    ({"loss": "hinge"}, "loss 'hinge'"),
    ({"epochs": 0}, "epochs must be at least 1"),
    ({"hidden": (0,)}, "hidden sizes"),
    ({"lr": -1.0}, "learning rate"),
    ({"input_size": 16}, "input size"),
    ({"dropout": 0.5}, "unknown recipe field 'dropout'"),
])
def test_bad_recipes_are_refused_by_name(changes, message):
    with pytest.raises(TinyDigitsError, match=message):
        Recipe().replace(**changes)


def test_recipe_round_trips_through_a_dict():
    r = Recipe(hidden=(64, 32), activation="tanh", seed=3)
    assert Recipe.from_dict(r.to_dict()) == r
    assert r.name == "h64x32-tanh-ce"
    assert Recipe(lr=0.01, batch_size=64).name == "h20-relu-ce-lr0.01-b64"  # variants differing in training only
    assert Recipe(input_size=14, hidden=()).name == "14px-hnone-relu-ce"


def test_low_bit_weights_name_the_design_and_default_to_a_qat_tail():
    """4-bit weights are part of the stored design (-w4); without qat_epochs the last half of the epochs are
    quantization-aware, an explicit count (0 included: post-training rounding) wins, and 8 bits keep none."""
    r = Recipe(weight_bits=4)
    assert (r.design, r.name, r.qat_tail) == ("h20-relu-ce-w4", "h20-relu-ce-w4-qat10", 10)
    assert Recipe(weight_bits=4, epochs=2).qat_tail == 1 and Recipe(weight_bits=4, epochs=1).qat_tail == 1
    assert Recipe(weight_bits=4, qat_epochs=0).qat_tail == 0 and Recipe(weight_bits=2, qat_epochs=3).qat_tail == 3
    assert Recipe().replace(weight_bits=4).qat_tail == 10  # the default follows the bits, also through replace
    assert Recipe.from_dict(r.to_dict()) == r


def test_new_training_fields_default_to_the_lesson():
    r = Recipe()
    assert (r.schedule, r.shift, r.rotate, r.scale, r.elastic, r.label_smoothing, r.teacher, r.qat_tail, r.weight_bits) == \
        ("constant", 0.0, 0.0, 0.0, 0.0, 0.0, "", 0, 8)
    assert not r.augmented and r.training_tag == "" and RECIPES["lesson"] == {}
    better = Recipe(**RECIPES["better"])
    assert better.augmented and better.epochs > r.epochs and better.name.startswith("h20-relu-ce-e60-")


@pytest.mark.parametrize("changes, message", [
    ({"schedule": "warm"}, "schedule 'warm'"),
    ({"shift": 7.0}, "shift must be in"),
    ({"rotate": -1.0}, "rotate must be in"),
    ({"scale": 0.5}, "scale must be in"),
    ({"elastic": 101.0}, "elastic must be in"),
    ({"label_smoothing": 1.0}, "label smoothing"),
    ({"distill_weight": 0.0}, "distill weight"),
    ({"qat_epochs": 21}, "qat epochs"),
    ({"weight_bits": 3}, "weight bits must be one of 8, 4, 2, got 3"),
    ({"seed": -1}, "seed must be in"),
    ({"seed": 2**32}, "seed must be in"),
])
def test_bad_training_fields_are_refused(changes, message):
    with pytest.raises(TinyDigitsError, match=message):
        Recipe().replace(**changes)


@pytest.mark.parametrize("size, params", [(12, 144 * 20 + 20 + 210), (10, 100 * 20 + 20 + 210)])
def test_cropped_inputs(size, params):
    model = build_model(Recipe(input_size=size))
    assert [type(layer).__name__ for layer in model.layers][:3] == ["Reshape", "AveragePooling2D", "Cropping2D"]
    assert model.count_params() == params


@pytest.mark.parametrize("schedule, at, expected", [
    ("constant", [0, 500, 999], [3e-3, 3e-3, 3e-3]),
    ("cosine", [0, 500, 1000], [3e-3, 1.5e-3, 0.0]),
    ("onecycle", [0, 300, 650, 1000], [3e-3 / 25, 3e-3, 1.5e-3, 0.0]),  # warm-up over 30%, then cosine
])
def test_learning_rate_schedules(schedule, at, expected):
    lr = learning_rate(Recipe(schedule=schedule, lr=3e-3, epochs=10), steps_per_epoch=100)
    values = [float(lr(step)) if callable(lr) else lr for step in at]
    assert values == pytest.approx(expected, abs=1e-7)
