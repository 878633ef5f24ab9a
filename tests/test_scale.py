"""Devices, precision, XLA, tf.distribute and Keras backends (zoo.scale)."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest

from zoo import scale
from zoo.errors import ZooError
from zoo.spec import DataSpec, ModelSpec
from zoo.training import train

ROOT = Path(__file__).resolve().parents[1]
TINY = {"epochs": 2, "patience": 0, "units": 8, "verbose": 0}


# --- deciding --------------------------------------------------------------------------


def test_plan_on_a_cpu_machine_is_float32_without_xla():
    runtime = scale.plan()
    if scale.gpus():
        pytest.skip("this test describes a machine without a GPU")
    assert (runtime.device, runtime.precision, runtime.distribution) == ("cpu", "float32", "none")
    assert runtime.jit_compile == "auto" and runtime.compilation == "no XLA"
    assert runtime.devices == ("/cpu:0",) and runtime.num_replicas == 1 and runtime.is_chief
    info = scale.describe_runtime(precision="mixed_bfloat16", xla=True)
    assert info["precision"] == "mixed_bfloat16" and info["compilation"] == "XLA" and info["jit_compile"] is True
    assert "mixed_bfloat16" in info["summary"] and "XLA" in info["summary"]


@pytest.mark.parametrize("kwargs, words", [
    ({"device": "tpu9"}, "device"),
    ({"precision": "float8"}, "precision"),
    ({"distribute": "horovod"}, "distribution"),
])
def test_unknown_choices_are_user_errors(kwargs, words):
    with pytest.raises(ZooError, match=words):
        scale.plan(**kwargs)


def test_gpu_without_a_gpu_says_what_to_do():
    if scale.gpus():
        pytest.skip("a GPU is visible")
    with pytest.raises(ZooError, match="--device cpu"):
        scale.plan(device="gpu")


def test_multiworker_needs_a_valid_tf_config(monkeypatch):
    monkeypatch.delenv("TF_CONFIG", raising=False)
    with pytest.raises(ZooError, match="TF_CONFIG"):
        scale.plan(distribute="multiworker")
    monkeypatch.setenv("TF_CONFIG", "{not json")
    with pytest.raises(ZooError, match="TF_CONFIG is not a valid"):
        scale.plan(distribute="multiworker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 5}}))
    with pytest.raises(ZooError, match="index 5"):
        scale.plan(distribute="multiworker")
    monkeypatch.setenv("TF_CONFIG", json.dumps({"cluster": {"worker": ["a:1", "b:2"]},
                                                "task": {"type": "worker", "index": 1}}))
    runtime = scale.plan(distribute="multiworker")  # plan only: no strategy is created
    assert (runtime.num_workers, runtime.worker_index, runtime.is_chief) == (2, 1, False)
    assert runtime.write_dir(Path("runs/r")) == Path("runs/r/workertemp_1")


# --- precision -------------------------------------------------------------------------

HEADS = {
    "binary": DataSpec("b", "classification", (4,), num_classes=2),
    "multiclass": DataSpec("m", "classification", (4,), num_classes=3),
    "regression": DataSpec("r", "regression", (4,), num_targets=2),
    "regression_standardized": DataSpec("rs", "regression", (4,), num_targets=1,
                                        preprocessing={"target": {"mean": [3.0], "std": [2.0]}}),
    "reconstruction": DataSpec("x", "reconstruction", (4,)),
}


@pytest.mark.parametrize("kind", list(HEADS))
@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
def test_every_output_head_stays_float32_under_mixed_precision(kind, policy):
    from zoo.layers import output_head

    runtime = scale.Runtime("tensorflow", "cpu", ("/cpu:0",), policy, "auto", "no XLA", "none")
    with runtime.scope():
        inputs = keras.Input((4,))
        hidden = keras.layers.Dense(8, name="hidden")(inputs)
        model = keras.Model(inputs, output_head(hidden, HEADS[kind]))
    assert keras.mixed_precision.global_policy().name == "float32"  # restored
    assert model.get_layer("hidden").compute_dtype != "float32"
    assert all(str(t.dtype) == "float32" for t in model.outputs)
    assert model(np.ones((2, 4), "float32")).dtype == "float32"


def test_registered_tabular_models_keep_float32_outputs():
    from zoo import registry

    data_spec = HEADS["multiclass"]
    runtime = scale.Runtime("tensorflow", "cpu", ("/cpu:0",), "mixed_float16", "auto", "no XLA", "none")
    checked = 0
    for name in registry.list_models():
        spec = registry.get_spec(name)
        if spec.input_ranks not in (None,) and 1 not in spec.input_ranks or "classification" not in spec.tasks:
            continue
        with runtime.scope():
            model = spec.build(spec.resolve(), data_spec)
        runtime.check_model(spec, model)
        checked += 1
    assert checked >= 2  # mlp and perceptron at least


def test_non_float32_output_is_refused_under_mixed_precision():
    runtime = scale.Runtime("tensorflow", "cpu", ("/cpu:0",), "mixed_float16", "auto", "no XLA", "none")
    with runtime.scope():
        inputs = keras.Input((4,))
        model = keras.Model(inputs, keras.layers.Dense(3, activation="softmax", name="probs")(inputs))
    spec = ModelSpec("half", "test", "a float16 head", ("classification",), build=lambda hp, ds: model)
    with pytest.raises(ZooError, match="float32"):
        runtime.check_model(spec, model)


def test_train_with_mixed_bfloat16_records_it_and_restores_the_policy(runs_dir):
    run = train("mlp", "iris", runs_dir=runs_dir, precision="mixed_bfloat16", **TINY)
    assert run.config["runtime"]["precision"] == "mixed_bfloat16"
    assert run.model.get_layer("dense1").compute_dtype == "bfloat16"
    assert run.model.get_layer("output").compute_dtype == "float32"
    assert keras.mixed_precision.global_policy().name == "float32"
    assert json.loads((run.dir / "config.json").read_text())["runtime"]["precision"] == "mixed_bfloat16"
    assert np.isfinite(run.metrics["test_loss"])


# --- compilation and devices -------------------------------------------------------------


def test_xla_flag_reaches_compile():
    from zoo.registry import get_spec
    from zoo.training import build_model, compile_model, set_seed

    spec = get_spec("perceptron")
    hp = spec.resolve()
    for xla, expected in ((True, True), (False, False)):
        runtime = scale.configure(device="cpu", xla=xla)
        assert runtime.deterministic is (not xla) and runtime.compilation == ("XLA" if xla else "no XLA")
        set_seed(0, deterministic=runtime.deterministic)  # Keras refuses XLA under op determinism
        with runtime.scope():
            model = build_model(spec, hp, HEADS["multiclass"])
            compile_model(model, spec, hp, HEADS["multiclass"], steps_per_epoch=1, jit_compile=runtime.jit_compile)
        assert model.jit_compile is expected
    set_seed(0)


# --- distribution ----------------------------------------------------------------------


def test_mirrored_gives_the_same_run_as_no_strategy(runs_dir):
    plain = train("mlp", "iris", runs_dir=runs_dir, run_name="plain", **TINY)
    mirrored = train("mlp", "iris", runs_dir=runs_dir, run_name="mirrored", distribute="mirrored", **TINY)
    assert mirrored.config["distribution"]["strategy"] == "mirrored"
    assert mirrored.config["distribution"]["num_replicas"] >= 1 and mirrored.config["distribution"]["chief"]
    assert plain.config["distribution"]["strategy"] == "none"
    # the mirrored run reads the zoo's sharding pipeline, the plain one Keras's array adapter:
    # the same data in another shuffle order, so the numbers agree to that order's effect (0.06%)
    np.testing.assert_allclose(mirrored.history["loss"], plain.history["loss"], rtol=5e-3)
    assert mirrored.metrics["test_accuracy"] == pytest.approx(plain.metrics["test_accuracy"], abs=0.13)
    assert (mirrored.dir / "checkpoint.keras").exists() and (mirrored.dir / "model.keras").exists()


class _CustomStep(keras.Model):
    def train_step(self, data):  # pragma: no cover - never run
        return super().train_step(data)


def _custom_model():
    inputs = keras.Input((4,))
    return _CustomStep(inputs, keras.layers.Dense(3, activation="softmax", dtype="float32")(inputs))


def test_custom_train_step_is_refused_under_a_strategy_and_on_jax():
    model = _custom_model()
    spec = ModelSpec("custom", "test", "custom step", ("classification",), build=lambda hp, ds: model)
    mirrored = scale.Runtime("tensorflow", "cpu", ("/cpu:0",), "float32", "auto", "no XLA", "mirrored")
    with pytest.raises(ZooError, match="train_step.*without --distribute"):
        mirrored.check_model(spec, model)
    on_jax = scale.Runtime("jax", "cpu", ("/cpu:0",), "float32", "auto", "XLA (jax.jit)", "none")
    with pytest.raises(ZooError, match="KERAS_BACKEND=tensorflow"):
        on_jax.check_model(spec, model)
    scale.Runtime("tensorflow", "cpu", ("/cpu:0",), "float32", "auto", "no XLA", "none").check_model(spec, model)
    able = ModelSpec("able", "test", "custom step that works everywhere", ("classification",),
                     build=lambda hp, ds: model, capabilities={scale.DISTRIBUTED, scale.JAX})
    mirrored.check_model(able, model)
    on_jax.check_model(able, model)
    assert scale.custom_training(spec, keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])) == ""


def test_pretraining_hook_is_refused_under_a_strategy(runs_dir):
    from zoo.plugins.mlp import build, mlp

    spec = ModelSpec("pre", "mlp", "with a pretraining hook", ("classification",), build=build,
                     defaults=dict(mlp.defaults), pretrain=lambda *a: None)
    with pytest.raises(ZooError, match="pretraining hook"):
        train(spec, "iris", runs_dir=runs_dir, distribute="mirrored", **TINY)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


WORKER = textwrap.dedent("""
    import json, sys
    from zoo.training import train
    run = train("mlp", "iris", runs_dir=sys.argv[1], run_name="mw", epochs=2, patience=0, units=8, verbose=0,
                distribute="multiworker")
    print("RESULT " + json.dumps({"history": run.history, "metrics": run.metrics,
                                  "distribution": run.config["distribution"], "dir": str(run.dir)}))
""")


@pytest.mark.slow  # ~90 s on a busy 2-core machine: python -m pytest -m slow tests/test_scale.py
def test_two_workers_train_one_model_like_a_single_process(tmp_path, runs_dir):
    """Two processes on loopback ports, MultiWorkerMirroredStrategy from TF_CONFIG, reach
    the single process's metrics on the same data and seed."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    workers = [f"127.0.0.1:{_free_port()}", f"127.0.0.1:{_free_port()}"]
    procs = []
    for i in range(2):
        env = {**os.environ, "TF_CONFIG": json.dumps({"cluster": {"worker": workers},
                                                      "task": {"type": "worker", "index": i}}),
               "TF_CPP_MIN_LOG_LEVEL": "2", "KERAS_BACKEND": "tensorflow"}
        procs.append(subprocess.Popen([sys.executable, str(script), str(tmp_path / "mw-runs")], env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=ROOT))
    outputs = []
    try:
        for p in procs:
            out, _ = p.communicate(timeout=300)
            outputs.append(out)
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    results = []
    for i, (p, out) in enumerate(zip(procs, outputs)):
        lines = [ln for ln in out.splitlines() if ln.startswith("RESULT ")]
        assert p.returncode == 0 and lines, f"worker {i} failed:\n{out[-3000:]}"
        results.append(json.loads(lines[-1][len("RESULT "):]))
    chief, worker = results
    assert chief["distribution"] == {"strategy": "multiworker", "num_workers": 2, "worker_index": 0,
                                     "num_replicas": 2, "chief": True}
    assert worker["distribution"]["worker_index"] == 1 and not worker["distribution"]["chief"]
    # the chief wrote the run directory; the other worker's temporary directory is gone
    run_dir = tmp_path / "mw-runs" / "mw"
    assert (run_dir / "model.keras").exists() and (run_dir / "checkpoint.keras").exists()
    assert json.loads((run_dir / "config.json").read_text())["distribution"]["num_workers"] == 2
    assert not (run_dir / "workertemp_1").exists()
    # both workers hold the same model; both match one process on the same data and seed
    single = train("mlp", "iris", runs_dir=runs_dir, epochs=2, patience=0, units=8, verbose=0)
    np.testing.assert_allclose(worker["history"]["loss"], chief["history"]["loss"], rtol=1e-6)
    np.testing.assert_allclose(chief["history"]["loss"], single.history["loss"], rtol=1e-3)
    np.testing.assert_allclose(chief["history"]["val_loss"], single.history["val_loss"], rtol=1e-3)
    assert chief["metrics"]["test_accuracy"] == pytest.approx(single.metrics["test_accuracy"], abs=0.05)
    assert chief["metrics"]["test_loss"] == pytest.approx(single.metrics["test_loss"], rel=1e-2)


# --- command line ---------------------------------------------------------------------


def test_info_shows_the_runtime(capsys):
    from zoo.cli import main

    assert main(["info", "perceptron", "--dataset", "iris", "--precision", "mixed_bfloat16"]) == 0
    line = next(ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("runtime"))
    assert "mixed_bfloat16" in line and ("cpu" in line or "gpu" in line)
    assert main(["info", "perceptron", "--dataset", "iris", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["runtime"]["backend"] == keras.config.backend() and info["runtime"]["distribution"] == "none"


def test_train_flags_reach_the_run(tmp_path, capsys):
    from zoo.cli import main

    assert main(["train", "perceptron", "-d", "iris", "--epochs", "1", "-q", "--runs-dir", str(tmp_path),
                 "--device", "cpu", "--no-xla", "--distribute", "mirrored"]) == 0
    run_dir = Path(capsys.readouterr().out.split("run directory: ")[1].splitlines()[0])
    config = json.loads((run_dir / "config.json").read_text())
    assert config["runtime"]["device"] == "cpu" and config["runtime"]["jit_compile"] is False
    assert config["distribution"]["strategy"] == "mirrored"


# --- the JAX backend (python -m pytest -m jax) -----------------------------------------

JAX_SCRIPT = textwrap.dedent("""
    import json, sys
    import keras, numpy as np
    from zoo.training import train
    assert keras.config.backend() == "jax", keras.config.backend()
    run = train(sys.argv[2], "iris", runs_dir=sys.argv[1], epochs=2, patience=0, units=8, verbose=0)
    x = run.dataset.arrays["test"][0][:5]
    keras_out = np.asarray(run.model.predict(x, verbose=0))
    run.model.export(sys.argv[1] + "/saved", format="tf_saved_model")
    import tensorflow as tf
    loaded = tf.saved_model.load(sys.argv[1] + "/saved")
    saved_out = loaded.serve(tf.constant(x)).numpy()
    print("RESULT " + json.dumps({"metrics": run.metrics, "runtime": run.config["runtime"],
                                  "gap": float(np.max(np.abs(keras_out - saved_out)))}))
""")


def _run_on_jax(tmp_path: Path, model: str) -> dict:
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[jax]')")
    script = tmp_path / "on_jax.py"
    script.write_text(JAX_SCRIPT)
    env = {**os.environ, "KERAS_BACKEND": "jax", "TF_CPP_MIN_LOG_LEVEL": "2", "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run([sys.executable, str(script), str(tmp_path), model], env=env, cwd=ROOT,
                          capture_output=True, text=True, timeout=300)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert proc.returncode == 0 and lines, proc.stdout[-2000:] + proc.stderr[-3000:]
    return json.loads(lines[-1][len("RESULT "):])


@pytest.mark.jax
@pytest.mark.parametrize("model", ["mlp", "perceptron"])
def test_trains_on_jax_and_exports_a_savedmodel(tmp_path, model):
    result = _run_on_jax(tmp_path, model)
    assert result["runtime"]["backend"] == "jax" and result["runtime"]["compilation"] == "XLA (jax.jit)"
    assert result["metrics"]["status"] == "completed" and np.isfinite(result["metrics"]["test_loss"])
    assert result["gap"] < 1e-4  # the SavedModel computes what the Keras model computes


@pytest.mark.jax
def test_jax_refuses_tf_distribute(tmp_path):
    if importlib.util.find_spec("jax") is None:
        pytest.skip("jax is not installed (pip install -e '.[jax]')")
    code = ("from zoo import scale\nfrom zoo.errors import ZooError\n"
            "try:\n    scale.plan(distribute='mirrored')\nexcept ZooError as e:\n    print('REFUSED', e)\n")
    proc = subprocess.run([sys.executable, "-c", code], env={**os.environ, "KERAS_BACKEND": "jax"}, cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert "REFUSED" in proc.stdout and "KERAS_BACKEND=tensorflow" in proc.stdout, proc.stderr[-2000:]


# --- the zoo adds nothing to the training step -----------------------------------------


def _throughput_benchmark():
    spec = importlib.util.spec_from_file_location("throughput", ROOT / "benchmarks" / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_zoo_train_compiles_the_same_training_step_as_bare_keras(monkeypatch):
    """The throughput benchmark's --graphs check: `zoo train`'s MLP runs the bare Keras
    script's step op for op; and the check does see one extra layer in the bare twin."""
    bench = _throughput_benchmark()
    args = argparse.Namespace(n=256, n_val=128, epochs=1, batch_size=128)
    same = bench.compare_steps("mlp", args)
    assert same["zoo"] == same["bare"] > 100 and same["only_zoo"] == same["only_bare"] == {}

    twin = bench.keras_model

    def with_dropout(kind):
        model = twin(kind)
        x = keras.layers.Dropout(0.1)(model.layers[-2].output)
        return keras.Model(model.inputs, model.layers[-1](x))

    monkeypatch.setattr(bench, "keras_model", with_dropout)
    differ = bench.compare_steps("mlp", args)
    assert differ["bare"] > differ["zoo"] and "StatelessRandomUniformV2" in differ["only_bare"]
