"""Tuner sweeps: search, resume, refusal of a changed space, failing trials,
environment errors, the trials table, the best run directory, narrowing the
space from the CLI and TOML, the median stopping rule, distributed mode.

Tiny settings throughout: the xor dataset, 1 epoch, 2-3 trials, narrow nets.
"""

from __future__ import annotations

import csv
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zoo.errors import ZooError
from zoo.plugins import mlp as mlp_plugin
from zoo.spec import Choice, Int, ModelSpec
from zoo.tuning.space import build_space, parse_form, read_toml

ROOT = Path(__file__).resolve().parents[1]
#: a small, fast sweep: units fixed small, a narrow space
SMALL = {"epochs": 1, "units": 8, "batch_size": 64, "activation": "relu", "dropout": 0.0, "batch_norm": False}
SPACE = {"depth": "1..2", "learning_rate": "1e-3..1e-1:log"}


def quiet_tune(**kw):
    from zoo.tuning import tune

    kw.setdefault("retrain", False)
    kw.setdefault("plots", False)
    kw.setdefault("fixed", dict(SMALL))
    kw.setdefault("space", dict(SPACE))
    return tune(kw.pop("model", "mlp"), kw.pop("dataset", "xor"), **kw)


# --- a test family whose trials can fail on purpose -------------------------------


def _flaky_build(hp, data_spec):
    import keras

    if hp["mode"] == "bad":
        raise ValueError("width and depth do not fit together")
    if hp["mode"] == "missing":
        raise ModuleNotFoundError("No module named 'tensorboard'", name="tensorboard")
    if hp["mode"] == "interrupt":
        raise KeyboardInterrupt
    inputs = keras.Input(shape=data_spec.input_shape)
    x = keras.layers.Dense(4, activation="tanh")(inputs)
    if hp["mode"] == "nan":
        x = keras.layers.Lambda(lambda t: t * float("nan"))(x)
    outputs = keras.layers.Dense(data_spec.output_units, activation="sigmoid")(x)
    return keras.Model(inputs, outputs)


def flaky(modes=("ok", "nan", "bad")) -> ModelSpec:
    return ModelSpec(name="flaky", family="test", summary="fails on purpose", tasks=("classification",),
                     build=_flaky_build, defaults={"mode": modes[0]}, search_space={"mode": Choice(*modes)},
                     default_dataset="xor")


# --- search space (no TensorFlow) ------------------------------------------------------


def test_space_forms_parse_to_params():
    assert parse_form("lr", "1e-4..1e-2:log").sampling == "log"
    units = parse_form("units", "16..128:16")
    assert (units.min, units.max, units.step) == (16, 128, 16)
    assert parse_form("act", "relu,tanh").values == ("relu", "tanh")
    assert type(parse_form("bn", "bool")).__name__ == "Boolean"
    with pytest.raises(ZooError, match="min < max"):
        parse_form("units", "64..16")
    with pytest.raises(ZooError, match="positive"):
        parse_form("lr", "0..1:log")


def test_space_narrowed_from_cli_values_and_toml(tmp_path):
    toml = tmp_path / "space.toml"
    toml.write_text('[fix]\ndepth = 3\n[space]\nlearning_rate = { min = 1e-3, max = 1e-2, sampling = "log" }\n'
                    'activation = ["relu", "elu"]\nunits = { min = 32, max = 64, step = 32 }\n')
    fixed, ranges = read_toml(toml)
    assert fixed == {"depth": 3} and set(ranges) == {"learning_rate", "activation", "units"}
    space = build_space(mlp_plugin.mlp, fixed={"dropout": "0.2"}, ranges={"units": "16..48:16"},
                        tune=["batch_size", "optimizer"], space_file=toml)
    assert "depth" not in space.params and space.fixed["depth"] == 3  # fixed by the file
    assert "dropout" not in space.params and space.fixed["dropout"] == 0.2  # fixed by --set, parsed as float
    assert (space.params["units"].min, space.params["units"].max) == (16, 48)  # CLI beats the file
    assert space.params["learning_rate"].max == 1e-2 and space.params["learning_rate"].sampling == "log"
    assert space.params["activation"].values == ("relu", "elu")
    assert space.params["batch_size"].values == (16, 32, 64, 128) and "optimizer" in space.params
    # a float hyperparameter given an int-looking range is searched as floats
    assert type(build_space(mlp_plugin.mlp, ranges={"dropout": "0..1"}).params["dropout"]).__name__ == "Float"
    # every change moves the fingerprint; the same inputs give the same one
    same = build_space(mlp_plugin.mlp, fixed={"dropout": "0.2"}, ranges={"units": "16..48:16"},
                       tune=["batch_size", "optimizer"], space_file=toml)
    assert same.fingerprint() == space.fingerprint()
    assert build_space(mlp_plugin.mlp, fixed={"dropout": "0.3"}).fingerprint() != \
        build_space(mlp_plugin.mlp, fixed={"dropout": "0.2"}).fingerprint()


def test_space_rejects_unknown_names_and_bad_types(tmp_path):
    with pytest.raises(ZooError, match="did you mean|Did you mean"):
        build_space(mlp_plugin.mlp, ranges={"unit": "16..32"})
    with pytest.raises(ZooError, match="whole number"):
        build_space(mlp_plugin.mlp, ranges={"depth": "1.5..3.5"})
    with pytest.raises(ZooError, match="built-in range"):
        build_space(mlp_plugin.mlp, tune=["momentum"])
    bad = tmp_path / "bad.toml"
    bad.write_text("[spaces]\nx = 1\n")
    with pytest.raises(ZooError, match=r"\[fix\] and \[space\]"):
        build_space(mlp_plugin.mlp, space_file=bad)


# --- median stopping (unit) ---------------------------------------------------------


class _Model:
    stop_training = False


def test_median_stopping_callback_stops_only_below_the_median():
    from zoo.tuning.callbacks import MedianStopping

    reference = [[0.6, 0.7, 0.8], [0.5, 0.9, 0.9], [0.7, 0.6, 0.95]]  # best-so-far medians: 0.6, 0.7, 0.9
    cb = MedianStopping("val_accuracy", "max", reference, min_trials=3)
    cb.set_model(_Model())
    cb.on_epoch_end(0, {"val_accuracy": 0.65})  # above the median 0.6
    assert not cb.model.stop_training
    cb.on_epoch_end(1, {"val_accuracy": 0.62})  # best so far 0.65 < median 0.7
    assert cb.model.stop_training and cb.stopped_epoch == 2 and cb.median_at_stop == pytest.approx(0.7)

    loss = MedianStopping("val_loss", "min", [[1.0, 0.5], [0.8, 0.4], [0.9, 0.3]], min_trials=3)
    loss.set_model(_Model())
    loss.on_epoch_end(0, {"val_loss": 0.85})  # median 0.9: better
    assert not loss.model.stop_training
    loss.on_epoch_end(1, {"val_loss": 0.7})  # median best-so-far 0.4: worse
    assert loss.model.stop_training

    few = MedianStopping("val_loss", "min", [[0.1, 0.1], [0.1, 0.1]], min_trials=3)  # too few references
    few.set_model(_Model())
    few.on_epoch_end(0, {"val_loss": 5.0})
    assert not few.model.stop_training
    short = MedianStopping("val_loss", "min", [[0.1], [0.1], [0.1]], min_trials=3)  # none reach epoch 2
    short.set_model(_Model())
    short.on_epoch_end(0, {"val_loss": 0.05})
    short.on_epoch_end(1, {"val_loss": 0.5})
    assert not short.model.stop_training
    grace = MedianStopping("val_loss", "min", [[0.1, 0.1]] * 3, min_trials=3, grace_epochs=2)
    grace.set_model(_Model())
    grace.on_epoch_end(0, {"val_loss": 5.0})
    assert not grace.model.stop_training


# --- sweeps ---------------------------------------------------------------------------


def test_sweep_table_and_best_run_directory(tmp_path):
    from zoo.training import Run

    sweep = quiet_tune(runs_dir=tmp_path, max_trials=2, objective="val_accuracy", retrain=True, plots=True)
    rows = sweep.rows
    assert [r["trial_id"] for r in rows] == [0, 1] and all(r["status"] == "completed" for r in rows)
    for r in rows:
        assert set(r["hyperparameters"]) == {"depth", "learning_rate"}
        assert 1 <= r["hyperparameters"]["depth"] <= 2 and 1e-3 <= r["hyperparameters"]["learning_rate"] <= 1e-1
        assert r["epochs_run"] == 1 and r["seconds"] > 0
        assert r["objective"] == r["metrics"]["val_accuracy"] and "val_loss" in r["metrics"]
    # the CSV holds the same trials, one column per hyperparameter and metric
    with (sweep.dir / "trials.csv").open() as f:
        table = list(csv.DictReader(f))
    assert [t["trial_id"] for t in table] == ["0", "1"]
    assert {"status", "objective", "epochs_run", "seconds", "reason", "hp_depth", "hp_learning_rate",
            "val_loss", "val_accuracy"} <= set(table[0])
    assert float(table[1]["objective"]) == pytest.approx(rows[1]["objective"], rel=1e-5)
    assert json.loads((sweep.dir / "trials.json").read_text())[0]["trial_id"] == 0
    assert (sweep.dir / "objective.png").stat().st_size > 0 and (sweep.dir / "hyperparameters.png").exists()
    # only the best trial keeps a model
    best = sweep.best
    assert best["objective"] == max(r["objective"] for r in rows)
    kept = sorted(p.parent.name for p in sweep.dir.glob("trial_*/model.keras"))
    assert kept == [best["dir"]]
    # the best hyperparameters retrained into a normal run directory
    run = Run.load(sweep.dir / "best")
    assert run.model is not None and run.config["model"] == "mlp"
    for k, v in best["hyperparameters"].items():
        assert run.hyperparameters[k] == pytest.approx(v)
    assert run.hyperparameters["units"] == 8
    assert "test_accuracy" in run.metrics
    summary = sweep.summary()
    assert "2 trials: 2 completed" in summary and f"{best['objective']:.4f}" in summary


def test_resume_keeps_finished_trials_and_extends(tmp_path):
    first = quiet_tune(runs_dir=tmp_path, max_trials=2)
    before = {r["trial_id"]: (r["objective"], r["seconds"], r["hyperparameters"]) for r in first.rows}
    again = quiet_tune(runs_dir=tmp_path, max_trials=3)  # same command, one more trial
    after = {r["trial_id"]: (r["objective"], r["seconds"], r["hyperparameters"]) for r in again.rows}
    assert set(after) == {0, 1, 2}
    assert {k: after[k] for k in before} == before  # not re-run: same seconds, same results


def test_interrupted_sweep_resumes_without_losing_finished_trials(tmp_path):
    # trial 0 finishes, trial 1 is interrupted (Ctrl-C inside the trial)
    spec = flaky(modes=("ok", "interrupt"))
    with pytest.raises(KeyboardInterrupt):
        quiet_tune(model=spec, runs_dir=tmp_path, tuner="grid", max_trials=2, fixed={"epochs": 1}, space={})
    d = tmp_path / "tune-flaky-xor-grid"
    state = {r["trial_id"]: r["status"] for r in json.loads((d / "trials.json").read_text())}
    assert state == {0: "completed", 1: "interrupted"}
    finished = json.loads((d / "trial_0" / "zoo_trial.json").read_text())
    # the same command resumes (the interruption is gone): trial 0 is kept, trial 1 runs again
    fixed_spec = ModelSpec(name="flaky", family="test", summary="", tasks=("classification",),
                           build=lambda hp, ds: _flaky_build({**hp, "mode": "ok"}, ds), defaults={"mode": "ok"},
                           search_space={"mode": Choice("ok", "interrupt")}, default_dataset="xor")
    sweep = quiet_tune(model=fixed_spec, runs_dir=tmp_path, tuner="grid", max_trials=2, fixed={"epochs": 1}, space={})
    assert [(r["trial_id"], r["status"]) for r in sweep.rows] == [(0, "completed"), (1, "completed")]
    assert json.loads((d / "trial_0" / "zoo_trial.json").read_text()) == finished


def test_changed_space_is_refused_unless_restarted(tmp_path):
    quiet_tune(runs_dir=tmp_path, max_trials=1)
    with pytest.raises(ZooError, match=r"search space \(depth: int 1\.\.2 -> int 1\.\.3\).*--restart"):
        quiet_tune(runs_dir=tmp_path, max_trials=1, space={**SPACE, "depth": "1..3"})
    with pytest.raises(ZooError, match="objective"):
        quiet_tune(runs_dir=tmp_path, max_trials=1, objective="val_accuracy")
    sweep = quiet_tune(runs_dir=tmp_path, max_trials=1, space={**SPACE, "depth": "1..3"}, restart=True)
    assert len(sweep.rows) == 1 and sweep.settings["space"]["depth"] == "int 1..3"


def test_failing_trials_are_recorded_and_the_sweep_goes_on(tmp_path):
    sweep = quiet_tune(model=flaky(), runs_dir=tmp_path, tuner="grid", max_trials=3, fixed={"epochs": 1}, space={})
    by_mode = {r["hyperparameters"]["mode"]: r for r in sweep.rows}
    assert set(by_mode) == {"ok", "nan", "bad"}
    assert by_mode["ok"]["status"] == "completed" and by_mode["ok"]["objective"] is not None
    assert by_mode["nan"]["status"] == "failed" and "NaN" in by_mode["nan"]["reason"]
    assert by_mode["bad"]["status"] == "failed" and "width and depth do not fit" in by_mode["bad"]["reason"]
    with (sweep.dir / "trials.csv").open() as f:
        reasons = {t["hp_mode"]: t["reason"] for t in csv.DictReader(f)}
    assert "NaN" in reasons["nan"] and reasons["ok"] == ""
    assert "failed: " in sweep.summary()


def test_environment_error_stops_the_sweep_at_once(tmp_path):
    spec = flaky(modes=("missing", "ok"))
    with pytest.raises(ZooError, match="sweep stopped: .*tensorboard.*environment problem"):
        quiet_tune(model=spec, runs_dir=tmp_path, tuner="grid", max_trials=2, fixed={"epochs": 1}, space={})
    rows = json.loads((tmp_path / "tune-flaky-xor-grid" / "trials.json").read_text())
    assert len(rows) == 1  # the second trial never started


def test_cli_tune_with_toml_and_set(tmp_path, capsys):
    from zoo.cli import main

    toml = tmp_path / "space.toml"
    toml.write_text('[fix]\nunits = 8\n[space]\nlearning_rate = { min = 0.01, max = 0.05 }\n')
    code = main(["tune", "perceptron", "--dataset", "xor", "--epochs", "1", "--max-trials", "2", "--space-file",
                 str(toml), "--set", "l2=0.001", "--runs-dir", str(tmp_path), "--name", "cli", "--no-retrain",
                 "--objective", "val_accuracy"])
    assert code == 0
    out = capsys.readouterr().out
    assert "2 trials: 2 completed" in out and "best 2 by val_accuracy (max)" in out
    settings = json.loads((tmp_path / "cli" / "sweep.json").read_text())
    assert settings["fixed"]["l2"] == 0.001 and settings["fixed"]["units"] == 8 and settings["fixed"]["epochs"] == 1
    assert set(settings["space"]) == {"learning_rate"}  # l2 was fixed, lr narrowed
    for r in json.loads((tmp_path / "cli" / "trials.json").read_text()):
        assert 0.01 <= r["hyperparameters"]["learning_rate"] <= 0.05
    # a changed space through the CLI: one line, exit 2
    code = main(["tune", "perceptron", "--dataset", "xor", "--epochs", "1", "--max-trials", "2", "--space-file",
                 str(toml), "--runs-dir", str(tmp_path), "--name", "cli", "--no-retrain", "--objective", "val_accuracy"])
    assert code == 2 and "--restart" in capsys.readouterr().err
    assert main(["tune", "--report", str(tmp_path / "cli")]) == 0


# --- distributed mode ---------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.slow  # three TensorFlow processes: ~30 s idle, ~2.5 min on the shared 2-core machine
def test_distributed_chief_and_two_workers_on_loopback(tmp_path):
    """One chief oracle and two workers (subprocesses) share a sweep of 4 trials."""
    port = str(_free_port())
    cmd = [sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))", "tune", "mlp", "--dataset", "xor", "--epochs", "1", "--max-trials", "4",
           "--set", "units=8", "--space", "depth=1..2", "--runs-dir", str(tmp_path), "--name", "dist", "--no-retrain"]
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port,
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    procs = {"chief": subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": "chief"}, cwd=ROOT,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)}
    deadline = time.monotonic() + 120  # workers start once the chief's oracle listens (gRPC backs off otherwise)
    while time.monotonic() < deadline and procs["chief"].poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) == 0:
                break
        time.sleep(0.5)
    for worker in ("tuner0", "tuner1"):
        procs[worker] = subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": worker}, cwd=ROOT,
                                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    outputs = {}
    try:
        for name, p in procs.items():
            outputs[name] = p.communicate(timeout=240)[0]
    finally:
        for p in procs.values():
            if p.poll() is None:
                p.kill()
    for name, p in procs.items():
        assert p.returncode == 0, f"{name} failed:\n{outputs.get(name, '')[-3000:]}"
    rows = json.loads((tmp_path / "dist" / "trials.json").read_text())
    assert sorted(r["trial_id"] for r in rows) == [0, 1, 2, 3]
    assert all(r["status"] == "completed" for r in rows)
    ran_by = {json.loads((tmp_path / "dist" / r["dir"] / "zoo_trial.json").read_text())["tuner_id"]
              for r in rows}
    assert ran_by <= {"tuner0", "tuner1"} and ran_by  # the chief serves, the workers train
    assert "4 trials: 4 completed" in outputs["chief"]
    for worker in ("tuner0", "tuner1"):
        assert f"worker {worker} done" in outputs[worker]


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))", *args]


@pytest.mark.slow  # a TensorFlow subprocess: ~1 min on the shared machine
def test_sweep_killed_with_sigkill_resumes(tmp_path):
    """kill -9 in the middle of trial 1: the same command finishes the sweep and
    trial 0 (finished before the kill) is kept as it was."""
    from zoo.cli import main

    args = ["tune", "mlp", "--dataset", "xor", "--epochs", "3", "--max-trials", "3", "--set", "units=8",
            "--space", "depth=1..2", "--runs-dir", str(tmp_path), "--name", "killed", "--no-retrain"]
    d = tmp_path / "killed"
    proc = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            record = d / "trial_0" / "zoo_trial.json"
            if record.exists() and json.loads(record.read_text())["status"] == "completed" and \
                    (d / "trial_1" / "zoo_trial.json").exists():
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the sweep ended before it could be killed"
        proc.kill()  # SIGKILL
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    kept = (d / "trial_0" / "zoo_trial.json").read_text()
    assert main(args) == 0
    rows = json.loads((d / "trials.json").read_text())
    assert [(r["trial_id"], r["status"]) for r in rows] == [(0, "completed"), (1, "completed"), (2, "completed")]
    assert (d / "trial_0" / "zoo_trial.json").read_text() == kept


def test_cli_module_and_package_import_no_tensorflow():
    code = ("import sys, zoo, zoo.tuning, zoo.tuning.cli, zoo.tuning.space, zoo.tuning.results, zoo.tuning.sweep; "
            "from zoo.cli import _commands; assert 'tune' in _commands(['tune']); "
            "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, sorted(sys.modules)")
    subprocess.run([sys.executable, "-c", code], check=True, cwd=ROOT)


def test_objective_the_model_does_not_report_is_refused_before_any_trial(tmp_path):
    with pytest.raises(ZooError, match="'accuracy' is not one a regression model can report.*val_loss|mae"):
        quiet_tune(dataset="diabetes", runs_dir=tmp_path, max_trials=3, objective="val_accuracy")
    assert not list(tmp_path.glob("tune-mlp-diabetes-random/trial_*"))  # no trial trained
    sweep = quiet_tune(dataset="diabetes", runs_dir=tmp_path, max_trials=1, objective="val_mae", restart=True)
    assert sweep.direction == "min" and sweep.rows[0]["status"] == "completed"


def test_trials_in_fresh_processes_resume_one_sweep(tmp_path):
    sweep = quiet_tune(runs_dir=tmp_path, max_trials=3, trials_per_process=2, plots=True)
    assert len(sweep.rows) == 3 and all(r["status"] == "completed" for r in sweep.rows)
    assert (sweep.dir / "trials.csv").exists() and (sweep.dir / "objective.png").exists()
    with pytest.raises(ZooError, match="plain arguments"):
        quiet_tune(model=flaky(), runs_dir=tmp_path, name="x", max_trials=2, trials_per_process=1,
                   fixed={"epochs": 1}, space={"mode": Choice("ok")})


def _start_chief(cmd: list[str], env: dict, port: str) -> subprocess.Popen:
    chief = subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": "chief"}, cwd=ROOT, stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and chief.poll() is None:
        with socket.socket() as s:
            if s.connect_ex(("127.0.0.1", int(port))) == 0:
                break
        time.sleep(0.5)
    return chief


def _wait_for(condition, seconds: float) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.3)
    return False


@pytest.mark.slow  # several TensorFlow processes: ~1.5 min
def test_distributed_sweep_survives_a_killed_worker(tmp_path):
    """kill -9 of a worker in the middle of a trial: the chief gives the trial to
    another worker; when every worker is gone, the chief stops with the trials
    left, and the same commands finish the sweep."""
    port = str(_free_port())
    cmd = _cli("tune", "mlp", "--dataset", "xor", "--epochs", "40", "--max-trials", "4", "--set", "units=8",
               "--set", "patience=0", "--space", "depth=1..2", "--runs-dir", str(tmp_path), "--name", "dist",
               "--no-retrain", "--worker-timeout", "8")
    env = {**os.environ, "KERASTUNER_ORACLE_IP": "127.0.0.1", "KERASTUNER_ORACLE_PORT": port, "TF_CPP_MIN_LOG_LEVEL": "3"}
    d = tmp_path / "dist"

    def running(worker: str) -> bool:
        for f in d.glob("trial_*/zoo_trial.json"):
            record = json.loads(f.read_text())
            if record.get("tuner_id") == worker and record.get("status") == "running":
                return True
        return False

    chief = _start_chief(cmd, env, port)
    workers = [subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": w}, cwd=ROOT, stdout=subprocess.DEVNULL,
                                stderr=subprocess.DEVNULL) for w in ("tuner0", "tuner1")]
    try:
        assert _wait_for(lambda: running("tuner1"), 120)
        workers[1].kill()  # SIGKILL mid-trial
        out = chief.communicate(timeout=240)[0]
        workers[0].wait(timeout=60)
    finally:
        for p in (chief, *workers):
            if p.poll() is None:
                p.kill()
    assert chief.returncode == 0, out[-3000:]
    assert "worker tuner1 stopped answering during trial" in out and "4 trials: 4 completed" in out
    # the only worker dies: the chief stops, saying what is left; the same commands finish the sweep
    (d / "trials.json").unlink()
    port = str(_free_port())
    env["KERASTUNER_ORACLE_PORT"] = port
    cmd[cmd.index("4")] = "6"  # --max-trials 6: two more trials
    chief = _start_chief(cmd, env, port)
    worker = subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": "tuner0"}, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: running("tuner0"), 120)
        worker.kill()
        out = chief.communicate(timeout=120)[0]
    finally:
        for p in (chief, worker):
            if p.poll() is None:
                p.kill()
    assert chief.returncode == 2 and "every worker stopped; trials left to run" in out
    chief = _start_chief(cmd, env, port)
    worker = subprocess.Popen(cmd, env={**env, "KERASTUNER_TUNER_ID": "tuner0"}, cwd=ROOT, stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
    try:
        out = chief.communicate(timeout=240)[0]
        worker.wait(timeout=60)
    finally:
        for p in (chief, worker):
            if p.poll() is None:
                p.kill()
    assert chief.returncode == 0 and "6 trials: 6 completed" in out, out[-3000:]


@pytest.mark.slow  # two TensorFlow processes: ~30 s
def test_killing_the_parent_ends_its_per_process_child(tmp_path):
    import psutil

    args = ["tune", "mlp", "--dataset", "xor", "--epochs", "200", "--max-trials", "4", "--set", "units=8",
            "--set", "patience=0", "--space", "depth=1..2", "--runs-dir", str(tmp_path), "--name", "pp", "--no-retrain",
            "--trials-per-process", "2"]
    parent = subprocess.Popen(_cli(*args), cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        assert _wait_for(lambda: (tmp_path / "pp" / "trial_0" / "zoo_trial.json").exists(), 120)
        children = psutil.Process(parent.pid).children()
        assert children, "no per-process child found"
        parent.kill()  # SIGKILL: no chance to clean up
        parent.wait(timeout=30)
        gone, alive = psutil.wait_procs(children, timeout=10)
        assert not alive, f"orphans still running: {alive}"
    finally:
        if parent.poll() is None:
            parent.kill()
