"""The run's own callbacks: epoch-end writes (best-model checkpoint, backup for
resuming) that a kill at any moment leaves whole, kept to a small, fixed share of
the training time, and a CSV history that keeps each epoch once."""

from __future__ import annotations

import json
import sys
import time
import zipfile
from pathlib import Path

import keras
import numpy as np

from zoo import files
from zoo.errors import ZooError

#: what reading a damaged backup file raises (h5py: OSError; a torn .npz: BadZipFile, EOFError)
DAMAGE = (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile)

#: the largest share of training time that epoch-end writes may take
WRITE_BUDGET = 0.01


class _Budgeted:
    """An epoch-end write is skipped until the training time since the last write is
    at least its duration / WRITE_BUDGET. So writing costs about 1% of the training
    time however short the epochs are, and an interruption loses at most one epoch or
    100 write-durations of training, whichever is longer. With epochs of a few seconds
    (most real runs) every epoch is still written; with epochs of a tenth of a second
    a write of 50 ms happens every few seconds instead of doubling the training time."""

    #: write the last planned epoch even when it comes too soon after the previous write
    write_last_epoch = False

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._next_write = 0.0

    def on_epoch_end(self, epoch, logs=None):
        last = epoch + 1 >= int(self.params.get("epochs") or 0)
        if time.perf_counter() < self._next_write and not (last and self.write_last_epoch):
            return
        start = time.perf_counter()
        super().on_epoch_end(epoch, logs)
        end = time.perf_counter()
        self._next_write = end + (end - start) * (1 / WRITE_BUDGET - 1)


class AtomicBackup(keras.callbacks.BackupAndRestore):
    """BackupAndRestore that a kill at any moment leaves resumable, and that keeps the
    backup after `fit` (train() removes it once the run's results are written).

    Each backup writes the weights (with the optimizer's state) to a new file named
    by its epoch, then training_metadata.json, written atomically, names it and the
    backup before it: that rename is the commit, so a kill earlier leaves the previous
    backup whole. The state of early stopping (best figure, patience count, best
    weights), the checkpoint's best figure and the training time so far are backed
    up too, so a resumed run ends as the uninterrupted run would. At the end of `fit`
    the final weights (the best epoch's, when early stopping restored them) are
    backed up as the state after the last planned epoch: a run killed while it writes
    its results resumes with no epoch to train. A resume that meets a damaged backup
    falls back to the previous one, else starts from the first epoch, saying so in
    one line."""

    #: the EarlyStopping and ModelCheckpoint of the same fit, whose state is backed up
    early_stopping: keras.callbacks.EarlyStopping | None = None
    checkpoint: keras.callbacks.ModelCheckpoint | None = None

    def __init__(self, backup_dir: str):
        super().__init__(backup_dir, delete_checkpoint=False)
        self._state: dict = {}

    def on_train_begin(self, logs=None):
        self._state = {}
        metadata = Path(self._training_metadata_path)
        if metadata.exists():
            self._resume(metadata)
        elif any(Path(self.backup_dir).glob("*.h5")):
            _say(f"the backup in {self.backup_dir} has weights but no {metadata.name} (cut short by a kill); "
                 "starting from epoch 1")
        self._remove_unused()
        self._started = time.perf_counter() - float(self._state.get("train_seconds", 0.0))

    def _resume(self, metadata: Path) -> None:
        try:
            record = json.loads(metadata.read_text())
            states = [record, *([record["previous"]] if record.get("previous") else [])]
            epochs = [int(state["epoch"]) for state in states]
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            _say(f"{metadata} is damaged ({type(exc).__name__}: {_short(exc)}); starting from epoch 1")
            return
        for i, (state, epoch) in enumerate(zip(states, epochs)):
            try:
                self._restore(state)
            except DAMAGE as exc:
                fallback = (f"resuming after epoch {epochs[i + 1]} from the backup before it" if i + 1 < len(states)
                            else "starting from epoch 1")
                _say(f"the backup in {self.backup_dir} is damaged ({type(exc).__name__}: {_short(exc)}); "
                     f"{fallback}")
                continue
            self._state = {k: v for k, v in state.items() if k != "previous"}
            if i:  # name the good backup only, so that a kill now does not meet the damaged one again
                files.write_json(metadata, {**self._state, "previous": None})
                return
            planned = int(self.params.get("epochs") or 0)
            _say(f"training had finished; writing the results of the run in {Path(self.backup_dir).parent}"
                 if planned and epoch >= planned else f"resuming after epoch {epoch} (backup in {self.backup_dir})")
            return

    def _restore(self, state: dict) -> None:
        """Weights, optimizer state and epoch (as Keras's own _load_model), and the
        state of early stopping and the checkpoint."""
        folder = Path(self.backup_dir)
        stopping = state.get("early_stopping") or {}
        best_weights = None
        if self.early_stopping is not None and stopping.get("weights"):
            with np.load(folder / stopping["weights"]) as f:
                best_weights = [f[f"arr_{i}"] for i in range(len(f.files))]
        if self.model.optimizer is not None and not self.model.optimizer.built:
            self.model.optimizer.build(self.model.trainable_variables)
        path = folder / state.get("weights", "latest.weights.h5")  # Keras's own name: a backup of an older zoo
        if not path.is_file():
            raise FileNotFoundError(f"{path.name} is missing")
        try:
            self.model.load_weights(path)
        except ValueError as exc:  # a whole file that does not fit: another model
            raise ZooError(f"the backup in {self.backup_dir} does not fit this model ({_short(exc)}); was the "
                           "run started with other settings? Re-run with those, or choose another --run-name") from None
        self.model._initial_epoch = int(state["epoch"])
        if self.early_stopping is not None and stopping:
            es = self.early_stopping
            es.wait, es.best, es.best_epoch = int(stopping["wait"]), stopping["best"], int(stopping["best_epoch"])
            es.best_weights = best_weights
        if self.checkpoint is not None and state.get("checkpoint_best") is not None:
            self.checkpoint.best = state["checkpoint_best"]

    def _save_model(self):
        self._commit(self._current_epoch, f"epoch-{self._current_epoch}.weights.h5")

    def on_train_end(self, logs=None):
        # after early stopping restored the best weights: the run's final state
        if self._state.get("weights") != "final.weights.h5":  # else resumed after the end: nothing new
            self._commit(int(self.params.get("epochs") or self._current_epoch), "final.weights.h5")

    def _commit(self, epoch: int, name: str) -> None:
        folder = Path(self.backup_dir)
        folder.mkdir(parents=True, exist_ok=True)
        with files.replacing(folder / name) as tmp:
            self.model.save_weights(tmp)
        state = {"epoch": epoch, "batch": self._last_batch_seen, "weights": name,
                 "train_seconds": round(time.perf_counter() - self._started, 3)}  # of the epochs kept, all processes
        es = self.early_stopping
        if es is not None and es.best is not None:
            state["early_stopping"] = {"wait": es.wait, "best": float(es.best), "best_epoch": es.best_epoch,
                                       "weights": self._save_best_weights(es)}
        if self.checkpoint is not None and self.checkpoint.best is not None:
            state["checkpoint_best"] = float(self.checkpoint.best)
        files.write_json(self._training_metadata_path, {**state, "previous": self._state or None})
        self._state = state
        self._remove_unused()

    def _save_best_weights(self, es: keras.callbacks.EarlyStopping) -> str | None:
        """Early stopping's best weights, written once per best epoch."""
        if es.best_weights is None:
            return None
        name = f"best-epoch-{es.best_epoch + 1}.npz"
        kept = self._state.get("early_stopping") or {}
        if kept.get("weights") != name or not (Path(self.backup_dir) / name).exists():
            with files.replacing(Path(self.backup_dir) / name) as tmp:
                np.savez(tmp, *es.best_weights)
        return name

    def _remove_unused(self) -> None:
        """Weight files that no backup names (superseded, or cut short by a kill)."""
        folder = Path(self.backup_dir)
        if not folder.is_dir():
            return
        files.remove_stale(folder)
        previous = (_read_json(Path(self._training_metadata_path)) or {}).get("previous") or {}
        used = {s.get("weights") for s in (self._state, previous)}
        used |= {(s.get("early_stopping") or {}).get("weights") for s in (self._state, previous)}
        for p in folder.iterdir():
            if p.suffix in (".h5", ".npz") and p.name not in used and not p.name.startswith("."):
                p.unlink(missing_ok=True)


def _read_json(path: Path) -> dict | None:
    """A JSON object from a file, or None when it is missing or damaged."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _short(exc: BaseException) -> str:
    """An exception's message on one line, cut to a readable length."""
    text = " ".join(str(exc).split())
    return text if len(text) <= 160 else text[:157] + "..."


def _say(message: str) -> None:
    print(f"zoo: {message}", file=sys.stderr)


class AtomicCheckpoint(keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint whose file a kill while it writes leaves whole (the previous
    best model): Keras writes to a temporary name, renamed over the file after."""

    _writing: str | None = None

    def _save_model(self, epoch, batch, logs):
        with files.replacing(super()._get_file_path(epoch, batch, logs)) as tmp:
            self._writing = str(tmp)
            try:
                super()._save_model(epoch, batch, logs)
            finally:
                self._writing = None

    def _get_file_path(self, epoch, batch, logs):
        return self._writing or super()._get_file_path(epoch, batch, logs)


class HistoryLogger(keras.callbacks.CSVLogger):
    """CSVLogger appending to the run's history.csv that keeps each epoch once: a
    resumed run first drops the rows of the epochs it is about to repeat (those
    trained after the backup it resumed from)."""

    def __init__(self, filename: str):
        super().__init__(filename, append=True)
        self._first_epoch = True

    def on_train_begin(self, logs=None):
        super().on_train_begin(logs)
        self._first_epoch = True

    def on_epoch_begin(self, epoch, logs=None):
        if self._first_epoch:
            self._first_epoch = False
            self._drop_epochs_from(epoch)

    def _drop_epochs_from(self, epoch: int) -> None:
        from zoo.training import history_rows

        path = Path(self.filename)
        fields, rows, lines = history_rows(path)
        kept = [row for e, row in sorted(rows.items()) if e < epoch]
        if len(kept) == lines:
            return
        import csv
        import io

        text = io.StringIO()
        writer = csv.DictWriter(text, fieldnames=fields, delimiter=self.sep)
        writer.writeheader()
        writer.writerows(kept)
        self.csv_file.close()
        files.write_text(path, text.getvalue())
        self.csv_file = open(path, "a")  # noqa: SIM115 (CSVLogger closes it at the end of training)
        self.append_header = False


class BudgetedBackup(_Budgeted, AtomicBackup):
    """AtomicBackup (resume after an interruption) within the write budget: a skipped
    epoch leaves the previous backup, from which a resumed run repeats the epochs
    since (the CSV history keeps each epoch once)."""


class BudgetedCheckpoint(_Budgeted, AtomicCheckpoint):
    """AtomicCheckpoint (the best model so far) within the write budget, always
    writing at the last planned epoch: the file holds the best of the epochs written."""

    write_last_epoch = True


# --- callback plugins (zoo train --callback NAME[:key=value,...]) --------------------------------


def from_plugins(specs) -> list:
    """Keras callbacks from `zoo.callbacks` plugins: "NAME" or "NAME:key=value,key=value"
    (values parsed as JSON when they can be: numbers, true/false). A plugin is a
    Keras callback class or a function returning a callback."""
    from zoo import registry

    out = []
    for spec in specs:
        name, _, rest = str(spec).partition(":")
        if "=" in name:  # a qualified DIST:NAME with options: keras-zoo:reduce-lr-on-plateau:patience=2
            name, rest = "", spec
        options = {}
        for pair in filter(None, rest.split(",")):
            key, eq, value = pair.partition("=")
            if not eq:
                raise ZooError(f"--callback {spec!r}: options are key=value, separated by commas")
            try:
                options[key.strip()] = json.loads(value)
            except ValueError:
                options[key.strip()] = value
        factory = registry.callbacks.get(name)
        try:
            callback = factory(**options)
        except TypeError as exc:
            raise ZooError(f"callback {name!r} does not take these options: {exc}") from None
        if not isinstance(callback, keras.callbacks.Callback):
            raise ZooError(f"callback plugin {name!r} gave a {type(callback).__name__}, not a keras.callbacks.Callback")
        out.append(callback)
    return out


# --- built-in callback plugins ------------------------------------------------------------------


def reduce_lr_on_plateau(monitor: str = "val_loss", factor: float = 0.5, patience: int = 3, min_lr: float = 1e-6):
    """Keras's ReduceLROnPlateau: halve the learning rate when `monitor` stops improving."""
    return keras.callbacks.ReduceLROnPlateau(monitor=monitor, factor=float(factor), patience=int(patience),
                                             min_lr=float(min_lr), verbose=1)
