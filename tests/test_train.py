"""The one training path: run directories, reproducibility, optimizers, losses, errors."""

from __future__ import annotations

import json

import numpy as np
import pytest

import zoo
from zoo.errors import ZooError
from zoo.training import OPTIMIZERS, Run


def test_run_directory_holds_everything(runs_dir):
    run = zoo.train("mlp", "iris", runs_dir=runs_dir, epochs=3, units=8, verbose=0)
    names = {p.name for p in run.dir.iterdir()}
    assert {"config.json", "history.csv", "history.json", "metrics.json", "model.keras", "checkpoint.keras",
            "learning_curves.png"} <= names
    config = json.loads((run.dir / "config.json").read_text())
    assert config["model"] == "mlp" and config["dataset"] == "iris" and config["seed"] == 0
    assert config["hyperparameters"]["units"] == 8 and "tensorflow" in config["versions"]
    assert len(run.history["loss"]) == 3 == run.metrics["epochs_run"]
    assert 0 <= run.metrics["test_accuracy"] <= 1 and "baseline_test_accuracy" in run.metrics
    assert (run.dir / "history.csv").read_text().count("\n") == 4  # header + 3 epochs
    loaded = Run.load(run.dir)
    x = run.dataset.arrays["test"][0]
    assert np.allclose(loaded.model.predict(x, verbose=0), run.model.predict(x, verbose=0), atol=1e-6)
    assert loaded.data_spec == run.data_spec


def test_same_seed_same_metrics(runs_dir):
    a = zoo.train("mlp", "wine", runs_dir=runs_dir, seed=7, epochs=2, dropout=0.2, verbose=0)
    b = zoo.train("mlp", "wine", runs_dir=runs_dir, seed=7, epochs=2, dropout=0.2, verbose=0)
    c = zoo.train("mlp", "wine", runs_dir=runs_dir, seed=8, epochs=2, dropout=0.2, verbose=0)
    assert a.history == b.history and a.metrics["test_loss"] == b.metrics["test_loss"]
    assert a.history["loss"] != c.history["loss"]


def test_every_optimizer_trains(runs_dir):
    for name in OPTIMIZERS:
        lr = 1.0 if name == "adadelta" else 0.05
        run = zoo.train("mlp", "xor", runs_dir=runs_dir, epochs=2, optimizer=name, learning_rate=lr, units=8,
                        verbose=0)
        assert run.history["loss"][-1] < run.history["loss"][0], name
    opt = zoo.get_spec("mlp")
    from zoo.training import make_optimizer

    nesterov = make_optimizer(opt.resolve({"optimizer": "nesterov"}), 10)
    assert nesterov.nesterov and nesterov.momentum == 0.9


def test_linear_learning_rate_decay(runs_dir):
    run = zoo.train("mlp", "iris", runs_dir=runs_dir, epochs=4, patience=0, lr_schedule="linear",
                    learning_rate=0.01, final_lr_fraction=0.1, verbose=0)
    assert float(run.model.optimizer.learning_rate) == pytest.approx(0.001, rel=1e-4)


@pytest.mark.parametrize("dataset, loss", [("breast_cancer", "hinge"), ("iris", "hinge"), ("diabetes", "mae"),
                                           ("diabetes", "huber")])
def test_losses_by_task(runs_dir, dataset, loss):
    run = zoo.train("mlp", dataset, runs_dir=runs_dir, epochs=3, loss=loss, learning_rate=0.01, verbose=0)
    assert run.history["loss"][-1] < run.history["loss"][0]


def test_loss_that_does_not_fit_the_task(runs_dir):
    with pytest.raises(ZooError, match="loss 'mae' does not fit a classification task"):
        zoo.train("mlp", "iris", runs_dir=runs_dir, epochs=1, loss="mae", verbose=0)


def test_bad_hyperparameters_are_user_errors(runs_dir):
    with pytest.raises(ZooError, match="no hyperparameter 'dept'.*Did you mean: depth"):
        zoo.train("mlp", "iris", runs_dir=runs_dir, dept=2)
    with pytest.raises(ZooError, match="unknown optimizer 'adm'.*Did you mean: adam"):
        zoo.train("mlp", "iris", runs_dir=runs_dir, optimizer="adm", verbose=0)
    with pytest.raises(ZooError, match="unknown activation 'rellu'"):
        zoo.train("mlp", "iris", runs_dir=runs_dir, activation="rellu", verbose=0)
    with pytest.raises(ZooError, match="must be a whole number"):
        zoo.train("mlp", "iris", runs_dir=runs_dir, depth=1.5)


def test_divergence_is_reported_not_saved(runs_dir):
    with pytest.raises(ZooError, match="diverged"):
        zoo.train("mlp", "diabetes", runs_dir=runs_dir, epochs=5, optimizer="sgd", learning_rate=1e6, verbose=0)
    (run_dir,) = runs_dir.iterdir()
    assert json.loads((run_dir / "metrics.json").read_text())["status"] == "failed"
    assert not (run_dir / "model.keras").exists()


def test_run_callbacks_leave_the_training_loop_asynchronous(tmp_path, monkeypatch):
    """On a thread-safe backend (JAX) Keras runs batch-end hooks on a background thread
    only when every callback is async_safe; otherwise it copies each step's metrics to
    the host before dispatching the next step. The run's own callbacks must allow it."""
    from keras.src import backend
    from keras.src.callbacks.callback_list import CallbackList

    from zoo.training import training_callbacks

    monkeypatch.setattr(backend, "IS_THREAD_SAFE", True)
    cbs = training_callbacks(tmp_path, {"patience": 3}, tensorboard=True)
    import keras

    kinds = (keras.callbacks.TerminateOnNaN, keras.callbacks.ModelCheckpoint, keras.callbacks.BackupAndRestore)
    assert all(any(isinstance(cb, kind) for cb in cbs) for kind in kinds)
    assert CallbackList(cbs)._async_train
    assert not CallbackList([*cbs, keras_callback_with_batch_hook()])._async_train


def keras_callback_with_batch_hook():
    import keras

    class Hook(keras.callbacks.Callback):
        def on_train_batch_end(self, batch, logs=None):
            pass

    return Hook()


def test_early_stopping_restores_best(runs_dir):
    run = zoo.train("mlp", "iris", runs_dir=runs_dir, epochs=60, patience=2, learning_rate=0.05, verbose=0)
    assert run.metrics["epochs_run"] < 60
    best = min(run.history["val_loss"])
    x, y = run.dataset.arrays["val"]
    assert run.model.evaluate(x, y, verbose=0)[0] == pytest.approx(best, rel=1e-4)


def test_dataset_object_and_default_dataset(runs_dir):
    ds = zoo.load_dataset("iris", batch_size=8)
    run = zoo.train("perceptron", ds, runs_dir=runs_dir, epochs=1, verbose=0)
    assert run.config["dataset"] == "iris"
    run = zoo.train("perceptron", runs_dir=runs_dir, epochs=1, verbose=0)  # its default dataset
    assert run.config["dataset"] == zoo.get_spec("perceptron").default_dataset


def test_model_that_cannot_take_the_data(runs_dir):
    with pytest.raises(ZooError, match="does classification, regression"):
        from zoo.spec import DataSpec

        zoo.get_spec("mlp").check_data(DataSpec("x", "reconstruction-only", (3,)))


def test_interrupted_run_resumes_and_finished_run_is_kept(runs_dir):
    import keras

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_begin(self, epoch, logs=None):
            if epoch == 2:
                raise KeyboardInterrupt

    options = dict(runs_dir=runs_dir, run_name="r1", epochs=4, patience=0, units=8, verbose=0)
    with pytest.raises(KeyboardInterrupt):
        zoo.train("mlp", "iris", callbacks=[Interrupt()], **options)
    assert (runs_dir / "r1" / "backup").exists() and not (runs_dir / "r1" / "model.keras").exists()
    run = zoo.train("mlp", "iris", **options)
    assert len(run.history["loss"]) == 4 and run.metrics["epochs_run"] == 4
    with pytest.raises(ZooError, match="holds a finished run"):
        zoo.train("mlp", "iris", **options)


def test_run_with_custom_layers_reloads_in_a_fresh_process(runs_dir):
    import subprocess
    import sys

    run = zoo.train("mlp", "iris", runs_dir=runs_dir, epochs=1, activation="maxout", units=8, verbose=0)
    code = ("import sys; from zoo.training import Run; r = Run.load(sys.argv[1]); "
            "print(type(r.model.get_layer('dense1')).__name__)")
    out = subprocess.run([sys.executable, "-c", code, str(run.dir)], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip() == "Maxout"


def test_epoch_end_writes_stay_within_their_time_budget(tmp_path, monkeypatch):
    """A write is skipped until 1/WRITE_BUDGET times its duration has passed; the
    checkpoint still writes the last planned epoch."""
    import keras

    from zoo import callbacks

    clock = {"now": 0.0}
    monkeypatch.setattr(callbacks.time, "perf_counter", lambda: clock["now"])
    written = []

    class Recorder(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            written.append(epoch)
            clock["now"] += 0.05  # each write takes 50 ms

    class Budgeted(callbacks._Budgeted, Recorder):
        write_last_epoch = True

    cb = Budgeted()
    cb.set_params({"epochs": 12})
    cb.on_train_begin()
    for epoch in range(12):
        clock["now"] += 1.0  # one-second epochs: a 50 ms write is allowed every ~5 s
        cb.on_epoch_end(epoch)
    assert written == [0, 5, 10, 11]
    assert callbacks.WRITE_BUDGET == 0.01


def test_repeated_epochs_after_a_resume_count_once(tmp_path):
    from zoo.training import read_history

    path = tmp_path / "history.csv"
    path.write_text("epoch,loss\n0,1.0\n1,0.9\n2,0.8\n1,0.7\n2,0.6\n3,0.5\n")
    assert read_history(path) == {"loss": [1.0, 0.7, 0.6, 0.5]}
