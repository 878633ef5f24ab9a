"""RBM layer and model, greedy stacking and the DBN, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from zoo.cli import main as zoo_main  # noqa: E402
from zoo.data import load  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.plugins import rbm as rbm_plugin  # noqa: E402
from zoo.plugins import rbm_layers  # noqa: E402
from zoo.training import Run, train  # noqa: E402


@pytest.fixture(scope="module")
def digits():
    ds = load("digits", seed=0)
    x = ds.arrays["train"][0].reshape(-1, 64)
    return ds, x


def _error(rbm, x) -> float:
    return float(np.mean((x - np.asarray(rbm.reconstruct(x))) ** 2))


def _sampled_error(rbm, x, samples: int = 50) -> float:
    """The expected squared error of E[v | h] with h ~ p(h | x), Bernoulli units, in NumPy."""
    kernel, hidden_bias, visible_bias = (np.asarray(w) for w in (rbm.kernel, rbm.hidden_bias, rbm.visible_bias))
    sigmoid = lambda a: 1 / (1 + np.exp(-a))  # noqa: E731
    p = sigmoid(x @ kernel + hidden_bias)
    rng = np.random.default_rng(0)
    return float(np.mean([np.mean((x - sigmoid((rng.random(p.shape) < p) @ kernel.T + visible_bias)) ** 2)
                          for _ in range(samples)]))


@pytest.mark.parametrize("cd_k,persistent", [(1, False), (2, True)])
def test_contrastive_divergence_lowers_reconstruction_error(digits, cd_k, persistent):
    ds, x = digits
    keras.utils.set_random_seed(0)
    model = rbm_layers.rbm_model((64,), 32, cd_k=cd_k, persistent=persistent, n_chains=16, seed=0)
    rbm_layers.init_visible_bias(model.rbm, x)
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
    xval = ds.arrays["val"][0].reshape(-1, 64)
    before = _error(model.rbm, xval)
    history = model.fit(x, x, batch_size=16, epochs=3, verbose=0, validation_data=(xval, xval)).history
    after = _error(model.rbm, xval)
    assert after < 0.8 * before
    assert history["loss"][-1] < history["loss"][0]
    assert history["loss"] == history["reconstruction_error"]
    assert np.all(np.isfinite(history["pseudo_log_likelihood"]))
    # validation reports the training figure: the error of E[v | h], h sampled from p(h | v);
    # one sample per row, so compare with its expectation (estimated with 50 samples in NumPy)
    assert abs(history["val_loss"][-1] - _sampled_error(model.rbm, xval)) < 0.05 * after
    assert history["val_loss"][-1] > after  # sampling the hidden states costs accuracy
    if persistent:
        chains = np.asarray(model.rbm.chains)
        assert chains.shape == (16, 64) and set(np.unique(chains)) <= {0.0, 1.0} and chains.any()


def test_free_energy_of_data_below_noise_after_training(digits):
    ds, x = digits
    keras.utils.set_random_seed(1)
    model = rbm_layers.rbm_model((64,), 32, seed=1)  # biases start at zero: no head start for the data
    model.compile(optimizer=keras.optimizers.SGD(0.1, momentum=0.5))
    rng = np.random.default_rng(0)
    xtest = ds.arrays["test"][0].reshape(-1, 64)
    noise = rng.uniform(0, 1, xtest.shape).astype("float32")

    def gap():
        return float(np.mean(model.rbm.free_energy(noise)) - np.mean(model.rbm.free_energy(xtest)))

    before = gap()
    model.fit(x, x, batch_size=16, epochs=3, verbose=0)
    after = gap()
    assert abs(before) < 1.0  # untrained: tiny weights, zero biases
    assert after > 5.0  # trained: the data is far more probable than noise


def test_gaussian_visible_units_on_standardised_data(digits):
    _, x = digits
    z = (x - x.mean(axis=0)) / (x.std(axis=0) + 1e-6)
    assert rbm_layers.default_visible(z) == "gaussian"
    model, history = rbm_layers.train_rbm(z, 32, epochs=3, batch_size=16, learning_rate=0.01, seed=0)
    assert model.rbm.visible == "gaussian"
    assert "pseudo_log_likelihood" not in history  # defined for binary units only
    assert np.all(np.isfinite(history["loss"]))
    assert history["loss"][-1] < 0.8 * history["loss"][0]
    recon = np.asarray(model.rbm.reconstruct(z[:5]))
    assert recon.min() < 0 < recon.max()  # real-valued visible means, not probabilities


def test_sampling_and_feature_transform(digits):
    _, x = digits
    model, _ = rbm_layers.train_rbm(x[:200], 16, epochs=1, batch_size=20, seed=0)
    rbm = model.rbm
    h = np.asarray(rbm.sample_hidden(x[:10]))
    v = np.asarray(rbm.gibbs(x[:10], steps=3))
    assert h.shape == (10, 16) and set(np.unique(h)) <= {0.0, 1.0}
    assert v.shape == (10, 64) and set(np.unique(v)) <= {0.0, 1.0}
    features = model.predict(x[:10], verbose=0)
    np.testing.assert_allclose(features, rbm_layers.transform(rbm, x[:10]), atol=1e-6)
    assert np.all((features > 0) & (features < 1))


def test_rbm_rejects_bad_settings():
    with pytest.raises(ZooError, match="visible units"):
        rbm_layers.RBM(8, visible="poisson")
    with pytest.raises(ZooError, match="cd_k"):
        rbm_layers.RBM(8, cd_k=0)


def test_keras_file_round_trip(digits, tmp_path):
    _, x = digits
    model, _ = rbm_layers.train_rbm(x[:200], 16, epochs=1, batch_size=20, persistent=True, cd_k=2, seed=0)
    path = tmp_path / "rbm.keras"
    model.save(path)
    loaded = keras.saving.load_model(path)
    assert isinstance(loaded, rbm_layers.RBMModel) and isinstance(loaded.rbm, rbm_layers.RBM)
    assert loaded.rbm.get_config() == model.rbm.get_config()
    np.testing.assert_allclose(loaded.predict(x[:8], verbose=0), model.predict(x[:8], verbose=0), atol=1e-6)
    np.testing.assert_array_equal(np.asarray(loaded.rbm.chains), np.asarray(model.rbm.chains))
    loaded.compile(optimizer=keras.optimizers.SGD(0.1))
    loaded.fit(x[:40], x[:40], batch_size=20, epochs=1, verbose=0)  # still trainable by CD


@pytest.mark.parametrize("propagate", ["probabilities", "samples"])
def test_greedy_stacking_trains_each_layer_on_the_previous_output(digits, propagate):
    _, x = digits
    x = x[:200]
    seen = {}
    stack = rbm_layers.train_stack(x, [24, 12, 6], propagate=propagate, epochs=1, batch_size=20, seed=0,
                                   on_layer=lambda i, model, inputs, history: seen.update({i: inputs}))
    rbms = [model.rbm for model, _ in stack]
    assert [r.units for r in rbms] == [24, 12, 6]
    assert [r.kernel.shape for r in rbms] == [(64, 24), (24, 12), (12, 6)]
    np.testing.assert_array_equal(seen[1], x)
    for i in (2, 3):
        below = rbms[i - 2]
        if propagate == "probabilities":
            np.testing.assert_allclose(seen[i], rbm_layers.transform(below, seen[i - 1]), atol=1e-6)
        else:  # samples of the layer below's hidden units: binary, with its probabilities as means
            assert set(np.unique(seen[i])) <= {0.0, 1.0}
            probs = rbm_layers.transform(below, seen[i - 1])
            assert abs(seen[i].mean() - probs.mean()) < 0.05
    for model, history in stack:
        assert len(history["loss"]) == 1 and np.isfinite(history["loss"][0])


def test_dbn_unrolls_the_pretrained_weights(digits, monkeypatch):
    ds, _ = digits
    spec = rbm_plugin.dbn
    hp = spec.resolve({"widths": [20, 10], "pretrain_epochs": 1})
    model = spec.build(hp, ds.spec)
    produced = []
    real = rbm_plugin.pretrain_rbms

    def recording(*args, **kwargs):
        produced.extend(real(*args, **kwargs))
        return produced

    monkeypatch.setattr(rbm_plugin, "pretrain_rbms", recording)
    spec.pretrain(model, ds, hp, None)
    assert [r.units for r in produced] == [20, 10]
    for i, r in enumerate(produced, start=1):
        kernel, bias = model.get_layer(f"dense{i}").get_weights()
        np.testing.assert_array_equal(kernel, np.asarray(r.kernel))
        np.testing.assert_array_equal(bias, np.asarray(r.hidden_bias))


def test_dbn_without_pretraining_keeps_random_start(digits):
    ds, _ = digits
    spec = rbm_plugin.dbn
    hp = spec.resolve({"widths": [8], "pretrain_epochs": 0})
    keras.utils.set_random_seed(0)
    model = spec.build(hp, ds.spec)
    before = [w.copy() for w in model.get_weights()]
    spec.pretrain(model, ds, hp, None)
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights()))


def test_zoo_train_rbm_end_to_end_writes_run_directory(runs_dir):
    code = zoo_main(["train", "rbm", "--dataset", "digits", "--epochs", "2", "--set", "units=16",
                     "--runs-dir", str(runs_dir), "--run-name", "rbm", "-q"])
    assert code == 0
    d = runs_dir / "rbm"
    for name in ("config.json", "history.json", "metrics.json", "model.keras", "checkpoint.keras",
                 "learning_curves.png", "filters.png", "reconstructions.png", "codes.png"):
        assert (d / name).is_file(), name
    history = json.loads((d / "history.json").read_text())
    assert {"loss", "val_loss", "pseudo_log_likelihood", "reconstruction_error"} <= history.keys()
    metrics = json.loads((d / "metrics.json").read_text())
    assert metrics["status"] == "completed" and metrics["test_loss"] < metrics["baseline_test_mse"] * 1.1
    run = Run.load(d)
    assert isinstance(run.model, rbm_layers.RBMModel) and run.model.rbm.units == 16
    # a fresh process: loading the spec module without Keras stays light, Run.load still finds the RBM classes
    code = ("import sys; import zoo.plugins.rbm; light = 'keras' not in sys.modules; "
            "from zoo.training import Run; m = Run.load(sys.argv[1]).model; "
            "print(light, type(m).__name__, m.rbm.units)")
    out = subprocess.run([sys.executable, "-c", code, str(d)], capture_output=True, text=True, check=True)
    assert out.stdout.split()[-3:] == ["True", "RBMModel", "16"]


def test_dbn_train_end_to_end_with_pretraining(runs_dir):
    run = train("dbn", "digits", runs_dir=runs_dir, run_name="dbn", verbose=0, epochs=2, widths=[16, 16],
                pretrain_epochs=1)
    d = run.dir
    for name in ("pretraining.json", "rbm1_filters.png", "filters.png", "codes.png", "model.keras"):
        assert (d / name).is_file(), name
    assert set(json.loads((d / "pretraining.json").read_text())) == {"rbm1", "rbm2"}
    assert run.metrics["test_accuracy"] > run.metrics["baseline_test_accuracy"]


def test_dbn_bad_widths_is_a_user_error(digits):
    ds, _ = digits
    with pytest.raises(ZooError, match="widths"):
        rbm_plugin.dbn.build(rbm_plugin.dbn.resolve({"widths": []}), ds.spec)


def _random_rbm(n_visible: int, units: int, **rbm_args) -> rbm_layers.RBM:
    """An RBM layer with N(0, 1) weights and biases (rng seed 0), for checks against NumPy."""
    layer = rbm_layers.RBM(units, **rbm_args)
    layer.build((None, n_visible))
    rng = np.random.default_rng(0)
    layer.kernel.assign(rng.normal(0, 1, (n_visible, units)).astype("float32"))
    layer.hidden_bias.assign(rng.normal(0, 1, units).astype("float32"))
    layer.visible_bias.assign(rng.normal(0, 1, n_visible).astype("float32"))
    return layer


def test_pseudo_log_likelihood_matches_flipping_one_unit():
    v = (np.random.default_rng(3).uniform(size=(5, 11)) > 0.5).astype("float32")

    def make():
        return _random_rbm(11, 7, seed=5)

    pll = np.asarray(make().pseudo_log_likelihood(v))
    ref_layer = make()  # same seed: the same units get flipped
    index = np.asarray(keras.random.randint((5,), 0, 11, seed=ref_layer.seed_generator))
    flipped = v.copy()
    flipped[np.arange(5), index] = 1 - flipped[np.arange(5), index]
    gap = np.asarray(ref_layer.free_energy(flipped)) - np.asarray(ref_layer.free_energy(v))
    np.testing.assert_allclose(pll, 11 * -np.logaddexp(0, -gap), rtol=1e-4, atol=1e-4)


def test_cd1_gradients_match_the_textbook_formulas():
    """CD-1 as Hinton (2002) writes it, in NumPy, against the fused products of
    `contrastive_divergence`, with the same sampled hidden states (same seed)."""
    v0 = (np.random.default_rng(1).uniform(size=(6, 9)) > 0.5).astype("float32")

    def make():
        return _random_rbm(9, 4, seed=2, weight_decay=0.01)

    (g_kernel, g_hidden, g_visible), a0, reconstruction = make().contrastive_divergence(v0)
    ref = make()
    w, c, b = (np.asarray(x) for x in (ref.kernel, ref.hidden_bias, ref.visible_bias))
    sigmoid = lambda x: 1 / (1 + np.exp(-x))  # noqa: E731
    h0 = sigmoid(v0 @ w + c)
    u = np.asarray(keras.random.uniform(h0.shape, seed=ref.seed_generator))
    h = np.floor(h0 + u)  # Bernoulli(h0): 1 where u >= 1 - h0
    assert set(np.unique(h)) == {0.0, 1.0}
    v1 = sigmoid(h @ w.T + b)
    h1 = sigmoid(v1 @ w + c)
    tol = dict(rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(a0), v0 @ w + c, **tol)
    np.testing.assert_allclose(np.asarray(reconstruction), v1, **tol)
    np.testing.assert_allclose(np.asarray(g_kernel), (v1.T @ h1 - v0.T @ h0) / 6 + 0.01 * w, **tol)
    np.testing.assert_allclose(np.asarray(g_hidden), (h1 - h0).mean(axis=0), **tol)
    np.testing.assert_allclose(np.asarray(g_visible), (v1 - v0).mean(axis=0), **tol)


def test_history_figures_are_means_over_examples():
    means = rbm_layers.ExampleMeans(["a", "b"], aliases={"loss": "a"})
    means.update_state(np.array([[1.0, 10.0], [3.0, 20.0]], "float32"))
    means.update_state(np.array([[5.0, 30.0]], "float32"))  # a smaller last batch counts per example
    result = {k: float(v) for k, v in means.result().items()}
    assert result == {"loss": 3.0, "a": 3.0, "b": 20.0}
    means.reset_state()
    assert float(means.result()["a"]) == 0.0


def test_training_figures_energy_on_a_share_of_each_batch():
    """A train step reports the reconstruction error of every row and the free energy of the
    first ceil(n / MONITOR_SHARE) rows, both with the weights before the update."""
    x = (np.random.default_rng(2).uniform(size=(20, 9)) > 0.5).astype("float32")
    keras.utils.set_random_seed(0)
    model = rbm_layers.rbm_model((9,), 4, seed=0)
    model.compile(optimizer=keras.optimizers.SGD(0.1))
    rbm = model.rbm
    rbm.kernel.assign(np.random.default_rng(0).normal(0, 1, (9, 4)).astype("float32"))
    rows = -(-len(x) // model.MONITOR_SHARE)
    assert rows == 3
    free_energy = np.asarray(rbm.free_energy(x))
    figures = {k: float(v) for k, v in model.train_step((x,)).items()}
    assert figures["free_energy"] == pytest.approx(float(free_energy[:rows].mean()), rel=1e-5)
    assert figures["free_energy"] != pytest.approx(float(free_energy.mean()), rel=1e-3)
    assert float(model.reconstruction.count) == len(x) and float(model.energy.count) == rows
    assert figures["loss"] == figures["reconstruction_error"] > 0
    # validation: every row, with the updated weights
    model.energy.reset_state()
    after = float(np.asarray(rbm.free_energy(x)).mean())
    assert after != pytest.approx(float(free_energy.mean()), rel=1e-3)
    assert float(model.test_step((x,))["free_energy"]) == pytest.approx(after, rel=1e-5)


def test_binary_data_as_uint8_trains_exactly_as_float32(digits):
    _, x = digits
    binary = (x > 0.5).astype("float32")
    weights = []
    for data in (binary, binary.astype("uint8")):
        keras.utils.set_random_seed(0)
        model = rbm_layers.rbm_model((64,), 16, seed=0)
        model.compile(optimizer=keras.optimizers.SGD(0.1))
        model.fit(data, batch_size=32, epochs=1, verbose=0)
        weights.append(model.get_weights())
    for a, b in zip(*weights):
        np.testing.assert_array_equal(a, b)
    assert not np.allclose(weights[0][0], 0, atol=0.05)  # it trained
