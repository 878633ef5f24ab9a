"""Epoch-end writes (best-model checkpoint, backup for resuming) kept to a small,
fixed share of the training time."""

from __future__ import annotations

import time

import keras

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


class BudgetedBackup(_Budgeted, keras.callbacks.BackupAndRestore):
    """BackupAndRestore (resume after an interruption) within the write budget: a
    skipped epoch leaves the previous backup, from which a resumed run repeats the
    epochs since (the CSV history keeps the repeated epoch's last row)."""


class BudgetedCheckpoint(_Budgeted, keras.callbacks.ModelCheckpoint):
    """ModelCheckpoint (the best model so far) within the write budget, always
    writing at the last planned epoch: the file holds the best of the epochs written."""

    write_last_epoch = True
