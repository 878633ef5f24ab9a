"""The example third-party plugin (examples/zoo-example-plugin) through the zoo's own
commands, and the failures a third party will meet: an import error, an object that
is not a spec, a duplicate name, a spec for an unsupported API version.

Plugins are put on the path as pip would leave them (a *.dist-info with
entry_points.txt beside the source), without installing anything.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import zoo
from zoo import registry
from zoo.errors import PluginError, ZooError
from zoo.testing import CHECKS, check, write_dist_info

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "zoo-example-plugin"

#: model -> (distribution, version, module name, module source, what the error must say)
BROKEN = {
    "broken-import": ("zoo-broken", "1.0", "zoo_broken_import", "import zoo_missing_dependency\n",
                      ["plugin 'broken-import' from zoo-broken 1.0", "failed to import",
                       "No module named 'zoo_missing_dependency'", "Fix or uninstall zoo-broken"]),
    "not-a-spec": ("zoo-notspec", "1.0", "zoo_notspec", "spec = {'name': 'not-a-spec'}\n",
                   ["plugin 'not-a-spec' from zoo-notspec 1.0", "is a dict, not a zoo.spec.ModelSpec"]),
    "future-net": ("zoo-future", "3.0", "zoo_future",
                   "from zoo.spec import ModelSpec\n"
                   "spec = ModelSpec(name='future-net', family='f', summary='from the future',\n"
                   "                 tasks=('classification',), build=lambda hp, d: None, api_version=2)\n",
                   ["plugin 'future-net' from zoo-future 3.0", "written for spec API version 2",
                    "Upgrade keras-zoo, or install a release of zoo-future written for spec API version 1"]),
    "mlp": ("zoo-dup", "2.0", "zoo_dup", "from zoo.plugins.mlp import mlp\n",
            ["model name 'mlp' is registered by 2 distributions", "zoo-dup:mlp", "keras-zoo:mlp",
             "qualified name"]),
}
#: the zoo's own models that the broken plugins leave working (all but the duplicated mlp)
WORKING_BUILTINS = [n for n in registry.names() if n not in BROKEN]


def example_entry_points() -> tuple[str, str, dict[str, dict[str, str]]]:
    """Name, version and entry points by group (models, datasets, ...), read from the
    example's pyproject.toml."""
    project = tomllib.loads((EXAMPLE / "pyproject.toml").read_text())["project"]
    groups = {g.removeprefix("zoo."): e for g, e in project["entry-points"].items() if g.startswith("zoo.")}
    return project["name"], project["version"], groups


@pytest.fixture(scope="module")
def paths(tmp_path_factory) -> dict[str, list[str]]:
    """sys.path entries: "example" (the example plugin), "broken" (the four broken ones)."""
    root = tmp_path_factory.mktemp("site")
    name, version, groups = example_entry_points()
    write_dist_info(root / "example", name, version, **groups)
    for model, (dist, dist_version, module, source, _) in BROKEN.items():
        attribute = "mlp" if model == "mlp" else "spec"
        write_dist_info(root / "broken", dist, dist_version, {model: f"{module}:{attribute}"})
        (root / "broken" / f"{module}.py").write_text(source)
    return {"example": [str(root / "example"), str(EXAMPLE / "src")], "broken": [str(root / "broken")]}


@pytest.fixture
def on_path(monkeypatch):
    """Put plugin directories on sys.path for this test, with a fresh registry."""
    def install(*entries: str) -> None:
        for entry in entries:
            monkeypatch.syspath_prepend(entry)
        registry.clear_cache()

    yield install
    registry.clear_cache()


def zoo_cli(*args: str, path: list[str], cwd: Path, code: str | None = None) -> subprocess.CompletedProcess:
    """Run `zoo ARGS` (or python -c CODE) in a subprocess with `path` on PYTHONPATH."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([*path, os.environ.get("PYTHONPATH", "")]),
           "TF_CPP_MIN_LOG_LEVEL": "3"}
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "zoo.cli", *args]
    return subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=600)


def errors(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith(("zoo: error:", "warning:", "Traceback"))]


# --- the example plugin -------------------------------------------------------------


def test_zoo_list_shows_the_plugin_without_importing_tensorflow(paths, tmp_path):
    code = ("import sys; from zoo.cli import main; rc = main(['list']); "
            "print('imported:', sorted(m for m in ('tensorflow', 'keras', 'keras_tuner') if m in sys.modules)); "
            "sys.exit(rc)")
    out = zoo_cli(path=paths["example"] + paths["broken"], cwd=tmp_path, code=code)
    assert out.returncode == 0, out.stderr
    rows = {line.split()[0]: line.split()[1:] for line in out.stdout.splitlines()[1:-1]}
    assert rows["rbf-net"] == ["zoo-example-plugin", "0.1.0"]
    assert rows["mlp"] == ["zoo-dup,", "keras-zoo", "2.0,", "0.1.0"]  # a duplicate shows both origins
    assert set(BROKEN) | {"perceptron"} <= set(rows)  # names come from metadata: listed even when broken
    assert out.stdout.splitlines()[-1] == "imported: []"
    assert errors(out.stderr) == [
        "warning: model name 'mlp' is registered by 2 distributions: zoo-dup:mlp and keras-zoo:mlp "
        "(use the qualified name)"]


@pytest.fixture(scope="module")
def rbf_run(paths, tmp_path_factory) -> Path:
    """`zoo train rbf-net` on iris, with the four broken plugins installed beside it.

    In-process (zoo.cli.main, the command's own code) to spare a second TensorFlow start."""
    from zoo.cli import main

    runs = tmp_path_factory.mktemp("train") / "runs"
    with pytest.MonkeyPatch.context() as mp:
        for entry in paths["example"] + paths["broken"]:
            mp.syspath_prepend(entry)
        registry.clear_cache()
        try:
            rc = main(["train", "rbf-net", "--dataset", "iris", "--epochs", "8", "-q", "--runs-dir", str(runs),
                       "--run-name", "rbf"])
        finally:
            registry.clear_cache()
    assert rc == 0
    return runs / "rbf"


def test_zoo_train_trains_the_plugin(rbf_run):
    metrics = json.loads((rbf_run / "metrics.json").read_text())
    config = json.loads((rbf_run / "config.json").read_text())
    assert metrics["status"] == "completed" and metrics["epochs_run"] == 8
    assert config["model"] == "rbf-net" and config["hyperparameters"]["centers"] == 32
    assert metrics["test_accuracy"] > metrics["baseline_test_accuracy"]


def test_zoo_tune_tunes_the_plugin(paths, tmp_path):
    out = zoo_cli("tune", "rbf-net", "--dataset", "iris", "--max-trials", "2", "--epochs", "2",
                  path=paths["example"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-3000:]
    trials = out.stdout.split("trials table: ", 1)[1].split()[0]
    assert len((tmp_path / trials).read_text().strip().splitlines()) == 1 + 2  # header + two trials
    assert "best model retrained: " in out.stdout


def test_zoo_export_exports_the_plugin(paths, rbf_run, on_path, tmp_path):
    """`zoo export RUN` writes a SavedModel that serves raw iris rows like the trained model."""
    import numpy as np
    import tensorflow as tf

    from zoo.cli import main
    from zoo.data import preprocess
    from zoo.training import Run

    on_path(*paths["example"])
    assert main(["export", str(rbf_run), "--out", str(tmp_path / "saved_models")]) == 0
    serve = tf.saved_model.load(str(tmp_path / "saved_models" / "rbf-net" / "1")).signatures["serving_default"]
    (name, spec), = serve.structured_input_signature[1].items()
    raw = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5]], "float32")
    served = serve(**{name: tf.constant(raw, spec.dtype)})
    run = Run.load(rbf_run)  # reloads the custom GaussianRBF layer: the plugin registered it
    expected = np.asarray(run.model(preprocess(run.data_spec.preprocessing, raw), training=False))
    np.testing.assert_allclose(served["probabilities"].numpy(), expected, rtol=1e-5, atol=1e-5)
    assert served["class_ids"].numpy().tolist() == expected.argmax(axis=1).tolist()


@pytest.mark.parametrize("model", ["rbf-net", "mixup-mlp"])
@pytest.mark.parametrize("name", [c if c != "reload" else pytest.param(c, marks=pytest.mark.slow) for c in CHECKS])
def test_the_plugins_models_pass_the_conformance_kit(paths, on_path, model, name):
    on_path(*paths["example"])
    check(model, name)


# --- what goes wrong for third parties ------------------------------------------------


def test_zoo_list_long_reports_each_broken_plugin_and_lists_the_rest(paths, tmp_path):
    out = zoo_cli("list", "--long", path=paths["broken"], cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    names = [line.split()[0] for line in out.stdout.splitlines()[1:]]
    assert [n for n in names if ":" not in n] == WORKING_BUILTINS
    assert {n for n in names if ":" in n} == {"zoo-dup:mlp", "keras-zoo:mlp"}  # both, by qualified name
    warnings = errors(out.stderr)
    assert len(warnings) == len(BROKEN), warnings
    for model, (*_, expected) in BROKEN.items():
        line = next(w for w in warnings if f"'{model}'" in w)
        assert all(part in line for part in expected), line


@pytest.mark.parametrize("command", ["info", "train"])
@pytest.mark.parametrize("model", sorted(BROKEN))
def test_zoo_info_and_train_name_the_broken_plugin(paths, tmp_path, command, model):
    out = zoo_cli(command, model, path=paths["broken"], cwd=tmp_path)
    assert out.returncode == 2
    (line,) = errors(out.stderr)  # one line, no traceback
    assert line.startswith("zoo: error: ") and all(part in line for part in BROKEN[model][-1]), line


def test_python_api_isolates_broken_plugins(paths, on_path):
    on_path(*paths["example"], *paths["broken"])
    for model, (*_, expected) in BROKEN.items():
        with pytest.raises(PluginError) as info:
            zoo.get_spec(model)
        assert all(part in str(info.value) for part in expected), str(info.value)
    assert [n for n in zoo.list_models() if ":" not in n] == sorted([*WORKING_BUILTINS, "rbf-net", "mixup-mlp"])
    assert len(registry.problems()) == len(BROKEN)
    assert zoo.build("perceptron", input_shape=(4,), num_classes=3).output_shape == (None, 3)
    assert zoo.get_spec("rbf-net").family == "rbf"


def test_unknown_names_get_did_you_mean(paths, on_path, tmp_path):
    out = zoo_cli("info", "rbf-nett", path=paths["example"], cwd=tmp_path)
    assert out.returncode == 2
    (line,) = errors(out.stderr)
    assert line.startswith("zoo: error: unknown model 'rbf-nett'. Did you mean: rbf-net"), line
    on_path(*paths["broken"])
    with pytest.raises(ZooError, match="Did you mean: perceptron"):
        zoo.get_spec("perceptorn")
    with pytest.raises(PluginError):
        zoo.get_spec("broken-import")
    with pytest.raises(ZooError, match="installed but broken: plugin 'broken-import' from zoo-broken 1.0"):
        zoo.get_spec("broken")


# --- datasets, commands and callbacks as plugins; a model with its own train_step ------------------------


def test_dataset_command_and_callback_plugins_through_the_cli(paths, rbf_run, on_path, tmp_path, capsys):
    """`zoo datasets` lists the plugin's dataset with its distribution; a model trains
    on it with the plugin's callback; the plugin's command runs; provenance is recorded.
    In-process (zoo.cli.main, each command's own code) to spare TensorFlow start-ups."""
    from zoo.cli import main

    on_path(*paths["example"])
    assert main(["datasets"]) == 0
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("waves "))
    assert "zoo-example-plugin" in row
    assert main(["train", "mixup-mlp", "-d", "waves", "--epochs", "2", "--callback", "epoch-seconds", "-q",
                 "--runs-dir", str(tmp_path), "--run-name", "mix"]) == 0
    history = json.loads((tmp_path / "mix" / "history.json").read_text())
    assert len(history["epoch_seconds"]) == 2 and all(v > 0 for v in history["epoch_seconds"])
    provenance = json.loads((tmp_path / "mix" / "config.json").read_text())["provenance"]
    assert provenance["model"]["distribution"] == provenance["dataset"]["distribution"] == "zoo-example-plugin"
    assert provenance["callbacks"][0]["name"] == "epoch-seconds"
    capsys.readouterr()
    assert main(["centres", str(rbf_run), "--top", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].split() == ["centre", "norm", "width"] and len(lines) == 4
    with pytest.raises(SystemExit):
        main(["--help"])
    help_text = capsys.readouterr().out
    assert "centres" in help_text and "train" in help_text


def test_adversarial_training_does_not_replace_a_plugins_own_train_step(paths, on_path, tmp_path):
    on_path(*paths["example"])
    assert "mixup-mlp" not in zoo.list_models(capability="adversarial")  # no implied capability
    assert "rbf-net" in zoo.list_models(capability="adversarial")
    with pytest.raises(ZooError, match="its own train_step.*declare the 'adversarial' capability"):
        zoo.train("mixup-mlp", "waves", epochs=1, adversarial="fgsm", runs_dir=tmp_path, verbose=0)


def test_loading_a_plugin_run_imports_its_keras_modules(paths, rbf_run, on_path, tmp_path):
    """keras_modules is honoured wherever a run's model is loaded (transfer, export,
    Run.load): with the plugin's layers module forgotten and its class unregistered
    (a process that never imported them), loading imports the module again."""
    import keras

    from zoo import transfer
    from zoo.training import Run

    on_path(*paths["example"])
    for load in (lambda: transfer.load_source(rbf_run), lambda: Run.load(rbf_run)):
        keras.saving.get_custom_objects().pop("zoo_example_plugin>GaussianRBF", None)
        sys.modules.pop("zoo_example_plugin.layers", None)
        sys.modules.pop("zoo_example_plugin", None)
        loaded = load()
        model = loaded.model
        assert type(model.get_layer("rbf")).__name__ == "GaussianRBF"
        assert "zoo_example_plugin.layers" in sys.modules
