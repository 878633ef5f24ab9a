"""The learner's lab: quiet output, fast failures, the honest Python API,
listing and comparing runs, the lectures' plots, defaults that work.
Tiny data (xor, iris, digits with a limit), 1-3 epochs."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from zoo.errors import ZooError

ROOT = Path(__file__).resolve().parents[1]
#: lines TensorFlow's C++ start-up writes to the terminal
NATIVE_NOISE = ("I0000", "E0000", "W0000", "WARNING: All log messages", "cuda", "cuInit", "oneDNN", "NodeDef")


def zoo_cli(*args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", "import sys; from zoo.cli import main; sys.exit(main(sys.argv[1:]))",
                           *args], cwd=ROOT, capture_output=True, text=True, timeout=timeout,
                          env={k: v for k, v in {**os.environ, **(env or {})}.items() if k != "TF_CPP_MIN_LOG_LEVEL"})


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two xor runs that differ in their learning rate, and an iris run."""
    from zoo.training import train

    root = tmp_path_factory.mktemp("lab")
    made = {
        "slow": train("mlp", "xor", runs_dir=root, run_name="slow", epochs=3, learning_rate=0.001, units=8, verbose=0),
        "fast": train("mlp", "xor", runs_dir=root, run_name="fast", epochs=3, learning_rate=0.05, units=8, verbose=0),
        "iris": train("mlp", "iris", runs_dir=root, run_name="iris", epochs=40, units=8, verbose=0),
    }
    return root, made


# --- quiet output and fast failures -------------------------------------------------------------


def test_train_prints_no_tensorflow_start_up_lines(tmp_path):
    result = zoo_cli("train", "mlp", "-d", "xor", "--epochs", "1", "--set", "units=4", "--runs-dir", str(tmp_path),
                     "-q")
    assert result.returncode == 0, result.stderr[-2000:]
    noise = [line for line in result.stderr.splitlines() if any(n in line for n in NATIVE_NOISE)]
    assert not noise, noise[:3]
    assert "run directory:" in result.stdout and "test_accuracy" in result.stdout


def test_bad_names_fail_before_tensorflow_is_imported(tmp_path):
    code = ("import sys; from zoo.cli import main; codes = [main(['train', 'mlp', '-d', 'csv:nope.csv']), "
            "main(['train', 'mlp', '-d', 'digitz']), main(['tune', 'mlp', '-d', 'spiralz'])]; "
            "assert codes == [2, 2, 2], codes; assert 'tensorflow' not in sys.modules; print('ok')")
    result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert result.stdout.strip() == "ok", result.stderr[-2000:]
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 3 and all(line.startswith("zoo: error: ") for line in lines)
    assert "does not exist" in lines[0] and "Did you mean: digits" in lines[1] and "spirals" in lines[2]


def test_closed_pipe_and_missing_backend_are_one_line():
    piped = subprocess.run(f"{sys.executable} -c 'import sys; from zoo.cli import main; sys.exit(main())' list -l "
                           "| true", shell=True, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert "Traceback" not in piped.stderr and "BrokenPipe" not in piped.stderr
    pytest.importorskip("keras")
    try:
        import jax  # noqa: F401

        pytest.skip("jax is installed: nothing is missing")
    except ImportError:
        pass
    result = zoo_cli("doctor", env={"KERAS_BACKEND": "jax"})
    assert result.returncode == 2 and result.stderr.strip().splitlines()[-1].startswith("zoo: error: KERAS_BACKEND=jax")
    assert "Traceback" not in result.stderr


# --- the honest Python API ------------------------------------------------------------------------


def test_run_predict_takes_raw_inputs_as_the_export_does(runs, tmp_path):
    import tensorflow as tf

    from zoo.export import export_run
    from zoo.training import Run

    _, made = runs
    run = Run.load(made["iris"].dir)
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.9, 3.1, 4.9, 1.5], [6.3, 3.3, 6.0, 2.5]], "float32")
    mine = run.predict(rows)
    version = export_run(run.dir, out=tmp_path / "saved", name="iris")
    served = tf.saved_model.load(str(version)).signatures["serving_default"](features=tf.constant(rows))
    np.testing.assert_allclose(mine["probabilities"], served["probabilities"].numpy(), atol=1e-5)
    assert list(mine["class_ids"]) == list(served["class_ids"].numpy())
    assert mine["classes"][0] == "setosa"
    # the Keras model itself wants standardised inputs, and the run says so
    assert "standardised features" in run.expects() and "run.predict(raw)" in run.expects()
    single = run.predict(rows[0])
    np.testing.assert_allclose(single["probabilities"][0], mine["probabilities"][0], atol=1e-6)


def test_summary_flags_a_result_no_better_than_its_baseline(runs):
    from zoo.training import Run

    _, made = runs
    run = made["slow"]
    worse = Run(run.dir, run.config, run.history, {**run.metrics, "test_accuracy": 0.2,
                                                   "baseline_test_accuracy": 0.5}, None, None)
    text = worse.summary()
    assert "baseline 0.5000 (the majority class)" in text and "warning: test_accuracy 0.2000 is no better" in text
    restored = Run(run.dir, run.config, run.history, {**run.metrics, "monitor": {
        "metric": "val_loss", "best": 0.3, "best_epoch": 2, "kept_epoch": 2, "kept": 0.3, "last_epoch": 3,
        "restored": True}}, None, None)
    assert "early stopping kept epoch 2 (best val_loss 0.3000), not the last" in restored.summary()


# --- runs you can list and compare -------------------------------------------------------------


def test_runs_and_compare(runs, capsys):
    from zoo.cli import main

    root, _ = runs
    assert main(["runs", "--runs-dir", str(root), "--tensorboard", str(root / "tb")]) == 0
    out = capsys.readouterr().out
    assert "slow" in out and "fast" in out and "learning_rate=0.05" in out and "accuracy" in out
    import tensorflow as tf

    plugins = set()
    for event_file in (root / "tb" / "fast").glob("events*"):
        for event in tf.compat.v1.train.summary_iterator(str(event_file)):
            plugins |= {(v.tag, v.metadata.plugin_data.plugin_name) for v in event.summary.value}
    assert ("_hparams_/session_start_info", "hparams") in plugins and ("val_loss", "scalars") in plugins
    figure = root / "cmp.png"
    assert main(["compare", str(root / "slow"), str(root / "fast"), "--out", str(figure)]) == 0
    out = capsys.readouterr().out
    assert "differences: learning_rate" in out and figure.stat().st_size > 0
    assert main(["compare", str(root / "slow"), "--metric", "val_accuracy"]) == 2  # one run is not a comparison


def test_compare_varies_one_setting_with_the_same_seed(tmp_path, capsys):
    from zoo.cli import main

    code = main(["compare", "perceptron", "-d", "xor", "--vary", "optimizer=sgd,adadelta", "--epochs", "1",
                 "--runs-dir", str(tmp_path)])
    assert code == 0
    group = tmp_path / "compare-perceptron-xor-optimizer"
    configs = {d.name: json.loads((d / "config.json").read_text()) for d in group.iterdir() if d.is_dir()}
    assert set(configs) == {"sgd", "adadelta"} and {c["seed"] for c in configs.values()} == {0}
    assert configs["adadelta"]["hyperparameters"]["learning_rate"] == 1.0  # adadelta's own rate, not Adam's
    assert configs["sgd"]["hyperparameters"]["learning_rate"] == 0.01
    assert (group / "compare.png").stat().st_size > 0


# --- the lectures' plots -------------------------------------------------------------------------


def test_run_figures_are_written(runs, tmp_path):
    from zoo.training import train

    root, made = runs
    for name in ("learning_curves.png", "decision_boundary.png"):
        assert (made["fast"].dir / name).stat().st_size > 0
    forecast = train("lstm", "sines", runs_dir=tmp_path, epochs=1, units=4, limit=200, verbose=0)
    assert (forecast.dir / "forecast.png").stat().st_size > 0
    images = train("mlp", "digits", runs_dir=tmp_path, epochs=1, units=8, limit=200, verbose=0)
    for name in ("confusion_matrix.png", "misclassified.png"):
        assert (images.dir / name).stat().st_size > 0


def test_lr_find_and_learning_curve(tmp_path):
    from zoo.lab import learning_curve, lr_find

    found = lr_find("mlp", "xor", runs_dir=tmp_path, steps=40, units=8)
    assert 1e-7 <= found["suggested"] <= 10 and len(found["losses"]) <= 40
    assert (Path(found["dir"]) / "lr_find.png").stat().st_size > 0
    curve = learning_curve("perceptron", "xor", sizes=(0.25, 1.0), runs_dir=tmp_path, epochs=1, say=lambda s: None)
    from zoo.data import load

    n = load("xor").spec.sizes["train"]
    assert [p["n"] for p in curve["points"]] == [round(0.25 * n), n]
    assert all(0 <= p["train"] <= 1 and 0 <= p["test"] <= 1 for p in curve["points"])
    assert (Path(curve["dir"]) / "learning_curve.png").stat().st_size > 0
    with pytest.raises(ZooError, match="shares of the training split"):
        learning_curve("perceptron", "xor", sizes=(0, 2), runs_dir=tmp_path)


# --- defaults that work ------------------------------------------------------------------------------


def test_sgd_on_raw_prices_trains_instead_of_diverging(tmp_path):
    from zoo.training import train

    houses = ROOT / "examples" / "data" / "houses.csv"
    run = train("mlp", f"csv:{houses}", dataset_options={"target": "price"}, optimizer="nesterov",
                learning_rate=0.01, epochs=3, runs_dir=tmp_path, verbose=0)
    assert np.isfinite(run.history["loss"]).all()
    assert run.metrics["test_mae"] < run.metrics["baseline_test_mae"]  # in dollars, better than the mean price


def test_learning_rate_auto_follows_the_optimizer():
    from zoo.registry import get_spec
    from zoo.training import resolve_hyperparameters

    mlp = get_spec("mlp")
    assert resolve_hyperparameters(mlp, {})["learning_rate"] == 0.001
    assert resolve_hyperparameters(mlp, {"optimizer": "adadelta"})["learning_rate"] == 1.0
    assert resolve_hyperparameters(mlp, {"optimizer": "sgd", "learning_rate": "0.5"})["learning_rate"] == 0.5
    resnet = get_spec("resnet20")  # its own 0.1 belongs to its own optimizer (momentum)
    assert resolve_hyperparameters(resnet, {})["learning_rate"] == 0.1
    assert resolve_hyperparameters(resnet, {"optimizer": "adam"})["learning_rate"] == 0.001


def test_predict_names_each_image_and_warns_when_it_looks_unlike_the_training_images(tmp_path, capsys):
    from PIL import Image

    from zoo.data import load
    from zoo.export import export_run
    from zoo.serve import predict_file
    from zoo.training import train

    run = train("mlp", "digits", runs_dir=tmp_path, epochs=2, units=16, verbose=0)
    version = export_run(run.dir, out=tmp_path / "saved")
    x = load("digits").arrays["test"][0][:2]  # rescaled to [0, 1]: back to the dataset's 0-16 pixels
    folder = tmp_path / "drawn"
    folder.mkdir()
    for i, image in enumerate(x):
        pixels = (image[..., 0] * 16).round().astype("uint8")
        Image.fromarray(pixels, "L").save(folder / f"light-on-dark-{i}.png")
        Image.fromarray((16 - pixels).astype("uint8"), "L").save(folder / f"dark-on-light-{i}.png")
    capsys.readouterr()
    rows = predict_file(version, folder)
    assert [r["input"] for r in rows] == sorted(p.name for p in folder.iterdir())
    assert "inverted" not in capsys.readouterr().err  # half of each: the mean looks like the training images
    inverted = tmp_path / "inverted"
    inverted.mkdir()
    for p in folder.glob("dark-on-light-*.png"):
        p.rename(inverted / p.name)
    predict_file(version, inverted)
    assert "look inverted compared with the training images" in capsys.readouterr().err
    big = tmp_path / "big.png"
    Image.fromarray(np.full((8, 8), 255, "uint8"), "L").save(big)
    predict_file(version, big)
    assert "trained on pixels up to 16" in capsys.readouterr().err
