"""The fault suite for training: a run killed at any moment is resumed by the same
command, losing at most the epoch in progress, and a damaged backup or run file is
met with one line, never a traceback.

Fast tests stop a run in-process at the chosen point (an exception raised from the
function the run is in at that moment) or damage its files by hand, then resume it.
The subprocess tests kill `zoo train` with SIGKILL at the same points, reached
deterministically by a wrapper that patches the function to kill its own process.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

import zoo
import zoo.plots
from zoo import callbacks, files, training
from zoo.errors import ZooError

#: a tiny run; patience 2 so that early stopping's state matters on resume
OPTIONS = dict(epochs=4, units=8, patience=2, verbose=0)


class Killed(BaseException):
    """Stands for SIGKILL in-process (like it, nothing catches it)."""


class EpochCounter:
    """A callback counting the epochs a run trains."""

    def __new__(cls):
        import keras

        class Counter(keras.callbacks.Callback):
            epochs: list[int] = []

            def on_epoch_begin(self, epoch, logs=None):
                self.epochs.append(epoch)

        return Counter()


class StopAt:
    """A callback that 'kills' the run when epoch `epoch` (0-based) begins."""

    def __new__(cls, epoch: int):
        import keras

        class Stop(keras.callbacks.Callback):
            def on_epoch_begin(self, e, logs=None):
                if e == epoch:
                    raise Killed

        return Stop()


@pytest.fixture
def every_epoch(monkeypatch):
    """Back up every epoch (tiny epochs would otherwise be skipped by the write budget)."""
    monkeypatch.setattr(callbacks, "WRITE_BUDGET", 1.0)


def run(runs_dir, *, name="r", callbacks=(), **options):
    return zoo.train("mlp", "iris", runs_dir=runs_dir, run_name=name, callbacks=list(callbacks),
                     **{**OPTIONS, **options})


def said(capsys, words: str) -> list[str]:
    """The lines of the zoo's own stderr output that hold `words`."""
    return [line for line in capsys.readouterr().err.splitlines() if line.startswith("zoo:") and words in line]


def history_epochs(run_dir: Path) -> list[int]:
    lines = (run_dir / "history.csv").read_text().splitlines()[1:]
    return [int(line.split(",")[0]) for line in lines]


def assert_same_run(a, b):
    """Two runs with the same history, test figures and weights."""
    assert a.history == b.history
    figures = {k: v for k, v in a.metrics.items() if k.startswith("test_")}
    assert figures == {k: v for k, v in b.metrics.items() if k.startswith("test_")}
    weights = a.model.get_weights(), b.model.get_weights()
    assert len(weights[0]) == len(weights[1])
    for wa, wb in zip(*weights):
        np.testing.assert_array_equal(wa, wb)


# --- the end of a run: a kill after the last epoch never trains again ----------------


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted run."""
    return run(tmp_path_factory.mktemp("reference"))


@pytest.mark.parametrize("point", ["after_fit", "between_model_and_metrics", "during_reports"])
def test_killed_while_writing_results_finishes_without_training(runs_dir, monkeypatch, capsys, point, reference):
    original = {"after_fit": training.read_history, "between_model_and_metrics": training._write_json,
                "during_reports": zoo.plots.learning_curves}[point]

    def kill(*args, **kwargs):
        if point != "between_model_and_metrics" or Path(args[0]).name == "metrics.json":
            raise Killed
        return original(*args, **kwargs)

    target = {"after_fit": (training, "read_history"), "between_model_and_metrics": (training, "_write_json"),
              "during_reports": (zoo.plots, "learning_curves")}[point]
    with monkeypatch.context() as m:
        m.setattr(*target, kill)
        with pytest.raises(Killed):
            run(runs_dir)
    run_dir = runs_dir / "r"
    trained = json.loads((run_dir / "backup" / "training_metadata.json").read_text())["train_seconds"]
    counter = EpochCounter()
    resumed = run(runs_dir, callbacks=[counter])
    assert counter.epochs == []  # nothing trained again
    assert resumed.metrics["train_seconds"] == trained > 0  # the time of the first process's epochs
    assert "training had finished" in capsys.readouterr().err
    assert_same_run(resumed, reference)
    assert resumed.metrics["status"] == "completed" and not (run_dir / "backup").exists()
    assert history_epochs(run_dir) == list(range(len(reference.history["loss"])))
    with pytest.raises(ZooError, match="holds a finished run"):
        run(runs_dir)


def test_kill_inside_the_model_write_leaves_no_torn_model(runs_dir, monkeypatch):
    """Keras writes model.keras under a temporary name: a kill half-way leaves no
    model.keras at all (not a 107-byte one), and the re-run writes it whole."""
    import keras

    save = keras.Model.save

    def torn_save(self, path, *args, **kwargs):
        save(self, path, *args, **kwargs)
        if Path(path).name.endswith("model.keras"):
            Path(path).write_bytes(Path(path).read_bytes()[:107])
            raise Killed

    with monkeypatch.context() as m:
        m.setattr(keras.Model, "save", torn_save)
        with pytest.raises(Killed):
            run(runs_dir)
    run_dir = runs_dir / "r"
    assert (run_dir / "checkpoint.keras").exists() and not (run_dir / "model.keras").exists()
    resumed = run(runs_dir)
    assert resumed.metrics["status"] == "completed"
    assert training.Run.load(run_dir).model.count_params() == resumed.model.count_params()


# --- during training: resumed after the last backup, each epoch once -----------------


def test_resume_repeats_only_epochs_after_the_backup_and_logs_each_once(runs_dir, every_epoch, capsys):
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(3)], patience=0)
    run_dir = runs_dir / "r"
    assert history_epochs(run_dir) == [0, 1, 2]
    record = json.loads((run_dir / "backup" / "training_metadata.json").read_text())
    assert record["epoch"] == 3 and record["previous"]["epoch"] == 2
    record = {**record["previous"], "previous": None}  # as if the write budget had skipped the third backup
    (run_dir / "backup" / "training_metadata.json").write_text(json.dumps(record))
    counter = EpochCounter()
    resumed = run(runs_dir, callbacks=[counter], patience=0)
    assert counter.epochs == [2, 3]
    assert "resuming after epoch 2" in capsys.readouterr().err
    assert history_epochs(run_dir) == [0, 1, 2, 3]  # epoch 2 logged once, by the run that kept it
    assert resumed.metrics["epochs_run"] == 4 == len(resumed.history["loss"])


def test_resumed_run_keeps_the_best_epoch_from_before_the_interruption(runs_dir, every_epoch):
    """Early stopping's best figure, patience count and best weights are backed up: a
    run interrupted after its best epoch still ends with that epoch's weights, as
    the uninterrupted run does, and says so in metrics.json."""
    options = dict(epochs=8, patience=3, optimizer="momentum", learning_rate=1.0)  # the best epoch comes early
    reference = run(runs_dir, name="reference", **options)
    kept = reference.metrics["monitor"]["kept_epoch"]
    if kept == len(reference.history["loss"]):
        pytest.skip("the best epoch of this run is its last: nothing to lose by an interruption")
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(kept)], **options)  # killed just after the best epoch
    resumed = run(runs_dir, **options)
    assert resumed.metrics["monitor"]["best"] <= reference.metrics["monitor"]["best"]
    assert resumed.history["val_loss"][:kept] == reference.history["val_loss"][:kept]
    best = resumed.metrics["monitor"]["kept_epoch"]
    x, y = resumed.dataset.arrays["val"]
    assert resumed.model.evaluate(x, y, verbose=0)[0] == pytest.approx(resumed.history["val_loss"][best - 1], rel=1e-4)


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_damaged_backup_weights_fall_back_to_the_backup_before(runs_dir, every_epoch, capsys, damage):
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(3)], patience=0)
    backup = runs_dir / "r" / "backup"
    latest = backup / json.loads((backup / "training_metadata.json").read_text())["weights"]
    latest.write_bytes(latest.read_bytes()[: latest.stat().st_size // 2] if damage == "truncated" else b"")
    counter = EpochCounter()
    resumed = run(runs_dir, callbacks=[counter], patience=0)
    (line,) = said(capsys, "")  # one line, no traceback
    assert "is damaged" in line and "resuming after epoch 2 from the backup before it" in line
    assert counter.epochs == [2, 3]
    assert history_epochs(runs_dir / "r") == [0, 1, 2, 3]
    assert resumed.metrics["status"] == "completed"


@pytest.mark.parametrize("content", ["", '{"epoch": 2, "batc', '{"epoch": "two"}'])
def test_damaged_backup_metadata_starts_again_in_one_line(runs_dir, every_epoch, capsys, content):
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(2)], patience=0)
    (runs_dir / "r" / "backup" / "training_metadata.json").write_text(content)
    counter = EpochCounter()
    resumed = run(runs_dir, callbacks=[counter], patience=0)
    damaged = said(capsys, "is damaged")
    assert len(damaged) == 1 and "starting from epoch 1" in damaged[0] and "training_metadata.json" in damaged[0]
    assert counter.epochs == [0, 1, 2, 3]
    assert history_epochs(runs_dir / "r") == [0, 1, 2, 3]
    assert resumed.metrics["epochs_run"] == 4


def test_torn_backup_of_keras_backup_and_restore_starts_again(runs_dir, capsys):
    """What Keras's own BackupAndRestore (an older zoo) leaves when killed while it
    writes: a torn latest.weights.h5 that the issue saw as an h5py traceback."""
    run_dir = runs_dir / "r"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "backup" / "latest.weights.h5").write_bytes(b"\x89HDF\r\n\x1a\n" + bytes(100))
    (run_dir / "backup" / "training_metadata.json").write_text('{"epoch": 2, "batch": 0}')
    (run_dir / "history.csv").write_text("epoch,loss\n0,1.0\n1,0.9\n")
    resumed = run(runs_dir, patience=0)
    damaged = said(capsys, "is damaged")
    assert len(damaged) == 1 and "OSError" in damaged[0] and "starting from epoch 1" in damaged[0]
    assert resumed.metrics["epochs_run"] == 4 and history_epochs(run_dir) == [0, 1, 2, 3]


def test_weights_without_metadata_start_again(runs_dir, capsys):
    run_dir = runs_dir / "r"
    (run_dir / "backup").mkdir(parents=True)
    (run_dir / "backup" / "epoch-1.weights.h5").write_bytes(b"half")
    resumed = run(runs_dir, patience=0)
    assert "no training_metadata.json" in capsys.readouterr().err
    assert resumed.metrics["epochs_run"] == 4 and not (run_dir / "backup").exists()


def test_backup_of_another_model_is_a_user_error(runs_dir, every_epoch):
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(2)])
    with pytest.raises(ZooError, match="does not fit this model.*other settings"):
        run(runs_dir, units=16)


def test_stale_temporary_files_of_dead_processes_are_removed(runs_dir, every_epoch):
    with pytest.raises(Killed):
        run(runs_dir, callbacks=[StopAt(2)])
    dead = 2 ** 22 + 12345  # above pid_max's default: no such process
    litter = [runs_dir / "r" / f".tmp-{dead}-metrics.json", runs_dir / "r" / "backup" / f".tmp-{dead}-epoch-3.weights.h5"]
    for p in litter:
        p.write_text("half")
    run(runs_dir)
    assert not any(p.exists() for p in litter)


def test_kill_while_removing_the_backup_leaves_a_finished_run(runs_dir, monkeypatch):
    """The backup is removed by renaming it away (atomic), then deleting its files."""
    from types import SimpleNamespace

    def killed(*args, **kwargs):
        raise Killed

    with monkeypatch.context() as m:
        m.setattr(training, "shutil", SimpleNamespace(rmtree=killed))  # killed while deleting the files
        with pytest.raises(Killed):
            run(runs_dir, epochs=2)
    run_dir = runs_dir / "r"
    (left,) = run_dir.glob(".tmp-*-backup")
    dead = run_dir / f".tmp-{2 ** 22 + 12345}-backup"  # as the next process sees it: its writer is gone
    left.rename(dead)
    with pytest.raises(ZooError, match="holds a finished run"):
        run(runs_dir, epochs=2)
    assert not dead.exists() and training.Run.load(run_dir).metrics["status"] == "completed"


# --- run files: damaged ones named in one line --------------------------------------


def test_history_row_cut_short_is_left_out(tmp_path):
    path = tmp_path / "history.csv"
    path.write_text("epoch,loss,val_loss\r\n0,1.0,1.1\r\n1,0.9,1.0\r\n2,0.8")
    assert training.read_history(path) == {"loss": [1.0, 0.9], "val_loss": [1.1, 1.0]}


@pytest.mark.parametrize("name", ["config.json", "metrics.json", "history.json"])
def test_damaged_run_json_is_named(runs_dir, name):
    finished = run(runs_dir, epochs=1)
    (finished.dir / name).write_text('{"status": "compl')
    with pytest.raises(ZooError, match=f"{name} is damaged"):
        training.Run.load(finished.dir)


def test_damaged_model_is_named(runs_dir):
    finished = run(runs_dir, epochs=1)
    path = finished.dir / "model.keras"
    path.write_bytes(path.read_bytes()[:107])
    with pytest.raises(ZooError, match=r"model.keras is damaged \(107 bytes"):
        training.Run.load(finished.dir)


def test_damaged_metrics_of_a_finished_run_is_not_overwritten(runs_dir):
    finished = run(runs_dir, epochs=1)
    (finished.dir / "metrics.json").write_text("")
    with pytest.raises(ZooError, match="metrics.json is damaged and the run may have finished"):
        run(runs_dir, epochs=1)


def test_atomic_write_keeps_the_old_file_when_interrupted(tmp_path):
    path = tmp_path / "a.json"
    files.write_json(path, {"v": 1})
    with pytest.raises(Killed), files.replacing(path) as tmp:
        tmp.write_text('{"v": 2')
        raise Killed
    assert json.loads(path.read_text()) == {"v": 1} and list(tmp_path.iterdir()) == [path]
    files.write_json(path, {"v": np.float32(2.5), "a": np.arange(2)})
    assert json.loads(path.read_text()) == {"v": 2.5, "a": [0, 1]}


# --- real kills: SIGKILL of `zoo train` at chosen points, then the same command ------

WRAPPER = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path

    point = os.environ["ZOO_TEST_KILL_AT"]
    import keras
    from zoo import callbacks, cli, files, plots, training

    callbacks.WRITE_BUDGET = 1.0  # back up every epoch
    def die():
        os.kill(os.getpid(), signal.SIGKILL)

    if point == "backup_weights":  # the third backup's weights, half written
        save_weights, calls = keras.Model.save_weights, []
        def torn(self, path, *a, **k):
            save_weights(self, path, *a, **k)
            calls.append(path)
            if len(calls) == 3:
                Path(path).write_bytes(Path(path).read_bytes()[:500])
                die()
        keras.Model.save_weights = torn
    elif point == "backup_metadata":  # the third backup's metadata, half written
        write_text, calls = files.write_text, []
        def torn(path, text):
            if Path(path).name == "training_metadata.json":
                calls.append(path)
                if len(calls) == 3:
                    with files.replacing(path) as tmp:
                        tmp.write_text(text[: len(text) // 2])
                        die()
            write_text(path, text)
        files.write_text = torn
    elif point == "after_fit":
        training.read_history = lambda *a, **k: die()
    elif point in ("model_write", "checkpoint_write"):  # model.keras, or the first checkpoint.keras
        save = keras.Model.save
        def torn(self, path, *a, **k):
            save(self, path, *a, **k)
            if Path(path).name.endswith(point.replace("_write", ".keras")):
                Path(path).write_bytes(Path(path).read_bytes()[:107])
                die()
        keras.Model.save = torn
    elif point == "metrics":  # model.keras written, metrics.json not
        write_json = training._write_json
        training._write_json = lambda path, data: die() if Path(path).name == "metrics.json" else write_json(path, data)
    elif point == "reports":
        plots.learning_curves = lambda *a, **k: die()
    sys.exit(cli.main(sys.argv[1:]))
""")


def zoo_train(runs_dir: Path, name: str, kill_at: str | None = None) -> subprocess.CompletedProcess:
    args = ["train", "mlp", "--dataset", "iris", "--epochs", "4", "--set", "units=8", "--set", "patience=2",
            "--runs-dir", str(runs_dir), "--run-name", name]
    env = {**os.environ, "ZOO_TEST_KILL_AT": kill_at or "none"}
    return subprocess.run([sys.executable, "-c", WRAPPER, *args], capture_output=True, text=True, env=env,
                          timeout=600)


def kill_and_rerun(runs_dir: Path, point: str) -> tuple[subprocess.CompletedProcess, subprocess.CompletedProcess]:
    killed = zoo_train(runs_dir, point, kill_at=point)
    assert killed.returncode == -9, killed.stderr[-2000:]
    run_dir = runs_dir / point
    assert [p.name for p in run_dir.glob("[!.]*.keras") if p.stat().st_size <= 107] == []  # none torn
    again = zoo_train(runs_dir, point)
    assert again.returncode == 0, again.stderr[-2000:]
    assert "Traceback" not in again.stderr
    return killed, again


def finished(run_dir: Path) -> dict:
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert metrics["status"] == "completed" and not (run_dir / "backup").exists()
    assert history_epochs(run_dir) == list(range(metrics["epochs_run"]))
    assert not list(run_dir.glob(".tmp-*"))
    training.Run.load(run_dir)  # whole files, a model that loads
    return metrics


def test_sigkill_between_model_and_metrics(runs_dir):
    """(The in-process test above checks that the finished run equals an uninterrupted one.)"""
    _, again = kill_and_rerun(runs_dir, "metrics")
    assert "training had finished" in again.stderr
    finished(runs_dir / "metrics")


@pytest.mark.slow
@pytest.mark.parametrize("point", ["checkpoint_write", "after_fit", "model_write", "reports"])
def test_sigkill_while_writing_results(runs_dir, point):
    _, again = kill_and_rerun(runs_dir, point)
    if point != "checkpoint_write":  # killed in the first epoch, before any backup: trained again
        assert "training had finished" in again.stderr
    finished(runs_dir / point)


@pytest.mark.slow
@pytest.mark.parametrize("point", ["backup_weights", "backup_metadata"])
def test_sigkill_during_the_backup_write(runs_dir, point):
    killed, again = kill_and_rerun(runs_dir, point)
    backup = runs_dir / point / "backup"
    assert "resuming after epoch 2" in again.stderr  # the third backup was cut short: the second is whole
    metrics = finished(runs_dir / point)
    assert metrics["epochs_run"] >= 3 and not backup.exists()
