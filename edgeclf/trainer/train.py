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

:func:`train` reads like a table of contents: run folder created or resumed (``edgeclf/trainer/rundir.py``)
→ data decoded once (``edgeclf/trainer/datasets.py``) → model built and compiled → fit (callbacks in
``edgeclf/trainer/callbacks.py``) → outputs written, manifest last. Decoding is the expensive part of a
small-data epoch, so skipping it after the first pass is what makes the pipeline faster than an
``ImageDataGenerator`` loop (see ``research/training_throughput.py``).
"""

from __future__ import annotations

import dataclasses
import json
import math
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from edgeclf.kerasio import import_tensorflow, save_model
from edgeclf.runtime.dataset import LabelledFolder, open_labelled_folder
from edgeclf.runtime.errors import ConfigError, EdgeclfError
from edgeclf.runtime.fileio import atomic_write_text
from edgeclf.runtime.manifest import MANIFEST_NAME, MODEL_NAME, InputSpec, Manifest
from edgeclf.trainer import transfer
from edgeclf.trainer.class_weight import class_weights
from edgeclf.trainer.config import ResolvedConfig, TrainConfig
from edgeclf.trainer.datasets import TrainingData, load_training_data, log_report, make_dataset
from edgeclf.trainer.history import HISTORY_NAME, best_index, write_history, write_plots
from edgeclf.trainer.rundir import CHECKPOINTS, CONFIG_NAME, claimed_run_dir, update_latest
from edgeclf.trainer.runlog import RunLog

__all__ = ["ResolvedConfig", "TrainConfig", "make_dataset", "train", "write_plots"]

REPORT_NAME = "report.json"


def train(config: TrainConfig, *, callbacks: Sequence[Any] = ()) -> Path:
    """Train ``config.preset`` on ``config.data`` and return the finished run folder.

    Args:
        config: the run's configuration (see :class:`TrainConfig`); ``config.resume`` continues
            the unfinished run in ``config.out`` (or the newest unfinished one in ``runs_dir``).
        callbacks: extra Keras callbacks (e.g. ``keras.callbacks.TensorBoard``), called after
            edgeclf's own in every epoch of the main fit.

    Returns:
        The run folder; its ``manifest.json`` is written last.

    Raises:
        DatasetError: the data folder cannot be used (missing, < 2 classes, empty class…).
        EdgeclfError: unknown preset/strategy, bad option, nothing to resume.
        BackendUnavailableError: TensorFlow is not installed.
    """
    from edgeclf.trainer.presets import get_preset

    if config.strategy == "multi-worker":  # refuse before any work (see MULTI_WORKER_UNSUPPORTED)
        raise EdgeclfError(MULTI_WORKER_UNSUPPORTED)
    get_preset(config.preset)  # an unknown preset is refused before any folder is made
    with claimed_run_dir(config) as (claimed, run_dir):
        run, folder = _start(claimed, run_dir)
        data, weights_by_class = _load_data(run, folder)
        models = _build_and_compile(run, data)
        fitted = _fit(run, data, models, weights_by_class, list(callbacks))
        return _finalise(run, data, models, fitted)


# -- the stages of train() -------------------------------------------------------------------------


@dataclass
class _Run:
    """What every stage of one run works with."""

    config: ResolvedConfig
    preset: Any
    run_dir: Path
    log: RunLog
    tf: Any
    keras: Any
    strategy: Any
    teacher: Any = None  # edgeclf.trainer.distill.Teacher with --teacher


@dataclass
class _Models:
    """The full model, the model actually fitted (the head alone on cached features) and its data."""

    model: Any
    fit_model: Any
    image_data: tuple[Any, Any, Any]  # train (augmented), validation, test (or None) over images
    fit_data: tuple[Any, Any, Any]  # what fit_model trains and validates on
    cached: transfer.CachedFeatures | None
    steps_per_epoch: int | None = None  # set when the training pipeline is endless (distillation)
    distilled: Any = None  # edgeclf.trainer.distill.DistilledData with --teacher


@dataclass
class _Fitted:
    """The outcome of fitting: the epochs' history and how training ended."""

    history: list[dict]
    stopped_early: bool
    train_seconds: float
    head_epochs: int
    fine_tune_seconds: float | None


def _import_tf() -> tuple[Any, Any]:
    return import_tensorflow()


def _start(given: TrainConfig, run_dir: Path) -> tuple[_Run, LabelledFolder]:
    """Resolve the config against its preset, open the data folder, import TensorFlow."""
    from edgeclf.trainer.presets import get_preset

    preset = get_preset(given.preset)
    # An absolute data path, so the exporter and `evaluate` find the same files from any folder.
    config = dataclasses.replace(given.resolved(preset), data=str(Path(given.data or "").absolute()))
    log = RunLog(config.verbose)
    folder = open_labelled_folder(config.data, fractions=config.fractions, seed=config.seed)
    teacher = _check_teacher(config, preset, folder)
    if config.fine_tune and not transfer.uses_cached_features(preset, config.weights):
        raise EdgeclfError(
            f"--fine-tune needs a preset with pretrained weights (lite0, lite1, lite2, default), not {preset.name!r}"
        )
    tf, keras = _import_tf()
    # First thing after importing TF: MultiWorkerMirroredStrategy must exist before any other op runs
    # ("Collective ops must be configured at program startup").
    strategy = _strategy(tf, config.strategy)
    log(f"run folder: {run_dir}")
    log(f"data: {folder.root} ({folder.layout} layout), classes: {', '.join(folder.labels)}")
    return _Run(config, preset, run_dir, log, tf, keras, strategy, teacher), folder


def _check_teacher(config: ResolvedConfig, preset: Any, folder: LabelledFolder) -> Any:
    """With ``--teacher``: the checked teacher run (before any decoding or training), else None."""
    if not config.teacher:
        if config.unlabelled:
            raise ConfigError("--unlabelled photos are labelled by a teacher: pass --teacher RUN too")
        return None
    from edgeclf.trainer.distill import open_teacher, unlabelled_images

    if transfer.uses_cached_features(preset, config.weights):
        raise ConfigError(
            f"--teacher trains a from-scratch student (dsnet, seed), not the pretrained preset {preset.name!r}"
        )
    teacher = open_teacher(config.teacher, folder.labels)
    if config.unlabelled:
        teacher.unlabelled = unlabelled_images(config.unlabelled)
    return teacher


def _load_data(run: _Run, folder: LabelledFolder) -> tuple[TrainingData, dict[int, float] | None]:
    """Decode the splits, save the resolved config, report the data; returns the class weights too."""
    config, log = run.config, run.log
    spec = InputSpec(
        height=config.image_size,
        width=config.image_size,
        resize_filter=run.preset.resize_filter,
        resize=config.resize,
    )
    data = load_training_data(folder, spec, config.workers, log)
    # train() made the folder (and locked it); a refused data set leaves nothing: a folder it
    # created is removed when no epoch finished.
    if not config.resume:
        atomic_write_text(run.run_dir / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
    log_report(data.report, log)
    weights_by_class = class_weights(data.loaded["train"].labels, data.num_classes, config.class_weight)
    if weights_by_class is not None:
        data.report["class_weight"] = {folder.labels[i]: w for i, w in weights_by_class.items()}
        log("class weights: " + ", ".join(f"{k}={v:.3f}" for k, v in data.report["class_weight"].items()))
    return data, weights_by_class


def _image_datasets(run: _Run, data: TrainingData) -> tuple[Any, Any, Any]:
    """tf.data pipelines over the decoded images: train (shuffled, augmented), validation, test."""
    config, tf = run.config, run.tf
    augmentation = run.preset.augmentation(config.seed) if config.augment else None
    train_ds = make_dataset(
        tf,
        data.loaded["train"].images,
        data.targets("train"),
        batch_size=config.batch_size,
        shuffle_seed=config.seed,
        augmentation=augmentation,
    )
    val_ds = make_dataset(
        tf, data.loaded["validation"].images, data.targets("validation"), batch_size=config.batch_size
    )
    test_ds = None
    if "test" in data.loaded and len(data.loaded["test"].labels):
        test_ds = make_dataset(tf, data.loaded["test"].images, data.targets("test"), batch_size=config.batch_size)
    return train_ds, val_ds, test_ds


def _build_and_compile(run: _Run, data: TrainingData) -> _Models:
    """Build the preset's model; pretrained presets fit their head on cached backbone features."""
    config, preset, strategy = run.config, run.preset, run.strategy
    run.keras.utils.set_random_seed(config.seed)
    if run.teacher is not None:
        return _build_student(run, data)
    image_data = _image_datasets(run, data)
    with strategy.scope():
        model = preset.build(data.spec, data.num_classes, weights=config.weights)
    # Pretrained presets fit their head on the frozen backbone's features, computed once per image.
    fit_model, fit_data, cached = model, image_data, None
    if transfer.uses_cached_features(preset, config.weights):
        cached, fit_data = _cached_feature_fit(run.tf, model, data, preset, config, run.log)
        with strategy.scope():  # the head model shares the full model's layers, made in this scope
            fit_model = transfer.head_model(model)
    train_count = len(data.loaded["train"].labels) if cached is None else len(cached.targets["train"])
    with strategy.scope():
        preset.compile(
            fit_model,
            data.num_classes,
            learning_rate=config.learning_rate,
            steps_per_epoch=math.ceil(train_count / config.batch_size),
            epochs=config.epochs,
        )
    return _Models(model, fit_model, image_data, fit_data, cached)


def _build_student(run: _Run, data: TrainingData) -> _Models:
    """Distillation: the teacher's blended targets for the training photos and augmented copies."""
    from edgeclf.trainer import distill

    config, tf, batch = run.config, run.tf, run.config.batch_size
    augmentation = run.preset.augmentation(config.seed) if config.augment else None
    distilled = distill.distilled_data(
        tf,
        run.teacher,
        data,
        augmentation,
        alpha=config.teacher_alpha,
        temperature=config.teacher_temperature,
        copies=config.teacher_copies,
        workers=config.workers,
        log=run.log,
        unlabelled=run.teacher.unlabelled,
    )

    def evaluation_data(split: str) -> Any:
        if split not in data.loaded or not len(data.loaded[split].labels):
            return None
        hard = distill.hard_targets(data.loaded[split].labels, data.num_classes)
        return make_dataset(tf, data.loaded[split].images, hard, batch_size=batch)

    datasets = (
        distill.student_dataset(tf, distilled, batch_size=batch, seed=config.seed),
        evaluation_data("validation"),
        evaluation_data("test"),
    )
    steps = distill.steps_per_epoch(distilled.originals, batch)
    with run.strategy.scope():
        model = run.preset.build(data.spec, data.num_classes, weights=config.weights)
        distill.compile_student(
            model, run.preset, data.num_classes, learning_rate=config.learning_rate, steps=steps, epochs=config.epochs
        )
    return _Models(model, model, datasets, datasets, None, steps_per_epoch=steps, distilled=distilled)


def _resumed_history(run: _Run) -> list[dict]:
    """The epochs an interrupted run already trained (none for a new run)."""
    if not run.config.resume:
        return []
    checkpoints = run.run_dir / CHECKPOINTS
    history_file = checkpoints / HISTORY_NAME
    history = json.loads(history_file.read_text(encoding="utf-8")) if history_file.exists() else []
    meta = checkpoints / "backup" / "training_metadata.json"
    done = json.loads(meta.read_text(encoding="utf-8"))["epoch"] if meta.exists() else 0
    del history[done:]  # epochs logged after the last backup will be trained again
    run.log(f"resuming after epoch {done} of {run.config.epochs}")
    return history


def _fit(
    run: _Run, data: TrainingData, models: _Models, weights_by_class: dict[int, float] | None, extra: list[Any]
) -> _Fitted:
    """Fit (or, on resume, continue) with early stopping; then fine-tune when asked."""
    from edgeclf.trainer.callbacks import BestEpoch, EpochTimer, TestAccuracy

    config, keras, checkpoints = run.config, run.keras, run.run_dir / CHECKPOINTS
    history = _resumed_history(run)
    best = BestEpoch(config.patience, checkpoints, history)
    callbacks = [EpochTimer()]
    if models.fit_data[2] is not None:
        callbacks.append(TestAccuracy(models.fit_data[2]))
    # The backup is kept until the manifest is written (not deleted at the end of fit), so a crash
    # while saving the outputs can still be resumed without training again.
    callbacks += [
        best,
        keras.callbacks.BackupAndRestore(str(checkpoints / "backup"), double_checkpoint=True, delete_checkpoint=False),
        *extra,
    ]
    best_so_far = best_index(history)
    already_stopped = best_so_far is not None and len(history) - 1 - best_so_far >= config.patience
    verbose = config.verbose if config.verbose != 1 or sys.stdout.isatty() else 2
    start = time.perf_counter()
    try:
        if already_stopped or len(history) >= config.epochs:
            best.set_model(models.fit_model)
            best.on_train_begin()
            best.on_train_end()
        else:
            models.fit_model.fit(
                models.fit_data[0],
                validation_data=models.fit_data[1],
                epochs=config.epochs,
                steps_per_epoch=models.steps_per_epoch,
                callbacks=callbacks,
                verbose=verbose,
                shuffle=False,  # the dataset reshuffles itself every epoch
                class_weight=weights_by_class,
            )
    except KeyboardInterrupt:
        run.log(f"interrupted; continue with: edgeclf train --resume --out {run.run_dir}")
        raise
    train_seconds = time.perf_counter() - start
    head_epochs = len(history)
    fine_tune_seconds = None
    if config.fine_tune:
        start = time.perf_counter()
        _fine_tune(run, models.model, data.num_classes, models.image_data, history)
        fine_tune_seconds = time.perf_counter() - start
        run.log(f"fine-tuned the last {run.preset.fine_tune_blocks} blocks in {fine_tune_seconds:.1f}s")
    return _Fitted(history, best.stopped or already_stopped, train_seconds, head_epochs, fine_tune_seconds)


def _metrics(run: _Run, models: _Models, fitted: _Fitted) -> dict[str, Any]:
    """The manifest's metrics: the best epoch's scores, how long training took, how it ended."""
    history = fitted.history
    if not history:
        raise EdgeclfError("no epoch was trained; pass --epochs 1 or more")
    best = best_index(history)
    best_row = history[best] if best is not None else history[-1]
    metrics: dict[str, Any] = {
        "best_epoch": int(best_row["epoch"]),
        "epochs_run": len(history),
        "epochs_max": run.config.epochs,
        "stopped_early": fitted.stopped_early,
        "train_seconds": round(fitted.train_seconds, 2),
    }
    cached = models.cached
    if cached is not None:
        # Feature extraction is part of training (train + validation); the test split's only feeds
        # the per-epoch test curve.
        metrics["feature_seconds"] = {k: v for k, v in cached.seconds.items()}
        metrics["train_features"] = len(cached.targets["train"])
        metrics["head_epochs"] = fitted.head_epochs
        metrics["train_seconds_after_decode"] = round(
            fitted.train_seconds
            + cached.seconds["train"]
            + cached.seconds.get("validation", 0.0)
            + (fitted.fine_tune_seconds or 0.0),
            2,
        )
    if models.distilled is not None:
        metrics["teacher_seconds"] = models.distilled.seconds
        metrics["train_seconds_after_decode"] = round(fitted.train_seconds + models.distilled.seconds, 2)
    if fitted.fine_tune_seconds is not None:
        metrics["fine_tune_seconds"] = round(fitted.fine_tune_seconds, 2)
    for key in ("accuracy", "loss", "val_accuracy", "val_loss", "test_accuracy", "test_loss"):
        if key in best_row:
            metrics[key] = round(float(best_row[key]), 6)
    return metrics


def _finalise(run: _Run, data: TrainingData, models: _Models, fitted: _Fitted) -> Path:
    """Write the model, history, plots and report, then the manifest (last: the run is finished)."""
    config, run_dir, log = run.config, run.run_dir, run.log
    metrics = _metrics(run, models, fitted)
    best_epoch = metrics["best_epoch"]
    log(
        f"best epoch {best_epoch} of {len(fitted.history)}"
        + (" (early stopping)" if fitted.stopped_early else "")
        + f": val_accuracy {metrics.get('val_accuracy', math.nan):.4f}"
        + (f", test_accuracy {metrics['test_accuracy']:.4f}" if "test_accuracy" in metrics else "")
    )
    training = {**config.to_dict(), "out": str(run_dir), "resume": False, "recipe": _recipe(run.preset)}
    if models.distilled is not None:
        from edgeclf.trainer.distill import restore_standard_compile

        restore_standard_compile(models.model, run.preset, data.num_classes)
        training["distillation"] = models.distilled.record
    _save_model(models.model, run_dir)
    write_history(run_dir, fitted.history)
    write_plots(run_dir, fitted.history, best_epoch)
    data.report["metrics"] = metrics
    atomic_write_text(run_dir / REPORT_NAME, json.dumps(data.report, indent=2) + "\n")
    described = data.folder.describe()
    described["skipped"] = [item["path"] for item in data.report["skipped"]["files"]]
    manifest = Manifest(
        labels=data.folder.labels,
        input=data.spec,
        output_activation="sigmoid" if data.num_classes == 2 else "softmax",
        preset=run.preset.name,
        training=training,
        data=described,
        metrics=metrics,
    )
    manifest.save(run_dir)  # labels.txt, then manifest.json: the run is finished from here on
    shutil.rmtree(run_dir / CHECKPOINTS / "backup", ignore_errors=True)  # finished: nothing left to resume
    update_latest(run_dir, Path(config.runs_dir), log)
    log(f"saved {run_dir / MODEL_NAME} and {run_dir / MANIFEST_NAME}")
    return run_dir


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


# -- outputs ---------------------------------------------------------------------------------------


def _recipe(preset: Any) -> dict[str, Any]:
    """The preset's full recipe for the manifest (presets without ``to_dict`` record only the name)."""
    to_dict = getattr(preset, "to_dict", None)
    return to_dict() if callable(to_dict) else {"name": preset.name}


def _save_model(model: Any, run_dir: Path) -> Path:
    """Save ``model.keras`` atomically."""
    return save_model(model, run_dir / MODEL_NAME)


# -- pretrained presets ----------------------------------------------------------------------------


def _cached_feature_fit(
    tf: Any, model: Any, data: TrainingData, preset: Any, config: ResolvedConfig, log: RunLog
) -> tuple[transfer.CachedFeatures, tuple[Any, Any, Any]]:
    """Features of every split through the frozen backbone, and the head's datasets over them."""
    flip = bool(preset.feature_flip and config.augment)
    present = [name for name, part in data.loaded.items() if len(part.labels)]
    cached = transfer.compute_features(
        model,
        {name: data.loaded[name].images for name in present},
        {name: data.targets(name) for name in present},
        flip=flip,
    )
    for name, seconds in cached.seconds.items():
        log(
            f"backbone features of {name}: {len(cached.targets[name])} in {seconds:.1f}s"
            + (" (with mirrored copies)" if flip and name == "train" else "")
        )

    def dataset(name: str) -> Any:
        if name not in cached.features:
            return None
        shuffle_seed = config.seed if name == "train" else None
        return make_dataset(
            tf, cached.features[name], cached.targets[name], batch_size=config.batch_size, shuffle_seed=shuffle_seed
        )

    return cached, (dataset("train"), dataset("validation"), dataset("test"))


def _fine_tune(run: _Run, model: Any, num_classes: int, datasets: tuple[Any, Any, Any], history: list[dict]) -> None:
    """Train the last blocks on the (augmented) images; keep the fine-tuned weights only if validation improves.

    Not resumable on its own: an interrupted run redoes this phase after the head (its state lives
    in ``checkpoints/fine-tune`` so the head's resume state stays valid).
    """
    from edgeclf.trainer.callbacks import BestEpoch, EpochTimer, TestAccuracy

    preset, log = run.preset, run.log
    trainable = transfer.unfreeze_last_blocks(model, preset.fine_tune_blocks)
    log(f"fine-tuning {len(trainable)} layers at learning rate {preset.fine_tune_learning_rate:g}, BatchNorm frozen")
    with run.strategy.scope():
        preset.compile(model, num_classes, learning_rate=preset.fine_tune_learning_rate)
    # Patience counts from the best epoch, usually a head epoch long past: allow every fine-tuning epoch.
    patience = len(history) + preset.fine_tune_epochs
    best = BestEpoch(patience, run.run_dir / CHECKPOINTS / "fine-tune", history)
    best.best_weights = model.get_weights()  # the head phase's best, until an epoch beats it
    callbacks = [EpochTimer()]
    if datasets[2] is not None:
        callbacks.append(TestAccuracy(datasets[2]))
    model.fit(
        datasets[0],
        validation_data=datasets[1],
        initial_epoch=len(history),
        epochs=len(history) + preset.fine_tune_epochs,
        callbacks=[*callbacks, best],
        verbose=2 if log.verbose else 0,
        shuffle=False,
    )
