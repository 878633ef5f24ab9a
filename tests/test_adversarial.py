"""Adversarial examples (FGSM, PGD) and adversarial training for any classifier."""

from __future__ import annotations

import json
import zipfile

import numpy as np
import pytest

from zoo import adversarial as adv
from zoo.cli import main
from zoo.errors import ZooError
from zoo.registry import get_spec, list_models
from zoo.spec import ModelSpec
from zoo.training import Run, train

QUICK = {"epochs": 4, "units": 32, "batch_size": 64, "patience": 0}
FULL = {**QUICK, "epochs": 15}  # ~95% test accuracy: attacks of different strength rank clearly


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """An MLP trained normally on the 8x8 digits (inputs scaled to [0, 1]), well enough
    (~95% test accuracy) that attacks of different strength rank clearly."""
    return train("mlp", "digits", runs_dir=tmp_path_factory.mktemp("runs"), verbose=0, **FULL)


def _batch(run, n=64):
    x, y = run.dataset.arrays["test"]
    return x[:n], y[:n]


def test_fgsm_stays_within_eps_and_valid_range(trained):
    x, y = _batch(trained)
    x_adv = np.asarray(adv.fgsm(trained.model, x, y, 0.1, clip=(0.0, 1.0)))
    delta = x_adv - x
    assert np.max(np.abs(delta)) <= 0.1 + 1e-6
    assert x_adv.min() >= 0.0 and x_adv.max() <= 1.0
    # a sign step: unclipped pixels move by exactly eps, and many pixels do
    inside = (x > 0.1) & (x < 0.9)
    np.testing.assert_allclose(np.abs(delta[inside]), 0.1, atol=1e-6)
    assert np.mean(np.abs(delta) > 0.05) > 0.3
    unclipped = np.asarray(adv.fgsm(trained.model, x, y, 0.1, clip=None))
    assert unclipped.min() < 0.0  # pixels at 0 are pushed below without clipping


def test_pgd_within_eps_and_at_least_as_strong_as_fgsm(trained):
    x, y = trained.dataset.arrays["test"]
    x_pgd = np.asarray(adv.pgd(trained.model, x[:64], y[:64], 0.1, steps=10, clip=(0.0, 1.0)))
    assert np.max(np.abs(x_pgd - x[:64])) <= 0.1 + 1e-6
    assert x_pgd.min() >= 0.0 and x_pgd.max() <= 1.0
    metrics, examples = adv.robustness(trained.model, x, y, eps=(0.05, 0.1), steps=20, clip=(0.0, 1.0))
    assert metrics["clean_accuracy"] == pytest.approx(trained.metrics["test_accuracy"], abs=1e-6)
    for eps in ("0.05", "0.1"):
        assert metrics[f"pgd20_eps{eps}_accuracy"] <= metrics[f"fgsm_eps{eps}_accuracy"]
        assert metrics[f"fgsm_eps{eps}_accuracy"] < metrics["clean_accuracy"]
    assert metrics["pgd20_eps0.1_accuracy"] <= metrics["pgd20_eps0.05_accuracy"]
    assert examples["x_adv"].shape == examples["x"].shape


def test_logits_are_the_softmax_pre_activation(trained):
    import keras

    x, _ = _batch(trained, 8)
    logits = adv.logits_function(trained.model)(x)
    np.testing.assert_allclose(keras.ops.softmax(logits), trained.model.predict(x, verbose=0), atol=1e-5)


def test_adversarial_training_through_zoo_train(tmp_path, trained):
    run = train("mlp", "digits", runs_dir=tmp_path, verbose=0, adversarial={"attack": "fgsm", "eps": 0.1}, **FULL)
    assert run.config["adversarial"]["attack"] == "fgsm"
    assert run.config["adversarial"]["clip"] == [0.0, 1.0]  # the data's value range
    robust = run.metrics["robustness"]
    assert {"clean_accuracy", "fgsm_eps0.1_accuracy", "pgd10_eps0.1_accuracy"} <= set(robust)
    assert json.loads((run.dir / "metrics.json").read_text())["robustness"] == robust
    assert (run.dir / "robustness.png").exists() and (run.dir / "adversarial_examples.png").exists()
    # same seed, data and epochs: the adversarially trained model resists FGSM better
    x, y = run.dataset.arrays["test"]
    standard, _ = adv.robustness(trained.model, x, y, eps=(0.1,), attacks=("fgsm",), clip=(0.0, 1.0))
    assert robust["fgsm_eps0.1_accuracy"] > standard["fgsm_eps0.1_accuracy"]


def test_saved_model_has_no_attack_code(tmp_path):
    import keras

    run = train("mlp", "digits", runs_dir=tmp_path, verbose=0, adversarial="pgd", **{**QUICK, "epochs": 1})
    with zipfile.ZipFile(run.dir / "model.keras") as z:
        config = z.read("config.json").decode()
    assert "AdversarialTrainer" not in config and "adversarial" not in config
    loaded = Run.load(run.dir).model
    assert type(loaded) is keras.Model or loaded.__class__.__name__ == "Functional"
    assert loaded.name == "mlp"
    # the checkpoint of the fitted wrapper reloads too, and predicts as the classifier
    checkpoint = keras.saving.load_model(run.dir / "checkpoint.keras")
    assert type(checkpoint).__name__ == "AdversarialTrainer"
    x, _ = _batch(run, 4)
    assert checkpoint.predict(x, verbose=0).shape == loaded.predict(x, verbose=0).shape


def test_every_classifier_is_adversarial_capable():
    assert {"mlp", "perceptron", "lstm"} <= set(list_models(capability="adversarial"))
    regression_only = ModelSpec(name="reg", family="x", summary="", tasks=("regression",), build=lambda hp, d: None)
    assert "adversarial" not in regression_only.all_capabilities
    assert "adversarial" in get_spec("mlp").all_capabilities and not get_spec("mlp").capabilities  # not declared


def test_attack_config_defaults_and_errors():
    pgd = adv.attack_config({"attack": "pgd", "eps": 0.3, "steps": 40}, value_range=(0.0, 1.0))
    assert pgd.alpha == 0.01 and pgd.starts_random and pgd.clip == (0.0, 1.0)  # Madry et al.'s step
    assert pgd.label() == "pgd40_eps0.3"
    fgsm = adv.attack_config("fgsm")
    assert fgsm.alpha == fgsm.eps and not fgsm.starts_random and fgsm.iterations == 1
    assert adv.attack_config({"attack": "fgsm", "clip": "none"}, value_range=(0, 1)).clip is None
    for bad in ({"attack": "cw"}, {"eps": -1}, {"adv_weight": 2}, {"epsilon": 0.1}):
        with pytest.raises(ZooError):
            adv.attack_config(bad)


def test_binary_classifier_on_standardised_features_is_not_clipped(tmp_path):
    run = train("perceptron", "breast_cancer", runs_dir=tmp_path, verbose=0, adversarial={"attack": "fgsm", "eps": 0.5},
                **{**QUICK, "epochs": 2})
    assert run.config["adversarial"]["clip"] is None  # standardised data has no bounded range
    robust = run.metrics["robustness"]
    assert robust["attack_clip"] is None
    # PGD's default step is Madry et al.'s 0.01: ten steps reach 0.1 of the 0.5 ball, weaker than FGSM's one 0.5 step
    assert robust["fgsm_eps0.5_accuracy"] < robust["clean_accuracy"] and robust["pgd10_eps0.5_accuracy"] < robust[
        "clean_accuracy"]
    x, y = run.dataset.arrays["test"]
    x_adv = np.asarray(adv.fgsm(run.model, x, y, 0.5, clip=None))
    np.testing.assert_allclose(np.abs(x_adv - x), 0.5, atol=1e-5)  # every feature moves by eps


def test_adversarial_refuses_regression(tmp_path):
    with pytest.raises(ZooError, match="classifiers"):
        train("mlp", "diabetes", runs_dir=tmp_path, verbose=0, adversarial="fgsm", epochs=1)


def test_cli_train_and_attack(tmp_path, capsys):
    code = main(["train", "perceptron", "-d", "digits", "--epochs", "2", "--runs-dir", str(tmp_path), "--run-name",
                 "r", "-q", "--adversarial", "fgsm", "--eps", "0.05", "--adv-weight", "0.3"])
    assert code == 0
    config = json.loads((tmp_path / "r" / "config.json").read_text())
    assert config["adversarial"]["eps"] == 0.05 and config["adversarial"]["adv_weight"] == 0.3
    capsys.readouterr()
    assert main(["attack", str(tmp_path / "r"), "--eps", "0.05,0.2", "--attacks", "fgsm,pgd", "--steps", "5",
                 "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert {"fgsm_eps0.05_accuracy", "fgsm_eps0.2_accuracy", "pgd5_eps0.2_accuracy"} <= set(printed)
    saved = json.loads((tmp_path / "r" / "metrics.json").read_text())["robustness"]
    assert saved["pgd5_eps0.2_accuracy"] == printed["pgd5_eps0.2_accuracy"]
    assert main(["train", "mlp", "--eps", "0.1"]) == 2  # --eps without --adversarial
    assert main(["attack", str(tmp_path / "missing")]) == 2
