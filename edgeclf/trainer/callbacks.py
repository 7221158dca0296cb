"""The trainer's Keras callbacks. Importing this module imports Keras: the trainer imports it lazily."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import keras

from edgeclf.runtime.fileio import atomic_path, atomic_write_text
from edgeclf.trainer.history import HISTORY_NAME, best_index


class TestAccuracy(keras.callbacks.Callback):
    """Evaluate the test split after every epoch (the seed's first plot): adds test_loss/test_accuracy."""

    __test__ = False  # not a pytest test class, despite its name

    def __init__(self, dataset: Any) -> None:
        super().__init__()
        self.dataset = dataset

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        result = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
        if logs is not None:
            logs["test_loss"] = float(result["loss"])
            logs["test_accuracy"] = float(result["accuracy"])


class EpochTimer(keras.callbacks.Callback):
    """Adds ``seconds`` (wall time of the epoch) to each epoch's logs."""

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._start = time.perf_counter()

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if logs is not None:
            logs["seconds"] = round(time.perf_counter() - self._start, 3)


class BestEpoch(keras.callbacks.Callback):
    """Early stopping on val_accuracy (ties broken by lower val_loss) with the best weights restored.

    Unlike ``keras.callbacks.EarlyStopping`` its state (history, best epoch, patience counter,
    best weights) is written to ``checkpoints/`` after every epoch, so ``--resume`` continues
    with the same decision as an uninterrupted run.
    """

    def __init__(self, patience: int, state_dir: Path, history: list[dict]) -> None:
        super().__init__()
        self.patience = patience
        self.state_dir = state_dir
        self.history = history  # shared with the caller; one dict per finished epoch
        self.best_weights: list | None = None
        self.stopped = False

    @property
    def best_index(self) -> int | None:
        """Index in ``history`` of the best epoch so far (None before the first validated epoch)."""
        return best_index(self.history)

    def on_train_begin(self, logs: dict | None = None) -> None:
        weights_file = self.state_dir / "best.weights.h5"
        if self.history and self.best_weights is None and weights_file.exists():
            # Resume: load the best weights of the interrupted run into memory, then put the
            # restored latest weights back.
            optimizer = self.model.optimizer
            if optimizer is not None and not optimizer.built:  # else keras warns it skips its state
                optimizer.build(self.model.trainable_variables)
            latest = self.model.get_weights()
            self.model.load_weights(weights_file)
            self.best_weights = self.model.get_weights()
            self.model.set_weights(latest)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        row = {"epoch": epoch + 1, **{k: float(v) for k, v in (logs or {}).items()}}
        self.history.append(row)
        best = self.best_index
        if best == len(self.history) - 1:
            self.best_weights = self.model.get_weights()
            self.state_dir.mkdir(parents=True, exist_ok=True)
            with atomic_path(self.state_dir / "best.weights.h5", keep_suffix=True) as tmp:
                self.model.save_weights(tmp, overwrite=True)
        atomic_write_text(self.state_dir / HISTORY_NAME, json.dumps(self.history, indent=1))
        if best is not None and len(self.history) - 1 - best >= self.patience:
            self.stopped = True
            self.model.stop_training = True

    def on_train_end(self, logs: dict | None = None) -> None:
        if self.best_weights is not None:
            self.model.set_weights(self.best_weights)
