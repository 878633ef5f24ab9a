"""Recipes: every family's resolve and build; the step schedule, SDLM and the momentum
schedule are Keras optimizers that train; the fixed defaults (hinge on raw scores, RBM
momentum schedule and batches of 100); `zoo reproduce` end to end on bundled data."""

from __future__ import annotations

import json

import numpy as np
import pytest

import zoo
from zoo import recipes, reproduce
from zoo.errors import ZooError
from zoo.spec import Figure
from zoo.training import build_model, make_optimizer


def _every_recipe():
    """One spec per family and recipe name (a family's variants share their recipe's code)."""
    first = {}
    for spec, recipe in recipes.listing():
        first.setdefault((spec.family, recipe.name, recipe.summary), (spec.name, recipe.name))
    return sorted(first.values())


def test_every_family_has_a_paper_recipe():
    families = {spec.family for spec, recipe in recipes.listing() if recipe.name == "paper"}
    everyone = {zoo.get_spec(name).family for name in zoo.list_models()}
    assert families == everyone - {"autoencoder-classifier"}  # a classifier on a pretrained encoder: no paper


@pytest.mark.parametrize("model, recipe", _every_recipe())
def test_recipe_resolves_and_builds(model, recipe):
    """Each recipe's hyperparameters resolve on its spec, make its optimizer and build its
    model (on the spec's small example input, as the conformance tests do)."""
    from zoo.spec import DataSpec

    spec, chosen = recipes.apply(zoo.get_spec(model), recipe)
    hp = spec.resolve({**dict(spec.example_hyperparameters)})
    make_optimizer({**hp, "learning_rate": hp["learning_rate"] if hp["learning_rate"] != "auto" else 0.01}, 10)
    for budget in chosen.budgets:
        values, options = recipes.budget(chosen, budget)
        spec.resolve(values)
    shape = spec.example_input_shape or ((8, 8, 1) if "image" in spec.capabilities else (8,))
    task = "classification" if "classification" in spec.tasks else spec.tasks[0]
    small = {k: v for k, v in {"input_size": 32, "channels": 1 if hp.get("preprocess", "none") != "caffe" else 3,
                               "widths": [8, 4] if "widths" in hp and hp["widths"] else None,
                               "units": 8 if "units" in hp else None, "width": 0.25 if "width" in hp else None,
                               "fc_units": 8 if "fc_units" in hp else None}.items() if v is not None and k in hp}
    if "channels" in small and hp.get("preprocess") == "caffe":
        shape = (32, 32, 3)
    data = DataSpec("tiny", task, shape, num_classes=3 if task == "classification" else None,
                    num_targets=1 if task == "regression" else None, input_kind="image" if len(shape) == 3 else "tabular",
                    value_range=(0.0, 1.0))
    model_ = build_model(spec, spec.resolve(small), data)
    assert model_.count_params() > 0


def test_unknown_recipe_is_one_line_with_the_known_ones():
    with pytest.raises(ZooError, match=r"model 'lenet5' has no recipe 'papr'. Did you mean: paper\? Its recipes: "
                                       r"default, paper"):
        recipes.get(zoo.get_spec("lenet5"), "papr")


def test_a_recipe_is_the_starting_point_and_arguments_override_it(runs_dir):
    run = zoo.train("mlp", "xor", recipe="paper", epochs=2, runs_dir=runs_dir, verbose=0)
    hp = run.hyperparameters
    assert (hp["units"], hp["activation"], hp["optimizer"], hp["learning_rate"]) == (2, "sigmoid", "momentum", 0.5)
    assert hp["epochs"] == 2 and run.config["recipe"] == "paper"


def test_step_schedule_changes_the_rate_after_its_boundaries():
    from zoo.training import learning_rate_schedule

    hp = zoo.get_spec("resnet20").resolve({"lr_schedule": "step", "lr_boundaries": "2,3", "lr_factors": "1,0.1,0.01"})
    schedule = learning_rate_schedule(hp, steps_per_epoch=10)
    rates = [float(schedule(step)) for step in (0, 20, 21, 30, 31)]
    np.testing.assert_allclose(rates, [0.1, 0.1, 0.01, 0.01, 0.001], rtol=1e-6)
    with pytest.raises(ZooError, match="one more lr_factors"):
        learning_rate_schedule({**hp, "lr_factors": [1.0]}, 10)


def test_sdlm_and_scheduled_momentum_are_keras_optimizers():
    import keras

    from zoo.optimizers import SDLM, ScheduledSGD

    w = keras.Variable(np.ones(3, "float32"))
    sdlm = SDLM(0.1, mu=0.02, batch_size=4)
    sdlm.apply_gradients([(np.array([1.0, 0.0, -2.0], "float32"), w)])
    # first step: h = B g^2 (bias-corrected), so w -= lr * B * g / (mu + B g^2)
    expected = 1 - 0.1 * 4 * np.array([1.0, 0.0, -2.0]) / (0.02 + 4 * np.array([1.0, 0.0, 4.0]))
    np.testing.assert_allclose(w.numpy(), expected, rtol=1e-5)
    assert keras.optimizers.deserialize(keras.optimizers.serialize(sdlm)).get_config()["mu"] == 0.02
    v = keras.Variable(np.zeros(1, "float32"))
    sgd = ScheduledSGD(1.0, momentum=0.5, final_momentum=0.9, switch_step=2)
    for _ in range(3):  # momentum 0.5, 0.5, then 0.9: buffer -1, -1.5, -2.35
        sgd.apply_gradients([(np.ones(1, "float32"), v)])
    np.testing.assert_allclose(v.numpy(), [-(1 + 1.5 + 2.35)], rtol=1e-6)


def test_rbm_trains_with_rbm_m_momentum_schedule_and_batches_of_100():
    spec = zoo.get_spec("rbm")
    hp = spec.hyperparameters()
    assert (hp["batch_size"], hp["momentum"], hp["final_momentum"], hp["momentum_epochs"]) == (100, 0.5, 0.9, 5)
    optimizer = make_optimizer({**hp, "learning_rate": 0.1}, steps_per_epoch=7)
    assert type(optimizer).__name__ == "ScheduledSGD" and optimizer.switch_step == 35
    pretraining = zoo.get_spec("dbn").hyperparameters()
    assert (pretraining["pretrain_batch_size"], pretraining["pretrain_final_momentum"]) == (100, 0.9)


@pytest.mark.parametrize("units", [1, 3])
def test_hinge_is_on_the_raw_scores(units):
    """The hinge of a softmax/sigmoid model equals the hinge of its pre-activation scores."""
    import keras

    from zoo.training import binary_hinge, sparse_categorical_hinge

    rng = np.random.default_rng(0)
    logits = rng.normal(0, 3, (64, units)).astype("float32")
    y = rng.integers(0, max(units, 2), 64)
    if units == 1:
        probabilities = keras.ops.sigmoid(logits)
        t = 2 * y - 1
        expected = np.maximum(0, 1 - t * logits[:, 0])
        got = binary_hinge(y.reshape(-1, 1).astype("float32"), probabilities)
    else:
        probabilities = keras.ops.softmax(logits)
        other = np.where(np.eye(units)[y] > 0, -np.inf, logits).max(axis=1)
        expected = np.maximum(0, 1 + other - logits[np.arange(64), y])
        got = sparse_categorical_hinge(y, probabilities)
    np.testing.assert_allclose(np.asarray(got).reshape(-1), expected, rtol=1e-4, atol=1e-4)
    bare = keras.ops.convert_to_tensor(np.asarray(probabilities))  # no logits attached: recovered from p
    again = binary_hinge(y.reshape(-1, 1).astype("float32"), bare) if units == 1 else sparse_categorical_hinge(y, bare)
    np.testing.assert_allclose(np.asarray(again).reshape(-1), expected, rtol=1e-3, atol=1e-3)


def test_reproduce_runs_end_to_end_on_bundled_data(tmp_path, capsys):
    from zoo.cli import main

    assert main(["reproduce", "perceptron", "--budget", "quick", "--runs-dir", str(tmp_path), "-q"]) == 0
    out = capsys.readouterr().out
    assert "perceptron (paper)  xor" in out and "Minsky & Papert 1969" in out and "limit: it holds" in out
    row = json.loads(next(tmp_path.glob("reproduce-perceptron-paper-quick-*/reproduction.json")).read_text())
    assert row["paper"] == 0.75 and row["ours"] <= 0.75 and row["budget"] == "quick: epochs=5"
    assert row["metric"] == "xor_pattern_accuracy" and row["reached"] and row["limit"]


def test_reproduce_lists_and_refuses_in_one_line(capsys):
    from zoo.cli import main

    assert main(["reproduce", "--list"]) == 0
    listed = capsys.readouterr().out
    assert "lenet5" in listed and "mnist" in listed and "LeCun et al. 1998" in listed
    assert main(["reproduce", "lstm"]) == 2
    assert "has no recipe 'paper' with a paper figure" in capsys.readouterr().err
    from zoo.training import Run

    finished = Run(None, {}, {}, {"test_accuracy": 0.99, "robustness": {"pgd40_eps0.3_accuracy": 0.9}})
    assert reproduce.figure_value(zoo.get_spec("lenet5").recipes["paper"].figure, finished) == pytest.approx(1.0)
    assert reproduce.figure_value(Figure("pgd40_eps0.3_error", 0.0), finished) == pytest.approx(10.0)


@pytest.mark.parametrize("metric, paper, ours, limit, expected", [
    ("xor_pattern_accuracy", 1.0, 1.0, False, True),   # equal: reached
    ("xor_pattern_accuracy", 1.0, 0.75, False, False),
    ("test_error", 0.95, 0.95, False, True),
    ("test_error", 0.95, 1.27, False, False),
    ("test_error", 0.95, 0.80, False, True),
    ("xor_pattern_accuracy", 0.75, 0.75, True, True),  # a limit holds when ours is no better
    ("xor_pattern_accuracy", 0.75, 1.0, True, False),
    ("test_error", 5.0, 4.0, True, False),
])
def test_a_figure_is_reached_when_ours_is_as_good_and_a_limit_holds_when_no_better(metric, paper, ours, limit,
                                                                                   expected):
    assert reproduce.reached(Figure(metric, paper, "a paper", limit=limit), ours) is expected
