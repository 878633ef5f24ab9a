"""The MLP family: the perceptron's XOR limit, digits, regression, every activation."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.layers import ACTIVATIONS


def test_perceptron_cannot_learn_xor_but_one_hidden_layer_can(runs_dir):
    linear = zoo.train("perceptron", "xor", runs_dir=runs_dir, epochs=40, learning_rate=0.05, verbose=0)
    hidden = zoo.train("mlp", "xor", runs_dir=runs_dir, epochs=40, depth=1, units=16, learning_rate=0.05,
                       verbose=0)
    assert linear.metrics["test_accuracy"] < 0.8  # the best line gets 3 of 4 corners
    assert hidden.metrics["test_accuracy"] > 0.95
    assert len(linear.model.layers) == 2  # input and output: nothing hidden


def test_multiclass_digits_reaches_95_percent(runs_dir):
    run = zoo.train("mlp", "digits", runs_dir=runs_dir, epochs=40, units=128, depth=1, verbose=0)
    assert run.metrics["test_accuracy"] >= 0.95


def test_regression_on_diabetes_beats_the_mean(runs_dir):
    run = zoo.train("mlp", "diabetes", runs_dir=runs_dir, epochs=60, units=32, depth=1, learning_rate=0.01,
                    verbose=0)
    # rmse is in the targets' units (the loss is on standardised targets)
    assert run.metrics["test_rmse"] ** 2 < 0.9 * run.metrics["baseline_test_mse"]  # linear regression: 0.77
    # predictions come out in the targets' own units (the output head un-standardises)
    x, y = run.dataset.arrays["test"]
    assert abs(float(run.model.predict(x, verbose=0).mean()) - float(y.mean())) < 0.5 * float(y.std())


def test_binary_classification_has_one_sigmoid_unit():
    model = zoo.build("mlp", input_shape=(30,), num_classes=2)
    assert model.output_shape == (None, 1)
    assert model.get_layer("output").activation.__name__ == "sigmoid"
    model = zoo.build("mlp", input_shape=(8, 8, 1), num_classes=10, depth=3, widths=[32, 16, 8])
    assert model.output_shape == (None, 10)
    assert [model.get_layer(f"dense{i}").units for i in (1, 2, 3)] == [32, 16, 8]
    assert zoo.build("mlp", input_shape=(4,), num_targets=2).output_shape == (None, 2)


@pytest.mark.parametrize("activation", ACTIVATIONS)
def test_every_activation_builds_and_learns(activation):
    import keras

    keras.utils.set_random_seed(0)
    model = zoo.build("mlp", input_shape=(4,), num_classes=3, depth=2, units=8, activation=activation)
    model.compile(optimizer=keras.optimizers.Adam(0.01), loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(64, 4)).astype("float32")
    y = (x[:, 0] > 0).astype("int64") + (x[:, 1] > 0)
    losses = model.fit(x, y, epochs=5, batch_size=16, verbose=0).history["loss"]
    assert np.all(np.isfinite(losses)) and losses[-1] < losses[0]


def test_maxout_and_prelu_save_and_reload(tmp_path):
    import keras

    for activation in ("maxout", "prelu", "leaky_relu"):
        model = zoo.build("mlp", input_shape=(5,), num_classes=3, activation=activation, maxout_pieces=3)
        path = tmp_path / f"{activation}.keras"
        model.save(path)
        again = keras.saving.load_model(path)
        x = np.random.default_rng(1).normal(size=(4, 5)).astype("float32")
        assert np.allclose(model.predict(x, verbose=0), again.predict(x, verbose=0), atol=1e-6)
    maxout = zoo.build("mlp", input_shape=(5,), num_classes=3, depth=1, units=6, activation="maxout",
                       maxout_pieces=3)
    assert maxout.get_layer("dense1").count_params() == (5 + 1) * 6 * 3


def test_regularisation_batchnorm_and_init():
    model = zoo.build("mlp", input_shape=(6,), num_classes=3, l2=1e-3, l1=1e-4, batch_norm=True,
                      initializer="he_normal", dropout=0.3)
    assert model.get_layer("dense1_bn") is not None and model.get_layer("dense1_dropout").rate == pytest.approx(0.3)
    assert len(model.losses) == 3  # one weight penalty per Dense kernel: two hidden + output
    assert model.get_layer("dense1").kernel_initializer.__class__.__name__ == "HeNormal"
