"""Deep autoencoders: layer plan, the three starts, denoising, the classifier on
the encoder, and `zoo train` end to end, on scikit-learn's 8x8 digits."""

from __future__ import annotations

import json

import numpy as np
import pytest

keras = pytest.importorskip("keras")

from zoo.data import load  # noqa: E402
from zoo.errors import ZooError  # noqa: E402
from zoo.plugins import autoencoder as ae  # noqa: E402
from zoo.training import Run, train  # noqa: E402

TINY = {"widths": [24, 12], "code_size": 4, "pretrain_epochs": 1, "pretrain_batch_size": 32}


@pytest.fixture(scope="module")
def digits():
    return load("digits", seed=0)


def _build(digits, **overrides):
    hp = ae.autoencoder.resolve({**TINY, **overrides})
    keras.utils.set_random_seed(0)
    return ae.build(hp, digits.spec), hp


def test_symmetric_layer_plan_with_named_code_and_reconstruction(digits):
    model, hp = _build(digits)
    x = digits.arrays["test"][0][:5]
    assert model.output_shape == (None, 8, 8, 1)
    assert model.get_layer("code").units == 4 and model.get_layer("code").activation.__name__ == "linear"
    assert model.output_names == ["reconstruction"]
    assert model.get_layer("reconstruction").output is model.outputs[0]
    units = [layer.units for layer in model.layers if isinstance(layer, keras.layers.Dense)]
    assert units == [24, 12, 4, 12, 24, 64]
    assert model.get_layer("decoder_output").activation.__name__ == "sigmoid"  # pixels in [0, 1]
    enc, dec = ae.encoder(model), ae.decoder(model)
    assert enc.output_shape == (None, 4)
    np.testing.assert_allclose(dec.predict(enc.predict(x, verbose=0), verbose=0), model.predict(x, verbose=0),
                               atol=1e-5)


def test_default_plan_is_hinton_salakhutdinov():
    hp = ae.autoencoder.resolve({})
    assert ae.hidden_widths(hp) == [1000, 500, 250] and hp["code_size"] == 30
    assert ae.hidden_widths({**hp, "depth": 2, "units": 64}) == [64, 32]


def test_linear_output_for_standardised_data():
    wine = load("wine", seed=0)
    model = ae.build(ae.autoencoder.resolve({"widths": [8], "code_size": 2}), wine.spec)
    assert model.get_layer("decoder_output").activation.__name__ == "linear"
    assert model.output_shape == (None, 13)


def test_rbm_start_unrolls_the_stack_into_encoder_and_decoder(digits):
    model, hp = _build(digits, init="rbm")
    random_start = [w.copy() for w in model.get_weights()]
    ae.initialise(model, digits.arrays["train"][0], hp, digits.spec, None)
    enc = [model.get_layer(n) for n in ("encoder_dense1", "encoder_dense2", "code")]
    dec = [model.get_layer(n) for n in ("decoder_output", "decoder_dense2", "decoder_dense1")]
    for up, down in zip(enc, dec):  # RBM i: W up, W^T down
        np.testing.assert_array_equal(down.get_weights()[0], up.get_weights()[0].T)
    assert not any(np.array_equal(a, b) for a, b in zip(random_start, model.get_weights()) if a.ndim == 2)


def test_rbm_start_gives_better_reconstructions_than_random(digits):
    x = digits.arrays["train"][0]
    xtest = digits.arrays["test"][0]
    errors = {}
    for init in ("random", "rbm"):
        model, hp = _build(digits, init=init, pretrain_epochs=3, pretrain_batch_size=16)
        ae.initialise(model, x, hp, digits.spec, None)
        errors[init] = float(np.mean((model.predict(xtest, verbose=0) - xtest) ** 2))
    assert errors["rbm"] < errors["random"]


def test_rbm_start_needs_sigmoid_units(digits):
    model, hp = _build(digits, init="rbm", activation="relu")
    with pytest.raises(ZooError, match="sigmoid"):
        ae.initialise(model, digits.arrays["train"][0], hp, digits.spec, None)


def test_stacked_autoencoders_train_each_level(digits, tmp_path):
    model, hp = _build(digits, init="autoencoders", pretrain_epochs=2, learning_rate=0.01)
    before = {n: model.get_layer(n).get_weights()[0].copy() for n in ("encoder_dense1", "code", "decoder_output")}
    ae.initialise(model, digits.arrays["train"][0], hp, digits.spec, tmp_path)
    histories = json.loads((tmp_path / "pretraining.json").read_text())
    assert list(histories) == ["autoencoder1", "autoencoder2", "autoencoder3"]
    for h in histories.values():
        assert h["loss"][-1] < h["loss"][0]
    for name, w in before.items():
        assert not np.array_equal(w, model.get_layer(name).get_weights()[0]), name


def test_denoising_noise_only_in_training(digits):
    model, _ = _build(digits, noise=0.3)
    assert model.get_layer("input_noise") is not None
    x = digits.arrays["test"][0][:16]
    a, b = model(x, training=False), model(x, training=False)
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert not np.allclose(np.asarray(model(x, training=True)), np.asarray(a))
    gaussian, _ = _build(digits, noise=0.2, noise_type="gaussian")
    assert isinstance(gaussian.get_layer("input_noise"), keras.layers.GaussianNoise)
    with pytest.raises(ZooError, match="noise_type"):
        _build(digits, noise_type="salt")


def test_zoo_train_autoencoder_end_to_end_writes_figures(runs_dir):
    from zoo.cli import main

    # a 2-unit sigmoid code learns nothing at Adam's 1e-3 in a few epochs (it stays at the mean image): 1e-2
    code = main(["train", "autoencoder-rbm", "--dataset", "digits", "--epochs", "5", "--lr", "0.01", "--set",
                 "widths=16", "--set", "code_size=2", "--set", "pretrain_epochs=1", "--runs-dir", str(runs_dir),
                 "--run-name", "ae", "-q"])
    assert code == 0
    d = runs_dir / "ae"
    for name in ("filters.png", "reconstructions.png", "codes.png", "pretraining.json", "model.keras"):
        assert (d / name).is_file(), name
    run = Run.load(d)
    assert run.config["task"] == "reconstruction"
    assert run.model.get_layer("code").units == 2
    assert run.metrics["test_mse"] < run.metrics["baseline_test_mse"]


def test_autoencoder_classifier_uses_the_pretrained_encoder(runs_dir):
    run = train("autoencoder-classifier", "digits", runs_dir=runs_dir, run_name="clf", verbose=0, epochs=1,
                widths=[16], code_size=8, pretrain_epochs=2, init="autoencoders", freeze_encoder=True,
                learning_rate=0.01)
    pretrained = keras.saving.load_model(run.dir / "autoencoder.keras")
    for name in ("encoder_dense1", "code"):  # frozen: fine-tuning left the encoder as pretrained
        for a, b in zip(pretrained.get_layer(name).get_weights(), run.model.get_layer(name).get_weights()):
            np.testing.assert_array_equal(a, b)
    assert (run.dir / "codes.png").is_file()
    assert run.metrics["test_accuracy"] > run.metrics["baseline_test_accuracy"]
