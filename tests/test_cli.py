"""The `zoo` command: output, exit codes, one-line user errors."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from zoo.cli import main


def run_cli(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_list_is_fast_and_imports_no_tensorflow():
    code = "import sys; from zoo.cli import main; main(['list']); print('tensorflow' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert "mlp" in out and "perceptron" in out and out.strip().endswith("False")


def test_list_filters(capsys):
    code, out, _ = run_cli(capsys, "list", "--task", "regression", "--family", "mlp")
    assert code == 0 and "mlp" in out and "Multilayer perceptron" in out
    code, out, _ = run_cli(capsys, "list", "perc*")
    assert code == 0 and "perceptron" in out and "\nmlp" not in out


def test_info_shows_defaults_space_and_parameter_count(capsys):
    code, out, _ = run_cli(capsys, "info", "mlp", "--dataset", "iris", "--json")
    info = json.loads(out)
    # iris: 4 features, 3 classes; two hidden layers of 64
    assert info["parameters"]["count"] == (4 * 64 + 64) + (64 * 64 + 64) + (64 * 3 + 3)
    assert info["defaults"]["depth"] == 2 and "learning_rate" in info["search_space"]


def test_datasets(capsys):
    code, out, _ = run_cli(capsys, "datasets")
    assert code == 0 and all(name in out for name in ("xor", "spirals", "digits", "diabetes", "csv:PATH", "mnist"))


def test_train_prints_run_directory_and_metrics(capsys, tmp_path):
    code, out, err = run_cli(capsys, "train", "mlp", "--dataset", "iris", "--epochs", "2", "--lr", "0.01",
                             "--set", "units=8", "--set", "activation=tanh", "--runs-dir", str(tmp_path), "-q")
    assert code == 0, err
    run_dir = out.split("run directory: ")[1].splitlines()[0]
    config = json.loads((tmp_path / run_dir.split("/")[-1] / "config.json").read_text())
    assert config["hyperparameters"]["units"] == 8 and config["hyperparameters"]["activation"] == "tanh"
    assert config["hyperparameters"]["learning_rate"] == 0.01 and "test_accuracy" in out


@pytest.mark.parametrize("argv, message", [
    (["train", "mpl"], "unknown model 'mpl'. Did you mean: mlp"),
    (["info", "mlpp"], "Did you mean: mlp"),
    (["train", "mlp", "--dataset", "irsi"], "unknown dataset 'irsi'. Did you mean: iris"),
    (["train", "mlp", "--set", "depth"], "--set takes key=value"),
    (["train", "mlp", "--set", "depth=two"], "'depth' expects a int"),
    (["train", "mlp", "--dataset", "csv:/no/such.csv"], "does not exist"),
])
def test_user_errors_are_one_line_and_exit_2(capsys, argv, message, tmp_path):
    code, out, err = run_cli(capsys, *argv, *(["--runs-dir", str(tmp_path)] if argv[0] == "train" else []))
    assert code == 2
    assert err.startswith("zoo: error: ") and message in err and err.count("\n") == 1
    assert "Traceback" not in err
