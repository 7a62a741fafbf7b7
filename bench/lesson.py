"""The TinyML lesson's code as written (TensorFlow backend, Keras defaults), timed.

Only the data loading differs: the lesson calls tf.keras.datasets.mnist.load_data(), which needs
the internet; here the same arrays come from tinydigits' verified IDX reader.

    KERAS_BACKEND=tensorflow python bench/lesson.py --seed 0    # prints {"seconds", "test_accuracy"}
"""
import argparse
import json
import os
import time

os.environ["KERAS_BACKEND"] = "tensorflow"
import tensorflow as tf  # noqa: E402

from tinydigits.data import load_dataset  # noqa: E402

parser = argparse.ArgumentParser()
parser.add_argument("--seed", type=int, default=0)
parser.add_argument("--epochs", type=int, default=20)
args = parser.parse_args()
tf.keras.utils.set_random_seed(args.seed)

ds = load_dataset("mnist")
x_train, y_train, x_test, y_test = ds.x_train, ds.y_train, ds.x_test, ds.y_test
x_train, x_test = x_train / 255.0, x_test / 255.0

model = tf.keras.models.Sequential([
    tf.keras.layers.Flatten(input_shape=(28, 28)),
    tf.keras.layers.Dense(20, activation="relu"),
    tf.keras.layers.Dense(10, activation="softmax"),
])
model.compile(optimizer="adam", loss="sparse_categorical_crossentropy", metrics=["accuracy"])
start = time.perf_counter()
history = model.fit(x_train, y_train, epochs=args.epochs, validation_data=(x_test, y_test), verbose=0)
seconds = time.perf_counter() - start
loss, accuracy = model.evaluate(x_test, y_test, verbose=0)
print(json.dumps({"seconds": round(seconds, 2), "test_accuracy": float(accuracy)}))
