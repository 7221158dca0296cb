"""Train a preset on a labelled folder of photos and write a run folder.

A run folder (``runs/<preset>-<YYYYmmdd-HHMMSS>`` by default) holds::

    model.keras          the best weights (early stopping on validation accuracy restores them)
    labels.txt           one label per line, in output order
    train_config.json    the resolved TrainConfig (written first; ``--resume`` reads it back)
    history.json/.csv    per-epoch loss/accuracy (+ validation, + test when a test split exists)
    accuracy.png, loss.png, test_accuracy.png
    report.json          skipped/corrupt files, ignored files, class counts and imbalance
    checkpoints/         per-epoch backup (keras BackupAndRestore) and the best weights so far
    manifest.json        written LAST: a folder without it is not a finished run

Pipeline: every image is decoded exactly once, through :func:`edge_runtime.dataset.load_samples`
(the one preprocessing path the runtime also uses), and held in memory as uint8; tf.data then
shuffles, augments on the fly (the preset's augmentation layer), batches and prefetches. Decoding
is the expensive part of a small-data epoch, so skipping it after the first pass is what makes the
pipeline faster than an ``ImageDataGenerator`` loop (see ``research/training_throughput.py``).
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import json
import math
import os
import shutil
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.dataset import DEFAULT_FRACTIONS, LabelledFolder, LoadedImages, load_samples, open_labelled_folder
from edge_runtime.errors import DatasetError, EdgeclfError
from edge_runtime.fileio import atomic_path, atomic_write_text
from edge_runtime.manifest import MANIFEST_NAME, MAX_INPUT_SIDE, MODEL_NAME, RESIZE_MODES, InputSpec, Manifest
from edge_runtime.runlock import LOCK_NAME, run_lock
from kerasio import import_tensorflow, save_model
from trainer import transfer
from trainer.class_weight import check_mode as check_class_weight_mode
from trainer.class_weight import class_weights

CONFIG_NAME = "train_config.json"
REPORT_NAME = "report.json"
HISTORY_NAME = "history.json"
CHECKPOINTS = "checkpoints"
LATEST = "latest"
STRATEGIES = ("default", "mirrored", "multi-worker")
# A split whose largest class is this many times its smallest is reported as imbalanced.
IMBALANCE_RATIO = 1.5


@dataclass(frozen=True)
class TrainConfig:
    """Everything one training run depends on; saved as ``train_config.json`` and in the manifest.

    ``None`` for ``epochs``, ``batch_size``, ``image_size``, ``learning_rate`` and ``patience``
    means "the preset's default"; :meth:`resolved` fills them in.
    """

    data: str | None
    preset: str = "default"
    out: str | None = None  # default: <runs_dir>/<preset>-<YYYYmmdd-HHMMSS>
    runs_dir: str = "runs"
    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None  # early stopping: epochs without a better val_accuracy
    weights: str | None = None  # None = the preset's default; "none", "imagenet" or a path (presets that support it)
    seed: int = 0
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS  # only for a plain folder of classes
    augment: bool = True
    strategy: str = "default"  # default | mirrored | multi-worker
    resume: bool = False
    workers: int = 4  # decoding threads
    fine_tune: bool = False  # pretrained presets: after the head, train the last blocks (BatchNorm frozen)
    verbose: int = 1  # 0 silent, 1 progress bar, 2 one line per epoch
    class_weight: str = "none"  # "auto": weigh each class by its inverse frequency (trainer/class_weight.py)
    resize: str | None = None  # squash | crop | letterbox; None = the preset's default

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EdgeclfError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        check_class_weight_mode(self.class_weight)
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise EdgeclfError(f"unknown resize mode {self.resize!r}; known: {', '.join(RESIZE_MODES)}")
        for name in ("epochs", "batch_size", "image_size", "patience"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "patience" else 1):
                raise EdgeclfError(f"--{name.replace('_', '-')} must be a positive number, got {value}")
        if self.image_size is not None and self.image_size > MAX_INPUT_SIDE:
            raise EdgeclfError(
                f"--image-size {self.image_size} is above {MAX_INPUT_SIDE}: one image alone would take "
                f"{3 * self.image_size**2 / 1e6:,.0f} MB decoded; the presets use 150-300"
            )
        if self.learning_rate is not None and not self.learning_rate > 0:
            raise EdgeclfError(f"--learning-rate must be positive, got {self.learning_rate}")

    def resolved(self, preset: Any) -> TrainConfig:
        """A copy with every ``None`` hyper-parameter replaced by the preset's default."""
        return dataclasses.replace(
            self,
            epochs=self.epochs if self.epochs is not None else preset.epochs,
            batch_size=self.batch_size if self.batch_size is not None else preset.batch_size,
            image_size=self.image_size if self.image_size is not None else preset.image_size,
            learning_rate=self.learning_rate if self.learning_rate is not None else preset.learning_rate,
            patience=self.patience if self.patience is not None else preset.patience,
            weights=self.weights if self.weights is not None else getattr(preset, "default_weights", None),
            resize=self.resize if self.resize is not None else getattr(preset, "resize", "squash"),
            fractions=tuple(float(f) for f in self.fractions),
        )

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`from_dict` reads it back)."""
        data = dataclasses.asdict(self)
        data["fractions"] = list(self.fractions)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by :meth:`to_dict`, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "fractions" in values:
            values["fractions"] = tuple(values["fractions"])
        return cls(**values)


@dataclass
class _Log:
    """Where progress lines go (stdout unless silent)."""

    verbose: int = 1
    lines: list[str] = field(default_factory=list)

    def __call__(self, message: str) -> None:
        self.lines.append(message)
        if self.verbose:
            print(message, flush=True)


def _import_tf() -> tuple[Any, Any]:
    return import_tensorflow()


# -- run folder ------------------------------------------------------------------------------------


def _new_run_dir(config: TrainConfig) -> Path:
    if config.out:
        return Path(config.out)
    stamp = datetime.now().strftime("%Y%m%d-%H%M%S")
    base = Path(config.runs_dir) / f"{config.preset}-{stamp}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _is_finished(run_dir: Path) -> bool:
    return (run_dir / MANIFEST_NAME).exists()


def _find_unfinished_run(config: TrainConfig) -> Path:
    runs = Path(config.runs_dir)
    candidates = [
        p
        for p in (runs.iterdir() if runs.is_dir() else ())
        if p.is_dir() and not p.is_symlink() and (p / CONFIG_NAME).exists() and not _is_finished(p)
    ]
    if not candidates:
        raise EdgeclfError(f"--resume: no unfinished run in {runs}/; pass --out RUNDIR of the run to continue")
    return max(candidates, key=lambda p: (p / CONFIG_NAME).stat().st_mtime)


def _prepare_resume(config: TrainConfig) -> tuple[TrainConfig, Path]:
    """Return the saved config of the run to continue (with this call's epochs/strategy/verbosity)."""
    run_dir = Path(config.out) if config.out else _find_unfinished_run(config)
    saved_file = run_dir / CONFIG_NAME
    if _is_finished(run_dir):
        raise EdgeclfError(f"--resume: {run_dir} is already a finished run (it has {MANIFEST_NAME}); start a new run")
    if not saved_file.exists():
        raise EdgeclfError(f"--resume: {run_dir} has no {CONFIG_NAME}; it is not a run started by `edgeclf train`")
    try:
        saved = TrainConfig.from_dict(json.loads(saved_file.read_text(encoding="utf-8")))
    except (OSError, ValueError, TypeError) as error:
        raise EdgeclfError(f"--resume: {saved_file} is unreadable ({error}); start a new run") from None
    if not _has_trained_epoch(run_dir):
        # Nothing was trained yet (e.g. it failed on a bad --weights path): start it again, with
        # this call's corrected flags taking precedence over the saved ones.
        given = {
            name: getattr(config, name)
            for name in ("data", "epochs", "batch_size", "image_size", "learning_rate", "patience", "weights")
            if getattr(config, name) is not None
        }
        _discard_untrained(run_dir, remove_folder=False)
        restarted = dataclasses.replace(
            saved, **given, out=str(run_dir), resume=False, verbose=config.verbose, workers=config.workers
        )
        return restarted, run_dir
    if config.data and saved.data and Path(config.data).resolve() != Path(saved.data).resolve():
        raise EdgeclfError(f"--resume: {run_dir} was trained on {saved.data}, not {config.data}; drop --data or fix it")
    if config.preset != saved.preset and config.preset != TrainConfig.__dataclass_fields__["preset"].default:
        raise EdgeclfError(f"--resume: {run_dir} uses preset {saved.preset!r}, not {config.preset!r}")
    merged = dataclasses.replace(
        saved,
        out=str(run_dir),
        resume=True,
        epochs=config.epochs if config.epochs is not None else saved.epochs,
        strategy=config.strategy,
        verbose=config.verbose,
        workers=config.workers,
    )
    return merged, run_dir


def _update_latest(run_dir: Path, runs_dir: Path, log: _Log) -> None:
    """Point ``runs_dir/latest`` at ``run_dir`` (atomically) when the run lives in ``runs_dir``."""
    if run_dir.resolve().parent != runs_dir.resolve():
        return
    link = runs_dir / LATEST
    tmp = runs_dir / f".{LATEST}.{os.getpid()}.tmp"
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    try:
        os.symlink(run_dir.name, tmp)
        os.replace(tmp, link)
    except OSError as error:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        log(f"warning: could not update {link} ({error})")


# -- data ------------------------------------------------------------------------------------------


def _load_splits(folder: LabelledFolder, spec: InputSpec, workers: int, log: _Log) -> dict[str, LoadedImages]:
    loaded: dict[str, LoadedImages] = {}
    for name in ("train", "validation", "test"):
        samples = folder.split(name)
        if not samples:
            continue
        start = time.perf_counter()
        loaded[name] = load_samples(samples, spec, workers=workers)
        log(
            f"decoded {name}: {len(loaded[name].labels)} images in {time.perf_counter() - start:.1f}s"
            + (f", {len(loaded[name].failed)} skipped" if loaded[name].failed else "")
        )
    for name in ("train", "validation"):
        present = set(loaded[name].labels.tolist()) if name in loaded else set()
        missing = [label for i, label in enumerate(folder.labels) if i not in present]
        if missing:
            skipped = len(loaded[name].failed) if name in loaded else 0
            hint = "see the skipped files above and add images" if skipped else "add images"
            raise DatasetError(f"{folder.root}: no readable {name} images for class(es) {missing}; {hint}")
    return loaded


def _check_memory(folder: LabelledFolder, spec: InputSpec) -> None:
    """Refuse up front a data set whose decoded images would not fit in half the machine's RAM.

    Every image is decoded once and held as uint8 (see the module docstring); past RAM the OOM
    killer ends the run without a word, after minutes of decoding.
    """
    count = sum(len(samples) for samples in folder.splits.values())
    needed = count * spec.height * spec.width * spec.channels
    try:
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not POSIX
        return
    if needed > total // 2:
        raise EdgeclfError(
            f"{count} images at {spec.width}x{spec.height} need {needed / 1e9:.1f} GB decoded, more than half of "
            f"this machine's {total / 1e9:.1f} GB of RAM; use a smaller --image-size or fewer images"
        )


def _report(folder: LabelledFolder, loaded: dict[str, LoadedImages]) -> dict[str, Any]:
    """Skipped files, ignored files and class balance, as written to ``report.json``."""
    skipped = [
        {"split": name, "path": err.path, "reason": err.reason} for name, part in loaded.items() for err in part.failed
    ]
    balance: dict[str, Any] = {}
    for name, part in loaded.items():
        counts = {label: int(np.sum(part.labels == i)) for i, label in enumerate(folder.labels)}
        low, high = min(counts.values()), max(counts.values())
        ratio = math.inf if low == 0 else high / low
        balance[name] = {
            "counts": counts,
            "ratio": None if math.isinf(ratio) else round(ratio, 3),
            "imbalanced": ratio >= IMBALANCE_RATIO,
        }
    return {
        "skipped": {"count": len(skipped), "files": skipped},
        "ignored": {"count": len(folder.ignored), "files": [str(p) for p in folder.ignored]},
        "class_balance": balance,
    }


def _log_report(report: dict[str, Any], log: _Log) -> None:
    skipped = report["skipped"]
    if skipped["count"]:
        log(f"skipped {skipped['count']} unreadable file(s):")
        for item in skipped["files"]:
            log(f"  {item['path']}: {item['reason']}")
    if report["ignored"]["count"]:
        log(f"ignored {report['ignored']['count']} non-image file(s) (see report.json)")
    for name, info in report["class_balance"].items():
        counts = ", ".join(f"{k}={v}" for k, v in info["counts"].items())
        note = f"  IMBALANCED (largest/smallest = {info['ratio']})" if info["imbalanced"] else ""
        log(f"{name}: {counts}{note}")


def training_targets(labels: np.ndarray, num_classes: int) -> np.ndarray:
    """What ``fit`` takes for ``labels``: float ``(N, 1)`` for two classes (one sigmoid unit, binary
    cross-entropy), the int64 class ids otherwise."""
    if num_classes == 2:
        return labels.astype(np.float32).reshape(-1, 1)
    return labels.astype(np.int64)


_targets = training_targets  # the short name the training steps below use


def make_dataset(
    tf: Any,
    images: np.ndarray,
    targets: np.ndarray,
    *,
    batch_size: int,
    shuffle_seed: int | None = None,
    augmentation: Callable[..., Any] | None = None,
) -> Any:
    """The training/evaluation tf.data pipeline over already-decoded uint8 images.

    The decoded arrays are the cache (decoded once, before the first epoch); each epoch reshuffles
    (``shuffle_seed`` not None), augments batches on the fly, and prefetches the next batch while
    the model trains on the current one. Augmented batches are rounded back to uint8, the model's
    input dtype, so training sees exactly what the deployed model will be given.
    """
    dataset = tf.data.Dataset.from_tensor_slices((images, targets))
    if shuffle_seed is not None:
        dataset = dataset.shuffle(len(images), seed=shuffle_seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)
    if augmentation is not None:

        def _augment(x: Any, y: Any) -> tuple[Any, Any]:
            x = augmentation(tf.cast(x, tf.float32), training=True)
            return tf.cast(tf.clip_by_value(tf.round(x), 0.0, 255.0), tf.uint8), y

        dataset = dataset.map(_augment, num_parallel_calls=tf.data.AUTOTUNE)
    return dataset.prefetch(tf.data.AUTOTUNE)


# -- distribution ----------------------------------------------------------------------------------


# Keras 3's Model.fit cannot run under tf.distribute.MultiWorkerMirroredStrategy: it fails with
# "Attempt to convert a value (PerReplica...) ... to a Tensor" (keras-team/keras#20585,
# tensorflow/tensorflow#72388; reproduced here with two local workers, TF 2.21 / Keras 3.15).
MULTI_WORKER_UNSUPPORTED = (
    "--strategy multi-worker does not work with Keras 3's fit yet (keras-team/keras#20585); "
    "train on one machine (--strategy mirrored uses all its GPUs)"
)


def _strategy(tf: Any, name: str) -> Any:
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi-worker":
        raise EdgeclfError(MULTI_WORKER_UNSUPPORTED)
    return tf.distribute.get_strategy()


# -- callbacks -------------------------------------------------------------------------------------


def _callbacks(keras: Any) -> dict[str, type]:
    """Callback classes (defined here so keras is imported lazily)."""

    class TestAccuracy(keras.callbacks.Callback):
        """Evaluate the test split after every epoch (the seed's first plot): adds test_loss/test_accuracy."""

        def __init__(self, dataset: Any) -> None:
            super().__init__()
            self.dataset = dataset

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            result = self.model.evaluate(self.dataset, verbose=0, return_dict=True)
            if logs is not None:
                logs["test_loss"] = float(result["loss"])
                logs["test_accuracy"] = float(result["accuracy"])

    class EpochTimer(keras.callbacks.Callback):
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
            return _best_index(self.history)

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

    return {"TestAccuracy": TestAccuracy, "EpochTimer": EpochTimer, "BestEpoch": BestEpoch}


def _best_index(history: Sequence[dict]) -> int | None:
    """Index of the best epoch: highest val_accuracy, then lowest val_loss, then earliest."""
    best: int | None = None
    for i, row in enumerate(history):
        if "val_accuracy" not in row:
            continue
        if best is None:
            best = i
            continue
        b = history[best]
        if row["val_accuracy"] > b["val_accuracy"] or (
            row["val_accuracy"] == b["val_accuracy"] and row.get("val_loss", math.inf) < b.get("val_loss", math.inf)
        ):
            best = i
    return best


# -- outputs ---------------------------------------------------------------------------------------


def _write_history(run_dir: Path, history: list[dict]) -> None:
    atomic_write_text(run_dir / HISTORY_NAME, json.dumps(history, indent=1) + "\n")
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())


def write_plots(run_dir: Path, history: Sequence[dict], best_epoch: int | None) -> list[Path]:
    """accuracy.png, loss.png and (with a test split) test_accuracy.png; returns the written files."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    epochs = [row["epoch"] for row in history]
    plots = [
        (
            "accuracy.png",
            "Accuracy",
            [("accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test")],
        ),
        ("loss.png", "Loss", [("loss", "train"), ("val_loss", "validation"), ("test_loss", "test")]),
        ("test_accuracy.png", "Test accuracy after each epoch", [("test_accuracy", "test")]),
    ]
    written: list[Path] = []
    for name, title, series in plots:
        present = [(key, label) for key, label in series if any(key in row for row in history)]
        if not present or (name == "test_accuracy.png" and not any("test_accuracy" in row for row in history)):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for key, label in present:
            ax.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        target = run_dir / name
        try:
            with atomic_path(target, keep_suffix=True) as tmp:
                fig.savefig(tmp)
        finally:
            plt.close(fig)
        written.append(target)
    return written


def _recipe(preset: Any) -> dict[str, Any]:
    """The preset's full recipe for the manifest (presets without ``to_dict`` record only the name)."""
    to_dict = getattr(preset, "to_dict", None)
    return to_dict() if callable(to_dict) else {"name": preset.name}


def _save_model(model: Any, run_dir: Path) -> Path:
    """Save ``model.keras`` atomically."""
    return save_model(model, run_dir / MODEL_NAME)


# -- pretrained presets ----------------------------------------------------------------------------


def _cached_feature_fit(
    tf: Any, model: Any, loaded: dict[str, LoadedImages], num_classes: int, preset: Any, config: TrainConfig, log: _Log
) -> tuple[transfer.CachedFeatures, tuple[Any, Any, Any]]:
    """Features of every split through the frozen backbone, and the head's datasets over them."""
    flip = bool(preset.feature_flip and config.augment)
    cached = transfer.compute_features(
        model,
        {name: part.images for name, part in loaded.items() if len(part.labels)},
        {name: _targets(part.labels, num_classes) for name, part in loaded.items() if len(part.labels)},
        flip=flip,
    )
    for name, seconds in cached.seconds.items():
        log(
            f"backbone features of {name}: {len(cached.targets[name])} in {seconds:.1f}s"
            + (" (with mirrored copies)" if flip and name == "train" else "")
        )
    batch = int(config.batch_size)  # type: ignore[arg-type]
    datasets = tuple(
        None
        if name not in cached.features
        else make_dataset(
            tf,
            cached.features[name],
            cached.targets[name],
            batch_size=batch,
            shuffle_seed=config.seed if name == "train" else None,
        )
        for name in ("train", "validation", "test")
    )
    return cached, datasets  # type: ignore[return-value]


def _fine_tune(
    keras: Any,
    strategy: Any,
    model: Any,
    preset: Any,
    num_classes: int,
    datasets: tuple[Any, Any, Any],
    history: list[dict],
    checkpoints: Path,
    log: _Log,
) -> None:
    """Train the last blocks on the (augmented) images; keep the fine-tuned weights only if validation improves.

    Not resumable on its own: an interrupted run redoes this phase after the head (its state lives
    in ``checkpoints/fine-tune`` so the head's resume state stays valid).
    """
    trainable = transfer.unfreeze_last_blocks(model, preset.fine_tune_blocks)
    log(f"fine-tuning {len(trainable)} layers at learning rate {preset.fine_tune_learning_rate:g}, BatchNorm frozen")
    with strategy.scope():
        preset.compile(model, num_classes, learning_rate=preset.fine_tune_learning_rate)
    classes = _callbacks(keras)
    # Patience counts from the best epoch, usually a head epoch long past: allow every fine-tuning epoch.
    patience = len(history) + preset.fine_tune_epochs
    best = classes["BestEpoch"](patience, checkpoints / "fine-tune", history)
    best.best_weights = model.get_weights()  # the head phase's best, until an epoch beats it
    callbacks = [classes["EpochTimer"]()]
    if datasets[2] is not None:
        callbacks.append(classes["TestAccuracy"](datasets[2]))
    model.fit(
        datasets[0],
        validation_data=datasets[1],
        initial_epoch=len(history),
        epochs=len(history) + preset.fine_tune_epochs,
        callbacks=[*callbacks, best],
        verbose=2 if log.verbose else 0,
        shuffle=False,
    )


# -- the entry point -------------------------------------------------------------------------------


def train(config: TrainConfig) -> Path:
    """Train ``config.preset`` on ``config.data`` and return the finished run folder.

    Args:
        config: the run's configuration (see :class:`TrainConfig`); ``config.resume`` continues
            the unfinished run in ``config.out`` (or the newest unfinished one in ``runs_dir``).

    Returns:
        The run folder; its ``manifest.json`` is written last.

    Raises:
        DatasetError: the data folder cannot be used (missing, < 2 classes, empty class…).
        EdgeclfError: unknown preset/strategy, bad option, nothing to resume.
        BackendUnavailableError: TensorFlow is not installed.
    """
    from trainer.presets import get_preset

    if config.strategy == "multi-worker":  # refuse before any work (see MULTI_WORKER_UNSUPPORTED)
        raise EdgeclfError(MULTI_WORKER_UNSUPPORTED)
    get_preset(config.preset)  # an unknown preset is refused before any folder is made
    run_dir = Path(config.out) if config.out else None
    if config.resume and run_dir is None:
        run_dir = _find_unfinished_run(config)
    if config.resume and not run_dir.is_dir():
        raise EdgeclfError(
            f"--resume: {run_dir} does not exist (a run that fails before its first epoch leaves nothing to "
            "resume); run the same command without --resume"
        )
    if not config.resume:
        if not config.data:
            raise DatasetError("no data folder given; pass --data DIR (one subfolder of images per class)")
        run_dir = _new_run_dir(config)
    created = _claim_run_dir(run_dir)
    try:
        with run_lock(run_dir, "train"):
            if config.resume:
                config, run_dir = _prepare_resume(dataclasses.replace(config, out=str(run_dir)))
            else:
                _check_fresh(run_dir)
            return _train_in(config, run_dir, get_preset)
    except BaseException:
        if not _has_trained_epoch(run_dir):
            # Nothing of value was made (no epoch finished): leave no folder that traps a corrected
            # rerun. A folder we did not create keeps everything but our own files.
            _discard_untrained(run_dir, remove_folder=created)
        raise


def _claim_run_dir(run_dir: Path) -> bool:
    """Create the run folder (parents too); return True when this call created it.

    Raises:
        EdgeclfError: ``--out`` is a file, lies under a file, or cannot be created (read-only…).
    """
    if run_dir.is_dir():
        return False
    if run_dir.exists() or run_dir.is_symlink():
        raise EdgeclfError(f"--out {run_dir}: exists and is not a folder; pass a new folder name")
    try:
        run_dir.mkdir(parents=True)
    except FileExistsError:
        return False  # another process made it a moment ago; the lock decides who writes it
    except OSError as error:
        raise EdgeclfError(
            f"--out {run_dir}: cannot create the run folder ({error.strerror or error}); "
            "pass a folder in a writable place"
        ) from None
    return True


def _check_fresh(run_dir: Path) -> None:
    """A new run may use an empty folder, or one left by a run that never finished an epoch."""
    if _is_finished(run_dir):
        raise EdgeclfError(f"{run_dir} already holds a finished run; pass another --out")
    if _has_trained_epoch(run_dir):
        raise EdgeclfError(f"{run_dir} holds an unfinished run; pass --resume to continue it, or another --out")
    leftovers = [p.name for p in run_dir.iterdir() if p.name not in (LOCK_NAME, *_UNTRAINED_FILES)]
    if leftovers:
        raise EdgeclfError(
            f"{run_dir} already exists and holds files that are not edgeclf's ({', '.join(sorted(leftovers)[:3])}…); "
            "pass another --out"
        )
    _discard_untrained(run_dir, remove_folder=False)


# What a run that never finished an epoch may have written (safe to discard).
_UNTRAINED_FILES = (CONFIG_NAME, CHECKPOINTS, f".{MODEL_NAME}.partial")


def _has_trained_epoch(run_dir: Path) -> bool:
    return (run_dir / CHECKPOINTS / HISTORY_NAME).exists() or _is_finished(run_dir)


def _discard_untrained(run_dir: Path, *, remove_folder: bool) -> None:
    if remove_folder:
        shutil.rmtree(run_dir, ignore_errors=True)
        return
    for name in _UNTRAINED_FILES:
        target = run_dir / name
        if target.is_dir() and not target.is_symlink():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                target.unlink()


def _train_in(config: TrainConfig, run_dir: Path, get_preset: Callable[[str], Any]) -> Path:
    """Train into ``run_dir`` (already created and locked by :func:`train`)."""
    preset = get_preset(config.preset)
    # An absolute data path, so the exporter and `evaluate` find the same files from any folder.
    config = dataclasses.replace(config.resolved(preset), data=str(Path(config.data or "").absolute()))
    log = _Log(config.verbose)

    folder = open_labelled_folder(config.data, fractions=config.fractions, seed=config.seed)
    size = int(config.image_size)  # type: ignore[arg-type]
    spec = InputSpec(height=size, width=size, resize_filter=preset.resize_filter, resize=config.resize or "squash")
    num_classes = len(folder.labels)
    tf, keras = _import_tf()
    # First thing after importing TF: MultiWorkerMirroredStrategy must exist before any other op runs
    # ("Collective ops must be configured at program startup").
    strategy = _strategy(tf, config.strategy)
    checkpoints = run_dir / CHECKPOINTS
    log(f"run folder: {run_dir}")
    log(f"data: {folder.root} ({folder.layout} layout), classes: {', '.join(folder.labels)}")

    if not folder.split("validation"):
        raise DatasetError(
            f"{folder.root}: the validation split is empty (--val-fraction 0?); training needs validation images "
            "to pick its best epoch: use --val-fraction 0.15 or a validation/ folder"
        )
    _check_memory(folder, spec)
    loaded = _load_splits(folder, spec, config.workers, log)
    report = _report(folder, loaded)
    # train() made the folder (and locked it); a refused data set leaves nothing: train() removes a
    # folder it created when no epoch finished.
    if not config.resume:
        atomic_write_text(run_dir / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
    _log_report(report, log)
    weights_by_class = class_weights(loaded["train"].labels, num_classes, config.class_weight)
    if weights_by_class is not None:
        report["class_weight"] = {folder.labels[i]: w for i, w in weights_by_class.items()}
        log("class weights: " + ", ".join(f"{k}={v:.3f}" for k, v in report["class_weight"].items()))

    keras.utils.set_random_seed(config.seed)
    batch = int(config.batch_size)  # type: ignore[arg-type]
    augmentation = preset.augmentation(config.seed) if config.augment else None
    train_ds = make_dataset(
        tf,
        loaded["train"].images,
        _targets(loaded["train"].labels, num_classes),
        batch_size=batch,
        shuffle_seed=config.seed,
        augmentation=augmentation,
    )
    val_ds = make_dataset(
        tf, loaded["validation"].images, _targets(loaded["validation"].labels, num_classes), batch_size=batch
    )
    test_ds = None
    if "test" in loaded and len(loaded["test"].labels):
        test_ds = make_dataset(
            tf, loaded["test"].images, _targets(loaded["test"].labels, num_classes), batch_size=batch
        )

    with strategy.scope():
        model = preset.build(spec, num_classes, weights=config.weights)
    # Pretrained presets fit their head on the frozen backbone's features, computed once per image.
    fit_model, fit_data = model, (train_ds, val_ds, test_ds)
    cached = None
    if transfer.uses_cached_features(preset, config.weights):
        cached, fit_data = _cached_feature_fit(tf, model, loaded, num_classes, preset, config, log)
        with strategy.scope():  # the head model shares the full model's layers, made in this scope
            fit_model = transfer.head_model(model)
    elif config.fine_tune:
        raise EdgeclfError(
            f"--fine-tune needs a preset with pretrained weights (lite0, lite1, lite2, default), not {preset.name!r}"
        )
    train_count = len(loaded["train"].labels) if cached is None else len(cached.targets["train"])
    with strategy.scope():
        preset.compile(
            fit_model,
            num_classes,
            learning_rate=config.learning_rate,
            steps_per_epoch=math.ceil(train_count / batch),
            epochs=config.epochs,
        )

    history: list[dict] = []
    history_file = checkpoints / HISTORY_NAME
    backup_dir = checkpoints / "backup"
    if config.resume:
        history = json.loads(history_file.read_text(encoding="utf-8")) if history_file.exists() else []
        meta = backup_dir / "training_metadata.json"
        done = json.loads(meta.read_text(encoding="utf-8"))["epoch"] if meta.exists() else 0
        del history[done:]  # epochs logged after the last backup will be trained again
        log(f"resuming after epoch {done} of {config.epochs}")

    classes = _callbacks(keras)
    best = classes["BestEpoch"](int(config.patience), checkpoints, history)  # type: ignore[arg-type]
    callbacks = [classes["EpochTimer"]()]
    if fit_data[2] is not None:
        callbacks.append(classes["TestAccuracy"](fit_data[2]))
    # The backup is kept until the manifest is written (not deleted at the end of fit), so a crash
    # while saving the outputs can still be resumed without training again.
    callbacks += [
        best,
        keras.callbacks.BackupAndRestore(str(backup_dir), double_checkpoint=True, delete_checkpoint=False),
    ]

    best_index = _best_index(history)
    already_stopped = best_index is not None and len(history) - 1 - best_index >= int(config.patience)  # type: ignore[arg-type]
    verbose = config.verbose if config.verbose != 1 or sys.stdout.isatty() else 2
    start = time.perf_counter()
    try:
        if already_stopped or len(history) >= int(config.epochs):  # type: ignore[arg-type]
            best.set_model(fit_model)
            best.on_train_begin()
            best.on_train_end()
        else:
            fit_model.fit(
                fit_data[0],
                validation_data=fit_data[1],
                epochs=int(config.epochs),  # type: ignore[arg-type]
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the dataset reshuffles itself every epoch
                class_weight=weights_by_class,
            )
    except KeyboardInterrupt:
        log(f"interrupted; continue with: edgeclf train --resume --out {run_dir}")
        raise
    train_seconds = time.perf_counter() - start
    head_epochs = len(history)
    fine_tune_seconds = None
    if config.fine_tune:
        start = time.perf_counter()
        _fine_tune(keras, strategy, model, preset, num_classes, (train_ds, val_ds, test_ds), history, checkpoints, log)
        fine_tune_seconds = time.perf_counter() - start
        log(f"fine-tuned the last {preset.fine_tune_blocks} blocks in {fine_tune_seconds:.1f}s")

    best_index = _best_index(history)
    stopped_early = best.stopped or already_stopped
    if not history:
        raise EdgeclfError("no epoch was trained; pass --epochs 1 or more")
    best_row = history[best_index] if best_index is not None else history[-1]
    best_epoch = int(best_row["epoch"])
    metrics: dict[str, Any] = {
        "best_epoch": best_epoch,
        "epochs_run": len(history),
        "epochs_max": config.epochs,
        "stopped_early": stopped_early,
        "train_seconds": round(train_seconds, 2),
    }
    if cached is not None:
        # Feature extraction is part of training (train + validation); the test split's only feeds
        # the per-epoch test curve.
        metrics["feature_seconds"] = {k: v for k, v in cached.seconds.items()}
        metrics["train_features"] = len(cached.targets["train"])
        metrics["head_epochs"] = head_epochs
        metrics["train_seconds_after_decode"] = round(
            train_seconds
            + cached.seconds["train"]
            + cached.seconds.get("validation", 0.0)
            + (fine_tune_seconds or 0.0),
            2,
        )
    if fine_tune_seconds is not None:
        metrics["fine_tune_seconds"] = round(fine_tune_seconds, 2)
    for key in ("accuracy", "loss", "val_accuracy", "val_loss", "test_accuracy", "test_loss"):
        if key in best_row:
            metrics[key] = round(float(best_row[key]), 6)
    log(
        f"best epoch {best_epoch} of {len(history)}"
        + (" (early stopping)" if stopped_early else "")
        + f": val_accuracy {metrics.get('val_accuracy', math.nan):.4f}"
        + (f", test_accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "")
    )

    _save_model(model, run_dir)
    _write_history(run_dir, history)
    write_plots(run_dir, history, best_epoch)
    report["metrics"] = metrics
    atomic_write_text(run_dir / REPORT_NAME, json.dumps(report, indent=2) + "\n")
    data = folder.describe()
    data["skipped"] = [item["path"] for item in report["skipped"]["files"]]
    manifest = Manifest(
        labels=folder.labels,
        input=spec,
        output_activation="sigmoid" if num_classes == 2 else "softmax",
        preset=preset.name,
        training={**config.to_dict(), "out": str(run_dir), "resume": False, "recipe": _recipe(preset)},
        data=data,
        metrics=metrics,
    )
    manifest.save(run_dir)  # labels.txt, then manifest.json: the run is finished from here on
    shutil.rmtree(backup_dir, ignore_errors=True)  # the run is finished: nothing left to resume
    _update_latest(run_dir, Path(config.runs_dir), log)
    log(f"saved {run_dir / MODEL_NAME} and {run_dir / MANIFEST_NAME}")
    return run_dir
