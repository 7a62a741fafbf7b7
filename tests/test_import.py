"""`tinydigits import`: other people's Keras models (functional and Sequential, .keras and .h5) and int8
.tflite files become run folders every later command takes; what cannot run is refused in one line."""
import json
import shutil

import numpy as np
import pytest

from conftest import needs

from tinydigits.cli import main


def fit_briefly(model, mnist, scale=1.0, images=6000, epochs=2, lr=0.001):
    """A user's model, trained as they would (Keras' own fit), briefly."""
    import keras

    x = (mnist.x_train[:images].astype("float32") / 255) * scale
    model.compile(keras.optimizers.Adam(lr), "sparse_categorical_crossentropy")
    model.fit(x.reshape(len(x), *model.input_shape[1:]), mnist.y_train[:images], epochs=epochs, batch_size=64, verbose=0)
    return model


@pytest.fixture(scope="module")
def residual_cnn(mnist, tmp_path_factory):
    """A functional CNN with what tutorials use: BatchNormalization, a ReLU layer, a residual Add,
    a separable and a depthwise convolution (multiplier 2), ReLU6, global average pooling, Dropout."""
    import keras
    from keras import layers

    x = keras.Input((28, 28, 1))
    h = layers.Conv2D(8, 3, padding="same", use_bias=False)(x)
    h = layers.ReLU()(layers.BatchNormalization(momentum=0.9)(h))  # its statistics settle within a short fit
    h = layers.MaxPooling2D()(h)
    h = layers.Add()([h, layers.Conv2D(8, 3, padding="same", activation="relu")(h)])
    h = layers.SeparableConv2D(16, 3, strides=2, padding="same", activation="relu")(h)
    h = layers.ReLU(6.0)(layers.DepthwiseConv2D(3, padding="same", depth_multiplier=2)(h))
    h = layers.Dropout(0.2)(layers.GlobalAveragePooling2D()(h))
    model = fit_briefly(keras.Model(x, layers.Dense(10, activation="softmax")(h), name="their_cnn"), mnist,
                        images=12000, epochs=3, lr=0.01)  # ~90% test accuracy: enough for int8 vs float to mean something
    path = tmp_path_factory.mktemp("models") / "their_cnn.keras"
    model.save(path)
    return path


@needs(shutil.which("cc") is None, "a C compiler")
def test_a_functional_cnn_imports_converts_and_its_c_is_tflms(residual_cnn, mnist, tmp_path, capsys):
    from tinydigits.runs import Run
    from tinydigits.runtimes import TFLM, LiteRT
    from tinydigits.targets.host import compile_host, run_batch

    run = tmp_path / "mine"
    assert main(["import", residual_cnn, "--out", run]) == 0
    out = capsys.readouterr().out
    assert out.startswith(f"imported {residual_cnn} (keras, ") and f"-> {run}" in out
    metrics = json.loads((run / "metrics.json").read_text())
    assert metrics["imported"]["format"] == "keras" and metrics["recipe"] is None and metrics["test_accuracy"] > 0.8
    assert "tinydigits import" in json.loads((run / ".tinydigits.json").read_text())["created_by"]
    assert main(["convert", run]) == 0
    deploy = json.loads((run / "deploy.json").read_text())
    assert {"CONV_2D", "ADD", "DEPTHWISE_CONV_2D", "MEAN", "MAX_POOL_2D", "FULLY_CONNECTED", "SOFTMAX"} <= set(deploy["ops"])
    forms = {f["form"]: f for f in deploy["forms"]}
    assert abs(forms["TFLM int8"]["accuracy"] - forms["Keras float32"]["accuracy"]) <= 0.015
    assert main(["export-c", run, "--out", tmp_path / "fw"]) == 0
    int8 = Run(run).int8_model()
    q = np.concatenate([LiteRT(int8).prepare(mnist.x_test[:300]).reshape(300, -1),
                        np.random.default_rng(0).integers(-128, 128, (300, 784)).astype(np.int8)])
    c_out = run_batch(compile_host(tmp_path / "fw" / "c", sanitize=True), q)
    assert (c_out == TFLM(int8).run(q)).all()
    facts = json.loads((tmp_path / "fw" / "c" / "tinydigits_model.json").read_text())
    assert facts["arena_bytes"] <= facts["tflm_arena_bytes"]
    assert main(["predict", run, "--index", "0", "--json"]) == 0  # Keras' own model answers too
    assert json.loads(capsys.readouterr().out.strip().splitlines()[-1])["label"] == 7


def test_a_flat_h5_model_on_0_255_pixels(mnist, tmp_path, capsys):
    """A Sequential .h5 taking 784 pixels of 0-255: --pixels 0-255 folds the scaling into its first Dense,
    exactly (the run's model, given p/255, answers as theirs does given p)."""
    import keras
    from keras import layers

    from tinydigits.predict import predict_digits
    from tinydigits.runs import Run

    model = fit_briefly(keras.Sequential([keras.Input((784,)), layers.Dense(32, activation="relu"), layers.Dropout(0.1),
                                          layers.Dense(10), layers.Activation("softmax")]), mnist, scale=255.0)
    model.save(tmp_path / "flat.h5")
    assert main(["import", tmp_path / "flat.h5", "--pixels", "0-255", "--out", tmp_path / "run"]) == 0
    ours = predict_digits(Run(tmp_path / "run").model(), mnist.x_test[:200])
    theirs = model.predict(mnist.x_test[:200].reshape(200, 784).astype("float32"), verbose=0)
    assert np.allclose(ours, theirs, atol=1e-4) and json.loads((tmp_path / "run" / "metrics.json").read_text())[
        "imported"]["format"] == "h5"


@pytest.mark.parametrize("layer, name", [("lstm", "LSTM"), ("transpose", "Conv2DTranspose"), ("gap_max", "GlobalMaxPooling2D")])
def test_an_unsupported_layer_is_refused_in_one_line_before_converting(layer, name, tmp_path, capsys):
    import keras
    from keras import layers

    if layer == "lstm":
        model = keras.Sequential([keras.Input((28, 28)), layers.LSTM(8), layers.Dense(10, activation="softmax")])
    elif layer == "transpose":
        model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2DTranspose(4, 3), layers.Flatten(),
                                  layers.Dense(10, activation="softmax")])
    else:
        model = keras.Sequential([keras.Input((28, 28, 1)), layers.Conv2D(4, 3), layers.GlobalMaxPooling2D(),
                                  layers.Dense(10, activation="softmax")])
    model.save(tmp_path / "m.keras")
    assert main(["import", tmp_path / "m.keras", "--out", tmp_path / "run"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"({name}) cannot be converted; supported: Conv2D" in err[0]
    assert not (tmp_path / "run").exists() and not list(tmp_path.glob(".run*"))


@pytest.mark.parametrize("shape, why", [((32, 32), "is not an MNIST image"), ((28, 28, 3), "is not an MNIST image")])
def test_a_model_that_is_not_for_digits_is_refused(shape, why, tmp_path, capsys):
    import keras
    from keras import layers

    keras.Sequential([keras.Input(shape), layers.Flatten(), layers.Dense(10, activation="softmax")]).save(tmp_path / "m.keras")
    assert main(["import", tmp_path / "m.keras", "--out", tmp_path / "run"]) == 2
    assert why in capsys.readouterr().err and not (tmp_path / "run").exists()
    (tmp_path / "notes.txt").write_text("not a model")
    assert main(["import", tmp_path / "notes.txt", "--out", tmp_path / "run"]) == 2
    assert "not a Keras model (.keras, .h5) or a .tflite file" in capsys.readouterr().err


def test_an_int8_tflite_is_kept_and_rebuilt_as_keras(converted_run, mnist, tmp_path, capsys):
    """Their int8 .tflite is the run's model_int8.tflite, byte for byte; the Keras model rebuilt from it
    (weights dequantized) answers as the int8 model does on nearly every test image."""
    from tinydigits.predict import predict_digits
    from tinydigits.runs import Run
    from tinydigits.runtimes import LiteRT

    int8 = (converted_run / "model_int8.tflite").read_bytes()
    (tmp_path / "theirs.tflite").write_bytes(int8)
    assert main(["import", tmp_path / "theirs.tflite", "--out", tmp_path / "run"]) == 0
    run = Run(tmp_path / "run")
    assert run.int8_model() == int8 and run.imported["format"] == "tflite"
    keras_digits = predict_digits(run.model(), mnist.x_test[:1000]).argmax(1)
    int8_digits = LiteRT(int8).predict(mnist.x_test[:1000]).argmax(1)
    assert (keras_digits == int8_digits).mean() >= 0.99
    assert main(["convert", run.folder]) == 0 and run.refresh().int8_model() == int8  # convert keeps theirs


@needs(shutil.which("cc") is None, "a C compiler")
def test_a_model_that_rescales_its_own_pixels_and_normalizes_after_relu(mnist, tmp_path, capsys):
    """Two tutorial habits: Rescaling(1/255) as the first layer (so it takes 0-255 pixels: --pixels auto
    sees it), and BatchNormalization after the ReLU (nothing before it can absorb it: it becomes a 1x1
    depthwise convolution). Its predictions on 0-255 pixels are the run's on p/255, and its C is TFLM's."""
    import keras
    from keras import layers

    from tinydigits.predict import predict_digits
    from tinydigits.runs import Run
    from tinydigits.runtimes import TFLM, LiteRT
    from tinydigits.targets.host import compile_host, run_batch

    model = fit_briefly(keras.Sequential([
        keras.Input((28, 28, 1)), layers.Rescaling(1 / 255), layers.Conv2D(8, 3, activation="relu"),
        layers.BatchNormalization(momentum=0.9), layers.MaxPooling2D(), layers.Flatten(), layers.Dense(16, activation="relu"),
        layers.BatchNormalization(momentum=0.9), layers.Dense(10, activation="softmax")], name="tutorial"), mnist, scale=255.0)
    model.save(tmp_path / "tutorial.keras")
    assert main(["import", tmp_path / "tutorial.keras", "--out", tmp_path / "run"]) == 0
    run = Run(tmp_path / "run")
    assert run.imported["pixels"] == "0-255"
    theirs = model.predict(mnist.x_test[:300, ..., None].astype("float32"), verbose=0)
    assert np.allclose(predict_digits(run.model(), mnist.x_test[:300]), theirs, atol=1e-4)
    assert main(["convert", run.folder]) == 0 and main(["export-c", run.folder, "--out", tmp_path / "fw"]) == 0
    int8 = run.refresh().int8_model()
    ops = json.loads((run.folder / "deploy.json").read_text())["ops"]
    assert ops.count("DEPTHWISE_CONV_2D") == 2  # the two batch norms
    q = LiteRT(int8).prepare(mnist.x_test[:200]).reshape(200, -1)
    assert (run_batch(compile_host(tmp_path / "fw" / "c"), q) == TFLM(int8).run(q)).all()
