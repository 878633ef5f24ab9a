"""Sweeps that mean what they say: budgets (grid, Hyperband), per-layer and
conditional spaces, objectives (any metric, functions, several at once),
accounting (ids, statuses, one traceback), the best model, the report, and the
command line's error paths. Tiny sweeps: xor or iris, 1-3 epochs, narrow nets.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.plugins import mlp as mlp_plugin
from zoo.spec import Choice, Int, ModelSpec, PerLayer
from zoo.tuning import objectives
from zoo.tuning.objectives import Objective
from zoo.tuning.space import build_space, parse_form, read_toml

SMALL = {"epochs": 1, "units": 8, "batch_size": 64, "activation": "relu", "dropout": 0.0, "batch_norm": False}


def sweep(model="mlp", dataset="xor", **kw):
    from zoo.tuning import tune

    kw.setdefault("retrain", False)
    kw.setdefault("plots", False)
    kw.setdefault("fixed", dict(SMALL))
    return tune(model, dataset, **kw)


# --- budgets ---------------------------------------------------------------------------------


def test_grid_searches_the_named_ranges_and_covers_them(tmp_path, capsys):
    s = sweep(tuner="grid", space={"activation": "relu,sigmoid"},
              fixed={k: v for k, v in SMALL.items() if k != "activation"}, runs_dir=tmp_path)
    assert sorted(r["hyperparameters"]["activation"] for r in s.rows) == ["relu", "sigmoid"]
    assert list(s.settings["space"]) == ["activation"]  # not the spec's depth, widths, learning rate ...
    assert "grid search over activation: 2 points" in capsys.readouterr().out


def test_grid_budget_is_said_before_the_start():
    from zoo.tuning import plan

    whole = build_space(mlp_plugin.mlp)
    with pytest.raises(ZooError, match=r"has [\d,]+ points; name the ranges .*--max-trials"):
        plan.make("grid", whole, None, 5)
    cut = plan.make("grid", whole, 10, 5)
    assert cut.max_trials == 10 and "only learning_rate will vary" in cut.text() and "are skipped" in cut.text()
    assert "10 points of each" in cut.text()  # a float range without a step is sampled, and it says so
    # a conditional grid: depth 1 has 2 width choices, depth 2 has 4
    layered = build_space(mlp_plugin.mlp, ranges={"depth": "1..2", "widths": "8,16"}, only_named=True)
    assert plan.make("grid", layered, None, 5).trials == 6
    assert len(plan.grid_points(layered, 100)) == 6


def test_hyperband_runs_its_whole_schedule_and_says_where_a_cap_cuts(tmp_path):
    from zoo.tuning import plan

    space = build_space(mlp_plugin.mlp, ranges={"depth": "1..2"}, fixed=SMALL, only_named=True)
    full = plan.make("hyperband", space, None, 3)
    assert (full.max_trials, full.trials, full.epochs) == (None, 6, 11)  # 3 x 1 -> 1 x 3, then 2 x 3
    capped = plan.make("hyperband", space, 2, 3)
    assert "--max-trials 2 cuts this schedule in bracket 1 of 2" in capped.text()
    s = sweep(tuner="hyperband", space={"depth": "1..2"}, fixed={**SMALL, "epochs": 3}, runs_dir=tmp_path,
              objective="val_accuracy")
    assert len(s.rows) == 6 and all(r["status"] == "completed" for r in s.rows)
    assert sum(r["epochs_run"] for r in s.rows) == 11
    assert sorted(r["budget"] for r in s.rows) == [1, 1, 1, 3, 3, 3]
    continued = [r for r in s.rows if r.get("hyperband_parent") is not None]
    assert len(continued) == 1 and continued[0]["initial_epoch"] == 1 and continued[0]["epochs_run"] == 2


# --- spaces ----------------------------------------------------------------------------------


def test_per_layer_and_list_forms_of_widths(tmp_path):
    assert parse_form("widths", "[64,32],[128,64]").values == ((64, 32), (128, 64))
    space = build_space(mlp_plugin.mlp)  # the spec's own space: depth and a width per layer
    assert isinstance(space.params["widths"], PerLayer) and "units" not in space.params
    assert space.column_names()[:5] == ["depth", "widths_1", "widths_2", "widths_3", "widths_4"]
    fixed = build_space(mlp_plugin.mlp, fixed={"widths": "128,64"})
    assert fixed.fixed["widths"] == [128, 64] and "depth" not in fixed.params
    assert any("fixes the layers" in n for n in fixed.notes)
    uniform = build_space(mlp_plugin.mlp, ranges={"units": "16..64:16"})
    assert "widths" not in uniform.params and "units" in uniform.params
    toml = tmp_path / "space.toml"
    toml.write_text("[space]\nwidths = [[32, 16], [64]]\nmaxout_pieces = { min = 2, max = 4, when = "
                    "{ activation = \"maxout\" } }\nactivation = [\"relu\", \"maxout\"]\n")
    ranges = read_toml(toml)[1]
    assert ranges["widths"].values == ((32, 16), (64,)) and ranges["maxout_pieces"].when == (("activation", ("maxout",)),)
    for bad, message in ((("widths", "0.5..2.0"), "one value per layer"), (("depth", "[1,2]"), "not one per layer"),
                         (("widths", "[64,"), "list of lists")):
        with pytest.raises(ZooError, match=message):
            build_space(mlp_plugin.mlp, ranges=dict([bad]))


def test_conditional_ranges_are_active_only_under_their_parent():
    import keras_tuner

    from zoo.tuning.tuner import declare, trial_values

    space = build_space(mlp_plugin.mlp, ranges={"activation": "relu,maxout", "maxout_pieces": "2..4 if activation=maxout",
                                                "depth": "1..3", "widths": "8..32:8"}, only_named=True)
    assert list(space.params)[:2] == ["activation", "maxout_pieces"]  # parents first
    hp = keras_tuner.HyperParameters()
    declare(space, hp)
    by_name = {h.name: h for h in hp.space}
    assert not by_name["widths_1"].conditions and by_name["widths_3"].conditions[0].values == [3]
    searched, values = trial_values(space, keras_tuner.HyperParameters.from_config(
        {"space": hp.get_config()["space"], "values": {"activation": "relu", "depth": 2, "widths_1": 16,
                                                        "widths_2": 24}}))
    assert values["widths"] == [16, 24] and "maxout_pieces" not in searched
    with pytest.raises(ZooError, match="fixed at 'relu'"):
        build_space(mlp_plugin.mlp, ranges={"maxout_pieces": "2..4 if activation=maxout"}, only_named=True)
    with pytest.raises(ZooError, match="never gives"):
        build_space(mlp_plugin.mlp, ranges={"activation": "relu,tanh", "maxout_pieces": "2..4 if activation=maxout"})


def test_sweep_builds_one_width_per_layer_of_its_depth(tmp_path):
    import keras

    s = sweep(space={"depth": "1..3", "widths": "4..12:4"}, fixed={k: v for k, v in SMALL.items() if k != "units"},
              runs_dir=tmp_path, max_trials=4, objective="val_accuracy")
    for r in s.rows:
        depth = r["hyperparameters"]["depth"]
        assert [r["hyperparameters"][f"widths_{i}"] is not None for i in (1, 2, 3)] == [i <= depth for i in (1, 2, 3)]
        assert r["values"]["widths"] == [r["hyperparameters"][f"widths_{i}"] for i in range(1, depth + 1)]
    best = s.best
    model = keras.saving.load_model(s.dir / best["dir"] / "model.keras")
    hidden = [layer.units for layer in model.layers if layer.name.startswith("dense") and hasattr(layer, "units")]
    assert hidden == best["values"]["widths"]


# --- objectives ----------------------------------------------------------------------------


def test_objective_forms_and_early_refusals():
    import keras_tuner

    def gap(logs):
        return logs["val_loss"] - logs["loss"]

    parsed = objectives.parse(["val_accuracy,params", keras_tuner.Objective("val_auc", "max"), gap])
    assert [(o.name, o.direction) for o in parsed] == [("val_accuracy", "max"), ("params", "min"),
                                                       ("val_auc", "max"), ("gap", "min")]
    assert objectives.parse("inference_time")[0].direction == "min"
    with pytest.raises(ZooError, match="minimise or maximise"):
        objectives.parse("val_score")
    with pytest.raises(ZooError, match="given twice"):
        objectives.parse("val_loss,val_loss")
    with pytest.raises(ZooError, match="'val_acuracy' is not a metric.*Did you mean: accuracy"):
        objectives.check(objectives.parse("val_acuracy:max"), None)
    assert objectives.pareto_front({1: [0.9, 100], 2: [0.95, 300], 3: [0.85, 200]},
                                   objectives.parse("val_accuracy,params")) == {1, 2}
    with pytest.raises(ZooError, match="put a validation metric first"):
        sweep(tuner="hyperband", objective="params", runs_dir="/nonexistent")


def test_any_metric_objective_is_compiled_and_matches_scikit_learn(tmp_path):
    import numpy as np
    from sklearn.metrics import f1_score, precision_score, roc_auc_score

    from zoo.data import load
    from zoo.training import Run

    data = load("iris", seed=0)
    s = sweep(dataset=data, objective=["val_f1", "val_auc", "val_precision", "params"], fixed={**SMALL, "epochs": 3},
              space={"learning_rate": "0.01..0.1:log"}, max_trials=2, runs_dir=tmp_path, retrain=True, plots=True)
    best = s.best
    assert {"val_f1", "val_auc", "val_precision", "params"} <= set(best["metrics"])
    # the trial's model is its best epoch by val_f1: its predictions give the recorded figures
    import keras

    model = keras.saving.load_model(s.dir / best["dir"] / "model.keras")
    x, y = data.arrays["val"]
    p = model.predict(x, verbose=0)
    assert best["metrics"]["val_f1"] == pytest.approx(f1_score(y, p.argmax(1), average="macro"), abs=1e-4)
    assert best["metrics"]["val_precision"] == pytest.approx(
        precision_score(y, p.argmax(1), average="macro", zero_division=0), abs=1e-4)
    assert best["metrics"]["val_auc"] == pytest.approx(roc_auc_score(y, p, multi_class="ovr"), abs=0.02)
    assert best["metrics"]["params"] == model.count_params()
    # several objectives: a Pareto front in the rows, the summary and a plot
    assert any(r.get("pareto") for r in s.rows) and "Pareto front over val_f1:max" in s.summary()
    assert (s.dir / "pareto.png").stat().st_size > 0
    # best/ is the best trial: trained to the epoch best by val_f1, the same figure
    run = Run.load(s.dir / "best", with_model=False)
    assert run.metrics["monitor"]["metric"] == "val_f1"
    assert run.metrics["monitor"]["kept"] == pytest.approx(best["objective"], abs=1e-6)
    assert run.metrics["monitor"]["kept_epoch"] == best["best_epoch"]


def test_a_function_of_the_logs_is_an_objective(tmp_path):
    gap = Objective("gap", "min", fn=lambda logs: logs["val_loss"] - logs["loss"])
    s = sweep(objective=gap, fixed={**SMALL, "epochs": 2}, space={"learning_rate": "0.01..0.1:log"}, max_trials=1,
              runs_dir=tmp_path)
    row = s.rows[0]
    i = row["best_epoch"] - 1
    history = json.loads((s.dir / row["dir"] / "zoo_trial.json").read_text())["history"]
    assert history["gap"][i] == pytest.approx(history["val_loss"][i] - history["loss"][i], abs=1e-6)
    assert row["objective"] == pytest.approx(min(history["gap"]))


# --- accounting --------------------------------------------------------------------------------


def _bad_build(hp, data_spec):
    raise ValueError("width and depth do not fit together")


def _stubborn_build(hp, data_spec):
    """mode "good" learns; mode "bad" outputs 0.99 for every example (a loss far above any learner's)."""
    import keras

    inputs = keras.Input(shape=data_spec.input_shape)
    x = keras.layers.Dense(8, activation="tanh")(inputs)
    out = keras.layers.Dense(1, activation="sigmoid")(x)
    if hp["mode"] == "bad":
        out = keras.layers.Lambda(lambda t: t * 0.0 + 0.99)(out)
    return keras.Model(inputs, out)


def test_statuses_and_one_traceback_per_failure(tmp_path, capsys):
    failing = ModelSpec(name="failing", family="test", summary="", tasks=("classification",), build=_bad_build,
                        defaults={"mode": "a"}, search_space={"mode": Choice("a", "b")}, default_dataset="xor")
    with pytest.raises(ZooError, match="2 failed trials in a row"):
        sweep(model=failing, tuner="grid", fixed={"epochs": 1}, max_failures=2, runs_dir=tmp_path)
    d = tmp_path / "tune-failing-xor-grid"
    rows = json.loads((d / "trials.json").read_text())
    assert [(r["trial_id"], r["status"]) for r in rows] == [(0, "failed"), (1, "failed")]  # the last one too
    out = capsys.readouterr()
    assert out.out.count("ValueError: width and depth do not fit together (traceback in sweep.log)") == 2
    assert "Traceback" not in out.out + out.err
    log = (d / "sweep.log").read_text()
    assert log.count("--- trial ") == 2 and "--- trial 1 failed" in log and "Traceback" in log
    # the median rule's victim is "stopped", not "completed"
    stubborn = ModelSpec(name="stubborn", family="test", summary="", tasks=("classification",), build=_stubborn_build,
                         defaults={"mode": "good"}, search_space={"mode": Choice("good", "bad")}, default_dataset="xor")
    s = sweep(model=stubborn, tuner="grid", fixed={"epochs": 3, "learning_rate": 0.05}, median_stopping=True,
              median_min_trials=1, runs_dir=tmp_path)
    by_mode = {r["hyperparameters"]["mode"]: r for r in s.rows}
    assert by_mode["good"]["status"] == "completed" and by_mode["bad"]["status"] == "stopped"
    assert "median rule after epoch 1 of 3" in by_mode["bad"]["note"]


def test_trial_ids_sort_as_numbers(tmp_path):
    from zoo.tuning import results

    for kt_id in ("0", "1", "09", "10", "2"):  # Keras-Tuner pads ids to the width of max_trials
        d = tmp_path / f"trial_{kt_id}"
        d.mkdir()
        (d / "zoo_trial.json").write_text(json.dumps({"trial_id": kt_id, "status": "completed", "objective": 0.5,
                                                      "hyperparameters": {}, "metrics": {}}))
    rows = results.trials_table(tmp_path)
    assert [r["trial_id"] for r in rows] == [0, 1, 2, 9, 10]
    assert [r["dir"] for r in rows] == ["trial_0", "trial_1", "trial_2", "trial_09", "trial_10"]


def test_a_finished_trial_is_not_run_again_after_a_kill(tmp_path):
    """A kill after the trial's record was written but before Keras-Tuner saved its
    end (the oracle still lists it as running): the next run keeps it."""
    s = sweep(runs_dir=tmp_path, max_trials=1, space={"depth": "1..2"})
    d = s.dir
    record = (d / "trial_0" / "zoo_trial.json").read_text()
    oracle = json.loads((d / "oracle.json").read_text())
    oracle["ongoing_trials"] = {"tuner0": "0"}
    oracle["end_order"] = []
    (d / "oracle.json").write_text(json.dumps(oracle))
    trial = json.loads((d / "trial_0" / "trial.json").read_text())
    trial["status"] = "RUNNING"
    (d / "trial_0" / "trial.json").write_text(json.dumps(trial))
    again = sweep(runs_dir=tmp_path, max_trials=2, space={"depth": "1..2"})
    assert (d / "trial_0" / "zoo_trial.json").read_text() == record  # not run again
    assert [(r["trial_id"], r["status"]) for r in again.rows] == [(0, "completed"), (1, "completed")]


# --- understanding a sweep -------------------------------------------------------------------


def test_report_explains_a_sweep(tmp_path):
    """Importances rank the hyperparameter the objective depends on first."""
    import random

    from zoo.tuning import results

    rng = random.Random(0)
    objective = Objective("val_accuracy", "max")
    rows = []
    for i in range(24):
        lr, act, depth = 10 ** rng.uniform(-4, -1), rng.choice(["relu", "tanh"]), rng.randint(1, 3)
        rows.append({"trial_id": i, "status": "stopped" if i % 7 == 3 else "completed",
                     "objective": 0.5 + 0.4 * (lr > 10 ** -2.5) + rng.uniform(0, 0.02),
                     "hyperparameters": {"learning_rate": lr, "activation": act, "depth": depth,
                                         "widths_2": 16 if depth >= 2 else None},
                     "curve": [0.3, 0.5, 0.6][: 1 + i % 3], "budget": 3, "initial_epoch": 0, "epochs_run": 3})
    paths = results.explain(rows, tmp_path, objective)
    assert {p.name for p in paths} == {"curves.png", "parallel.png", "importance.png"}
    assert all(p.stat().st_size > 0 for p in paths)
    importances = json.loads((tmp_path / "importance.json").read_text())
    assert next(iter(importances["importance"])) == "learning_rate" and "random forest" in importances["method"]


def test_tensorboard_gets_hparams_for_every_trial(tmp_path):
    import tensorflow as tf

    s = sweep(runs_dir=tmp_path, max_trials=2, space={"depth": "1..2"}, tensorboard=True)
    for row in s.rows:
        plugins = set()
        for event_file in (s.dir / row["dir"] / "tensorboard").rglob("events.out.tfevents*"):
            for event in tf.compat.v1.train.summary_iterator(str(event_file)):
                plugins |= {v.metadata.plugin_data.plugin_name for v in event.summary.value}
        assert "hparams" in plugins


# --- the command line's error paths -------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    (["--objective", "val_acuracy"], "did you mean"),
    (["--objective", "val_accuracy:maximum"], "min or max"),
    (["--objective", "val_accuracy,params,val_accuracy"], "given twice"),
    (["--space", "widths=0.5..1.5"], "one value per layer"),
    (["--space", "depth=1..x"], "not a range"),
    (["--tuner", "grid", "--name", "g"], "name the ranges to grid"),
])
def test_cli_errors_are_one_line_and_leave_the_sweep_alone(tmp_path, capsys, args, message):
    from zoo.cli import main

    base = ["tune", "mlp", "-d", "xor", "--epochs", "1", "--runs-dir", str(tmp_path), "--name", "s", "--no-retrain"]
    assert main(base + ["--max-trials", "1", "--space", "depth=1..2", "-q"]) == 0
    before = {p.name: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(base + args) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zoo: error: ") and message.lower() in err[0].lower()
    after = {p.name: p.read_bytes() for p in (tmp_path / "s").rglob("*") if p.is_file()}
    assert after == before
