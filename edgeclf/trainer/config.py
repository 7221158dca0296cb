"""The configuration of one training run: :class:`TrainConfig` as given, :class:`ResolvedConfig` as run.

``TrainConfig`` is what the command line builds: ``None`` for a hyper-parameter means "the preset's
default". :meth:`TrainConfig.resolved` fills those in and returns a :class:`ResolvedConfig`, whose
hyper-parameters are plain numbers, so the trainer never has to ask "is it set yet?". Both share
every other field (:class:`RunOptions`) and serialise to the same JSON (``train_config.json`` and the
manifest's ``training`` section), which :meth:`TrainConfig.from_dict` reads back.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from edgeclf.runtime.dataset import DEFAULT_FRACTIONS
from edgeclf.runtime.errors import ConfigError, EdgeclfError
from edgeclf.runtime.manifest import MAX_INPUT_SIDE, RESIZE_MODES
from edgeclf.trainer.class_weight import check_mode as check_class_weight_mode

STRATEGIES = ("default", "mirrored", "multi-worker")


@dataclass(frozen=True, kw_only=True)
class RunOptions:
    """The fields a preset never decides: data, folders, seed, strategy and the run's switches."""

    data: str | None
    preset: str = "default"
    out: str | None = None  # default: <runs_dir>/<preset>-<YYYYmmdd-HHMMSS>
    runs_dir: str = "runs"
    seed: int = 0
    fractions: tuple[float, float, float] = DEFAULT_FRACTIONS  # only for a plain folder of classes
    augment: bool = True
    strategy: str = "default"  # default | mirrored | multi-worker
    resume: bool = False
    workers: int = 4  # decoding threads
    fine_tune: bool = False  # pretrained presets: after the head, train the last blocks (BatchNorm frozen)
    verbose: int = 1  # 0 silent, 1 progress bar, 2 one line per epoch
    class_weight: str = "none"  # "auto": weigh each class by its inverse frequency (edgeclf/trainer/class_weight.py)
    # Distillation (edgeclf/trainer/distill.py): a finished run whose scores become the targets.
    teacher: str | None = None
    teacher_alpha: float = 0.5  # weight of the hard labels in the blended target
    teacher_temperature: float = 1.0  # > 1 softens the teacher's scores
    teacher_copies: int = 8  # augmented copies of the training photos the teacher scores
    unlabelled: str | None = None  # with a teacher: a folder of extra photos, the teacher's scores as targets

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict (:meth:`TrainConfig.from_dict` reads it back)."""
        data = dataclasses.asdict(self)
        data["fractions"] = list(self.fractions)
        return data


@dataclass(frozen=True, kw_only=True)
class TrainConfig(RunOptions):
    """Everything one training run depends on; saved as ``train_config.json`` and in the manifest.

    ``None`` for ``epochs``, ``batch_size``, ``image_size``, ``learning_rate`` and ``patience``
    means "the preset's default"; :meth:`resolved` fills them in.
    """

    epochs: int | None = None
    batch_size: int | None = None
    image_size: int | None = None
    learning_rate: float | None = None
    patience: int | None = None  # early stopping: epochs without a better val_accuracy
    weights: str | None = None  # None = the preset's default; "none", "imagenet" or a path (presets that support it)
    resize: str | None = None  # squash | crop | letterbox; None = the preset's default

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise EdgeclfError(f"unknown strategy {self.strategy!r}; known: {', '.join(STRATEGIES)}")
        check_class_weight_mode(self.class_weight)
        if self.resize is not None and self.resize not in RESIZE_MODES:
            raise ConfigError(f"unknown resize mode {self.resize!r}; known: {', '.join(RESIZE_MODES)}")
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
        if not 0.0 <= self.teacher_alpha <= 1.0:
            raise ConfigError(
                f"--teacher-alpha must be between 0 and 1 (the hard labels' weight), got {self.teacher_alpha}"
            )
        if not self.teacher_temperature > 0:
            raise ConfigError(f"--teacher-temperature must be positive, got {self.teacher_temperature}")
        if self.teacher_copies < 0:
            raise ConfigError(f"--teacher-copies must be 0 or more, got {self.teacher_copies}")

    def resolved(self, preset: Any) -> ResolvedConfig:
        """This config with every ``None`` hyper-parameter replaced by the preset's default."""
        options = {f.name: getattr(self, f.name) for f in dataclasses.fields(RunOptions)}
        return ResolvedConfig(
            **{**options, "fractions": tuple(float(f) for f in self.fractions)},
            epochs=int(self.epochs if self.epochs is not None else preset.epochs),
            batch_size=int(self.batch_size if self.batch_size is not None else preset.batch_size),
            image_size=int(self.image_size if self.image_size is not None else preset.image_size),
            learning_rate=float(self.learning_rate if self.learning_rate is not None else preset.learning_rate),
            patience=int(self.patience if self.patience is not None else preset.patience),
            weights=self.weights if self.weights is not None else getattr(preset, "default_weights", None),
            resize=self.resize if self.resize is not None else getattr(preset, "resize", "squash"),
        )

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Rebuild a config saved by :meth:`to_dict`, ignoring keys this version does not know."""
        known = {f.name for f in dataclasses.fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        if "fractions" in values:
            values["fractions"] = tuple(values["fractions"])
        return cls(**values)


@dataclass(frozen=True, kw_only=True)
class ResolvedConfig(RunOptions):
    """A :class:`TrainConfig` with the preset's defaults filled in: every hyper-parameter is a number."""

    epochs: int
    batch_size: int
    image_size: int
    learning_rate: float
    patience: int
    weights: str | None
    resize: str
