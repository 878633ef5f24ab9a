"""LeNet-5's paper training (zoo.sdlm): the Euclidean RBF outputs compute the MAP criterion,
the Gauss-Newton estimates match the exact diagonals, the per-example trainer makes the
updates the paper's SDLM makes, and `zoo train --recipe paper` runs it end to end."""

from __future__ import annotations

import numpy as np
import pytest

import zoo
from zoo.errors import ZooError


def _rbf_model(codes):
    import keras

    from zoo.layers import EuclideanRBF

    inputs = keras.Input((3,))
    features = keras.layers.Dense(codes.shape[1], name="f6")(inputs)
    return keras.Model(inputs, EuclideanRBF(codes, j=10.0, name="output")(features))


CODES = np.array([[1, -1, 1, -1], [-1, -1, 1, 1], [1, 1, -1, -1]], "float32")


def test_rbf_outputs_compute_the_map_criterion():
    """Cross-entropy on the RBF layer's softmax plus its own loss is the paper's eq. 9:
    y_D + log(e^-j + sum_i e^-y_i), y_i the squared distance to code i; even far from
    every code (the criterion there is the distance, not a clipped probability)."""
    model = _rbf_model(CODES)
    model.compile(loss="sparse_categorical_crossentropy")
    rng = np.random.default_rng(0)
    y = np.array([0, 2, 1, 1])
    for scale in (0.05, 1.0, 6.0):
        x = rng.normal(size=(4, 3)).astype("float32") * scale
        f6 = np.asarray(model.get_layer("f6")(x))
        distances = ((f6[:, None] - CODES[None]) ** 2).sum(-1)
        expected = np.mean(distances[np.arange(4), y] + np.log(np.exp(-10.0) + np.exp(-distances).sum(1)))
        assert model.evaluate(x, y, verbose=0) == pytest.approx(expected, rel=1e-4)
        np.testing.assert_allclose(np.asarray(model(x)).sum(1), 1.0, rtol=1e-5)


def test_gauss_newton_estimate_matches_the_exact_diagonal_with_rbf_outputs():
    """With the RBF outputs, H = 2I on the F6 outputs: for F6 = xW + b the exact diagonal is
    2 x_i^2 for W_ij and 2 for b_j, averaged over the examples."""
    from zoo.sdlm import gauss_newton_diagonal

    model = _rbf_model(CODES)
    x = np.random.default_rng(1).normal(size=(16000, 3)).astype("float32")
    kernel, bias = (np.asarray(h) for h in gauss_newton_diagonal(model, x, seed=0))
    exact = 2 * (x ** 2).mean(0)
    np.testing.assert_allclose(kernel, np.repeat(exact[:, None], 4, axis=1), rtol=0.15)
    np.testing.assert_allclose(bias, 2.0, rtol=0.15)


def test_gauss_newton_estimate_matches_the_fisher_diagonal_with_a_softmax():
    """With a softmax, H = diag(p) - pp^T on the logits: W_ij's diagonal is mean x_i^2 p_j (1 - p_j)."""
    import keras

    from zoo.sdlm import gauss_newton_diagonal

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x = np.random.default_rng(2).normal(size=(16000, 3)).astype("float32")
    p = np.asarray(model(x))
    kernel, bias = (np.asarray(h) for h in gauss_newton_diagonal(model, x, seed=0))
    np.testing.assert_allclose(kernel, (x[:, :, None] ** 2 * (p * (1 - p))[:, None, :]).mean(0), rtol=0.15)
    np.testing.assert_allclose(bias, (p * (1 - p)).mean(0), rtol=0.15)


def test_per_example_trainer_updates_after_every_example():
    """One batch of 3 through PerExampleTrainer equals 3 SDLM steps, each on one example's
    gradient taken at the weights the previous example left: w -= eta g / (mu + h)."""
    import keras
    import tensorflow as tf

    from zoo import sdlm
    from zoo.optimizers import SDLM

    inputs = keras.Input((3,))
    model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax")(inputs))
    x = np.random.default_rng(3).normal(size=(3, 3)).astype("float32")
    y = np.array([0, 2, 1])
    kernel, bias = (np.array(w) for w in model.get_weights())
    h = [np.full_like(kernel, 0.5), np.linspace(0.0, 1.0, 3).astype("float32")]
    eta, mu = 0.3, 0.02
    expected = [kernel.copy(), bias.copy()]
    for i in range(3):
        variables = [tf.Variable(expected[0]), tf.Variable(expected[1])]
        with tf.GradientTape() as tape:
            p = tf.nn.softmax(x[i:i + 1] @ variables[0] + variables[1])
            loss = keras.losses.sparse_categorical_crossentropy(y[i:i + 1], p)[0]
        for k, g in enumerate(tape.gradient(loss, variables)):
            expected[k] = expected[k] - eta * np.asarray(g) / (mu + h[k])
    trainer = sdlm.wrap(model)
    trainer.compile(optimizer=SDLM(eta, mu=mu, curvature="gauss-newton"), loss="sparse_categorical_crossentropy")
    trainer.optimizer.set_curvatures(model.trainable_weights, h)
    trainer.fit(x, y, batch_size=3, epochs=1, shuffle=False, verbose=0)
    for got, want in zip(model.get_weights(), expected):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert int(trainer.optimizer.iterations.numpy()) == 3  # the rate schedule counts examples


def test_paper_recipe_trains_end_to_end_and_reloads(tmp_path):
    """`--recipe paper`: RBF outputs, per-example SDLM on Gauss-Newton curvature; the saved
    model reloads and gives posteriors."""
    run = zoo.train("lenet5", "digits", recipe="paper", epochs=2, limit=400, runs_dir=tmp_path, verbose=0)
    assert run.metrics["status"] == "completed" and run.hyperparameters["sdlm_curvature"] == "gauss-newton"
    assert run.metrics["test_accuracy"] > 0.4  # ten classes: chance is 0.1 (measured: 0.68)
    from zoo.training import Run

    again = Run.load(run.dir)
    assert type(again.model.layers[-1]).__name__ == "EuclideanRBF"
    x = run.dataset.arrays["test"][0][:5]
    np.testing.assert_allclose(np.asarray(again.model(x)), np.asarray(run.model(x)), rtol=1e-5)


@pytest.mark.parametrize("overrides, message", [
    ({"optimizer": "adam", "sdlm_curvature": "gauss-newton"}, "use --optimizer sdlm"),
    ({"optimizer": "sdlm", "sdlm_curvature": "newton"}, "sdlm_curvature must be one of fisher, gauss-newton"),
    ({"output": "rbff"}, "LeNet output must be one of softmax, rbf"),
])
def test_bad_sdlm_or_output_settings_are_one_line(tmp_path, overrides, message):
    with pytest.raises(ZooError, match=message):
        zoo.train("lenet5", "digits", epochs=1, limit=60, runs_dir=tmp_path, verbose=0, **overrides)


def test_per_example_sdlm_is_refused_where_it_would_not_run_per_example():
    """Sweeps and the lab compile models themselves: there gauss-newton would silently run
    as batch SDLM with h = 0, so it is refused; so is adversarial training."""
    from zoo.spec import DataSpec
    from zoo.training import build_and_compile

    spec = zoo.get_spec("lenet5")
    hp = spec.resolve({"optimizer": "sdlm", "sdlm_curvature": "gauss-newton", "learning_rate": 1e-4})
    data = DataSpec("tiny", "classification", (28, 28, 1), num_classes=10, input_kind="image", sizes={"train": 10})
    with pytest.raises(ZooError, match="trains through zoo train only"):
        build_and_compile(spec, hp, data)
    with pytest.raises(ZooError, match="per-example step"):
        zoo.train("lenet5", "digits", recipe="paper", adversarial="fgsm", epochs=1, limit=60, verbose=0)


def test_rbf_outputs_need_three_or_more_classes():
    """Two classes are one sigmoid unit in the zoo; the RBF units need a code per class."""
    from zoo.spec import DataSpec
    from zoo.training import build_model

    spec = zoo.get_spec("lenet5")
    data = DataSpec("pairs", "classification", (28, 28, 1), num_classes=2, input_kind="image")
    with pytest.raises(ZooError, match="3 or more classes"):
        build_model(spec, spec.resolve({"output": "rbf"}), data)


def test_interrupted_per_example_run_resumes_with_its_sdlm_state(tmp_path, monkeypatch):
    """A per-example run killed after epoch 2 resumes at epoch 3 with the trainer's optimizer
    (its iterations, so the rate schedule, and its curvatures) restored; the result equals the
    uninterrupted run's."""
    import keras

    from zoo import callbacks

    monkeypatch.setattr(callbacks, "WRITE_BUDGET", 1.0)  # tiny epochs: back up each one

    class Killed(BaseException):
        pass

    class StopAt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise Killed()

    options = dict(recipe="paper", epochs=3, limit=120, runs_dir=tmp_path, verbose=0, lr_boundaries=[1, 2, 3, 4])
    reference = zoo.train("lenet5", "digits", run_name="reference", **options)
    with pytest.raises(Killed):
        zoo.train("lenet5", "digits", run_name="r", callbacks=[StopAt()], **options)
    resumed = zoo.train("lenet5", "digits", run_name="r", **options)
    assert resumed.metrics["epochs_run"] == 3
    np.testing.assert_allclose(resumed.history["loss"], reference.history["loss"], rtol=1e-4)
