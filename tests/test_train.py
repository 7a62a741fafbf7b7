"""The training loop, its recipe techniques and the augmentation, on small slices of the real MNIST."""
import dataclasses

import numpy as np
import pytest

from tinydigits.model import Recipe


@pytest.fixture(scope="module")
def small(mnist):
    """2,000 training and 1,000 test images: enough to see learning, quick to train."""
    return dataclasses.replace(mnist, x_train=mnist.x_train[:2000], y_train=mnist.y_train[:2000],
                               x_test=mnist.x_test[:1000], y_test=mnist.y_test[:1000])


def test_distortion_is_the_identity_at_zero_and_moves_pixels_otherwise(mnist):
    import jax

    from tinydigits.augment import distort

    x = mnist.x_test[:64].astype(np.float32) / 255
    assert np.array_equal(np.asarray(distort(jax.random.key(0), x)), x)  # bilinear at integer points: exact
    moved = np.asarray(distort(jax.random.key(0), x, shift=2, rotate=10, scale=0.1, elastic=20))
    assert moved.shape == x.shape and moved.min() >= 0 and moved.max() <= 1
    change = np.abs(moved - x).mean(axis=(1, 2))
    assert (change > 0.01).all() and len(np.unique(change.round(6))) == len(x)  # every image its own distortion
    assert np.abs(moved.sum(axis=(1, 2)) / x.sum(axis=(1, 2)) - 1).max() < 0.35  # ink kept, within the zoom


def test_distortions_keep_the_label(mnist, lesson_run):
    """A model that never saw a distorted digit still reads most of the better recipe's distortions."""
    import jax

    from tinydigits.augment import distort
    from tinydigits.predict import predict_digits
    from tinydigits.runs import Run

    model = Run(lesson_run).model()
    x, y = mnist.x_test[:2000], mnist.y_test[:2000]
    moved = np.asarray(distort(jax.random.key(1), x.astype(np.float32) / 255, shift=1, rotate=5, scale=0.05))
    plain = (predict_digits(model, x).argmax(1) == y).mean()
    distorted = (predict_digits(model, (moved * 255).round().astype(np.uint8)).argmax(1) == y).mean()
    assert 0.85 < distorted <= plain + 0.005  # chance is 0.1: the digits stay readable


def test_augmentation_only_in_training_and_true_progress_counts(small, capsys):
    """Validation scores are of the plain images, the saved network has no augmentation layer, and the
    progress bar counts the real batches (100 images of batch 32: 4 steps, the last one of 4 images)."""
    from tinydigits.predict import predict_digits
    from tinydigits.train import train

    tiny = dataclasses.replace(small, x_train=small.x_train[:100], y_train=small.y_train[:100])
    result = train(Recipe(epochs=2, shift=3, rotate=20, scale=0.2, elastic=30), tiny, verbose=1)
    out = capsys.readouterr().out
    assert out.count("4/4") == 2 and "/4 " not in out.replace("4/4 ", "")
    val = (predict_digits(result.model, tiny.x_test).argmax(1) == tiny.y_test).mean()
    assert result.history["val_accuracy"][-1] == pytest.approx(val, abs=1e-6)
    assert {type(layer).__name__ for layer in result.model.layers} == {"Flatten", "Dense"}


def test_onecycle_schedule_trains_at_a_higher_peak_rate(small):
    from tinydigits.train import train

    constant = train(Recipe(epochs=2), small, verbose=0)
    onecycle = train(Recipe(epochs=2, schedule="onecycle", lr=0.003), small, verbose=0)
    assert constant.metrics["test_accuracy"] > 0.8
    assert onecycle.metrics["test_accuracy"] > constant.metrics["test_accuracy"] - 0.01


def test_losses():
    import jax.numpy as jnp

    from tinydigits.train import distillation_loss, task_loss

    uniform = jnp.full((3, 10), 0.1)
    labels = jnp.array([0, 4, 9])
    for smoothing in (0.0, 0.1):  # uniform outputs cost log(10) whatever the targets
        assert np.allclose(task_loss(Recipe(), labels, uniform, smoothing), np.log(10), atol=1e-6)
    sure = jnp.eye(10)[labels] * 0.91 + 0.01
    assert task_loss(Recipe(), labels, sure, 0.1).mean() > task_loss(Recipe(), labels, sure, 0.0).mean()
    assert np.allclose(distillation_loss(sure, sure), 0, atol=1e-6)
    assert (distillation_loss(uniform, sure) > 0.1).all()


def test_fake_quantize_rounds_per_channel_and_passes_gradients_straight_through():
    import jax
    import jax.numpy as jnp

    from tinydigits.train import fake_quantize

    w = jax.random.normal(jax.random.key(0), (196, 12)) * jnp.linspace(0.1, 2, 12)
    q = np.asarray(fake_quantize(w))
    steps = np.abs(w).max(axis=0) / 127
    assert np.allclose(q / steps, np.round(q / steps), atol=1e-3)           # on each column's int8 grid
    assert np.allclose(np.abs(q).max(axis=0), np.abs(w).max(axis=0), rtol=1e-6)
    assert np.abs(q - w).max() <= steps.max() / 2 + 1e-6
    assert np.array_equal(jax.grad(lambda v: fake_quantize(v).sum())(w), np.ones_like(w))


def test_smoothing_distillation_and_qat_train_a_convertible_model(small, lesson_run):
    from tinydigits.convert import calibration_images, to_tflite
    from tinydigits.runtimes import LiteRT
    from tinydigits.predict import predict_digits
    from tinydigits.train import train

    recipe = Recipe(input_size=10, hidden=(32, 16), epochs=3, label_smoothing=0.1,
                    teacher=str(lesson_run), distill_weight=0.5, qat_epochs=1, shift=1, rotate=5)
    result = train(recipe, small, verbose=0)
    assert result.metrics["test_accuracy"] > 0.6 and len(result.history["loss"]) == 3  # 3 short epochs of 2,000 images
    int8 = to_tflite(result.model, calibration_images(small.x_train, 200))
    agree = (LiteRT(int8).predict(small.x_test).argmax(1) == predict_digits(result.model, small.x_test).argmax(1)).mean()
    assert agree > 0.97


@pytest.mark.parametrize("recipe", [Recipe(hidden=(16,), epochs=3, batch_size=64),
                                    Recipe(conv=(4, 8), hidden=(), epochs=2, batch_size=50)],
                         ids=["dense", "conv"])
def test_our_training_loop_gives_keras_fits_losses(small, recipe):
    """train.fit (one compiled lax.scan per epoch) against Keras' own model.fit, the library it replaces:
    the same initial weights, the same batches in the same order (fit's permutation, fed to Keras with
    shuffle=False), the same Adam. Per-epoch training loss and test accuracy agree within 1e-4 (float32
    sums in another order), and the trained weights within 1e-3."""
    import keras

    from tinydigits.data import normalize
    from tinydigits.model import build_model, make_optimizer
    from tinydigits.train import fit

    keras.utils.set_random_seed(recipe.seed)
    ours, theirs = build_model(recipe), build_model(recipe)
    theirs.set_weights(ours.get_weights())
    x, y, xv, yv = small.x_train, small.y_train.astype(np.int32), small.x_test, small.y_test.astype(np.int32)
    history = fit(ours, recipe, (x, y), (xv, yv), verbose=0)

    theirs.compile(make_optimizer(recipe, -(-len(x) // recipe.batch_size)), keras.losses.SparseCategoricalCrossentropy(),
                   metrics=["accuracy"])
    order = np.random.default_rng(recipe.seed)  # what fit shuffles with
    keras_loss, keras_val = [], []
    for epoch in range(recipe.epochs):
        perm = order.permutation(len(x))
        logs = theirs.fit(normalize(x[perm]), y[perm], batch_size=recipe.batch_size, epochs=epoch + 1, initial_epoch=epoch,
                          shuffle=False, verbose=0, validation_data=(normalize(xv), yv)).history
        keras_loss.append(logs["loss"][0])
        keras_val.append(logs["val_accuracy"][0])
    assert np.allclose(history["loss"], keras_loss, rtol=1e-4, atol=1e-5), (history["loss"], keras_loss)
    assert np.allclose(history["val_accuracy"], keras_val, atol=1e-4)
    assert history["loss"][-1] < history["loss"][0]  # it learned: the comparison is not of two idle models
    for a, b in zip(ours.get_weights(), theirs.get_weights()):
        assert np.allclose(a, b, atol=1e-3)


def test_slant_and_pen_thickness_augmentation(mnist):
    """Slant shears a digit by its own angle; thickness thickens some pens and thins others; zero is the identity."""
    import jax

    from tinydigits.augment import distort
    from tinydigits.preprocess import slant

    x = mnist.x_test[:64].astype(np.float32) / 255
    assert np.array_equal(np.asarray(distort(jax.random.key(0), x, slant=0.0, thickness=0.0)), x)
    slanted = np.asarray(distort(jax.random.key(0), x, slant=20))
    change = np.array([slant(s) - slant(o) for s, o in zip(slanted, x)])
    assert np.abs(change).max() > 0.2 and (change > 0.05).any() and (change < -0.05).any()
    inked = np.asarray(distort(jax.random.key(0), x, thickness=1.0))
    mass = inked.sum(axis=(1, 2)) / x.sum(axis=(1, 2))
    assert (mass > 1.1).any() and (mass < 0.9).any() and inked.min() >= 0 and inked.max() <= 1


def test_init_and_extra_data_fine_tune_from_a_run(small, lesson_run, tmp_path):
    """--init starts from the run's weights (a near-zero learning rate keeps its accuracy); --extra-data
    mixes a folder of pictures in, each repeated; a run of another design is refused."""
    from tinydigits.errors import TinyDigitsError
    from tinydigits.runs import Run
    from tinydigits.synthetic import write_image_folder
    from tinydigits.train import train

    write_image_folder(tmp_path / "mine", small.x_test[:20], small.y_test[:20], "ink")
    recipe = Recipe(epochs=1, lr=1e-7, init=str(lesson_run), extra_data=str(tmp_path / "mine"), extra_repeat=3)
    result = train(recipe, small, verbose=0)
    before = float(np.mean(Run(lesson_run).model().predict(small.x_test / 255, verbose=0).argmax(1) == small.y_test))
    assert abs(result.metrics["test_accuracy"] - before) < 0.01 and before > 0.85
    assert result.metrics["dataset"]["train"] == 2000 + 60 and result.metrics["dataset"]["extra"] == 20
    assert result.recipe.name.endswith("-extra3-init")
    with pytest.raises(TinyDigitsError, match="is not this design"):
        train(Recipe(hidden=(8,), epochs=1, init=str(lesson_run)), small, verbose=0)
