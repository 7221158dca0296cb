"""The manifest: the one contract between the trainer, the exporter, the runtime and the benchmarks.

A run folder holds ``model.keras``, ``labels.txt`` and ``manifest.json``; the exporter adds
artifacts (``*.tflite``, ``*.onnx``) and one :class:`Artifact` entry per file. The same fields,
minus the artifact list, are embedded in each artifact (:meth:`Manifest.to_embedded`) so that a
single copied file is enough for the runtime to label its outputs.

:meth:`Manifest.load` / :meth:`Manifest.from_dict` are the only parsers of this format in the
project; everything else goes through them.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from edge_runtime.errors import ManifestError
from edge_runtime.fileio import atomic_write_text

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
MODEL_NAME = "model.keras"

RESIZE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
ACTIVATIONS = ("sigmoid", "softmax")


@dataclass(frozen=True)
class InputSpec:
    """What every model of a run takes: a batch of ``height × width × channels`` uint8 RGB images.

    Rescaling to the network's range happens inside the graph (``normalization == "in-graph"``),
    so the runtime only decodes, converts to RGB and resizes with ``resize_filter``.
    """

    height: int
    width: int
    channels: int = 3
    dtype: str = "uint8"
    color_order: str = "RGB"
    resize_filter: str = "bilinear"
    normalization: str = "in-graph"

    def __post_init__(self) -> None:
        if self.height <= 0 or self.width <= 0:
            raise ManifestError(f"input size must be positive, got {self.height}x{self.width}")
        if self.channels != 3:
            raise ManifestError(f"only 3-channel RGB inputs are supported, got {self.channels}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ManifestError(f"unknown resize filter {self.resize_filter!r}; known: {', '.join(RESIZE_FILTERS)}")

    @property
    def size(self) -> tuple[int, int]:
        """``(width, height)`` as Pillow wants it."""
        return (self.width, self.height)

    @property
    def shape(self) -> tuple[int, int, int]:
        """``(height, width, channels)`` of one image."""
        return (self.height, self.width, self.channels)


@dataclass(frozen=True)
class TensorInfo:
    """One input or output tensor of an artifact, as read back from the converted file."""

    name: str
    dtype: str
    shape: tuple[int, ...]
    scale: float | None = None
    zero_point: int | None = None

    @property
    def quantized(self) -> bool:
        """True when values are stored as integers with a scale and zero point."""
        return self.scale is not None and self.scale != 0.0


@dataclass(frozen=True)
class Artifact:
    """One exported file of a run: what it is, how to run it, and how well it matched Keras."""

    format: str
    precision: str
    file: str
    size_bytes: int
    sha256: str
    backend: str
    inputs: tuple[TensorInfo, ...]
    outputs: tuple[TensorInfo, ...]
    status: str = "passed"
    op_versions: Mapping[str, int] = field(default_factory=dict)
    compatibility: Mapping[str, str] = field(default_factory=dict)
    validation: Mapping[str, Any] = field(default_factory=dict)
    details: Mapping[str, Any] = field(default_factory=dict)


OPEN_SET_VERSION = 1


@dataclass(frozen=True)
class OpenSet:
    """Calibration for "none of the above" (``--threshold auto``), fitted at export (``edge_runtime/open_set.py``).

    Attributes:
        temperature: divides the logits so confidence matches accuracy on the validation split.
        threshold: calibrated top-1 confidence below which a photo is ``unknown``; ``None`` when no
            photos of other kinds were given.
        target_false_accept: share of the other photos allowed through when the threshold was chosen.
        measured: false-accept / false-reject rates and image counts measured at export.
    """

    temperature: float
    threshold: float | None = None
    target_false_accept: float | None = None
    measured: Mapping[str, Any] = field(default_factory=dict)
    version: int = OPEN_SET_VERSION

    def __post_init__(self) -> None:
        if not 0.0 < self.temperature < float("inf"):
            raise ManifestError(f"open_set temperature must be a positive number, got {self.temperature}")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise ManifestError(f"open_set threshold must be between 0 and 1, got {self.threshold}")


@dataclass(frozen=True)
class Manifest:
    """Labels, input spec and provenance of a trained model, plus its exported artifacts."""

    labels: tuple[str, ...]
    input: InputSpec
    output_activation: str
    preset: str
    model_file: str = MODEL_NAME
    training: Mapping[str, Any] = field(default_factory=dict)
    data: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    artifacts: tuple[Artifact, ...] = ()
    schema_version: int = SCHEMA_VERSION
    open_set: OpenSet | None = None

    def __post_init__(self) -> None:
        if len(self.labels) < 2:
            raise ManifestError(f"a classifier needs at least two labels, got {list(self.labels)}")
        if len(set(self.labels)) != len(self.labels):
            raise ManifestError(f"labels are not unique: {list(self.labels)}")
        if self.output_activation not in ACTIVATIONS:
            raise ManifestError(
                f"unknown output activation {self.output_activation!r}; known: {', '.join(ACTIVATIONS)}"
            )
        if self.output_activation == "sigmoid" and len(self.labels) != 2:
            raise ManifestError("a sigmoid output needs exactly two labels")

    # -- derived -------------------------------------------------------------------------------

    @property
    def num_outputs(self) -> int:
        """Width of the model's output: 1 for a binary sigmoid, else one score per label."""
        return 1 if self.output_activation == "sigmoid" else len(self.labels)

    def artifact(self, format_name: str) -> Artifact:
        """Return the artifact of ``format_name`` or raise a :class:`ManifestError` naming the known ones."""
        for artifact in self.artifacts:
            if artifact.format == format_name:
                return artifact
        known = ", ".join(a.format for a in self.artifacts) or "none (run `edgeclf export` first)"
        raise ManifestError(f"no artifact of format {format_name!r} in this run; exported: {known}")

    def with_artifact(self, artifact: Artifact) -> Manifest:
        """Return a copy with ``artifact`` added, replacing any earlier one of the same format."""
        kept = tuple(a for a in self.artifacts if a.format != artifact.format)
        return dataclasses.replace(self, artifacts=(*kept, artifact))

    def without_artifact(self, format_name: str) -> Manifest:
        """Return a copy without the artifact of ``format_name`` (if any)."""
        return dataclasses.replace(self, artifacts=tuple(a for a in self.artifacts if a.format != format_name))

    # -- (de)serialisation ---------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; :meth:`from_dict` reads it back."""
        return _jsonable(dataclasses.asdict(self))

    def to_embedded(self) -> dict[str, Any]:
        """The subset embedded inside each artifact: enough to label outputs, no artifact list."""
        data = self.to_dict()
        keys = ("schema_version", "labels", "input", "output_activation", "preset", "open_set")
        return {k: data[k] for k in keys if k != "open_set" or data[k] is not None}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], source: str = "manifest") -> Manifest:
        """Validate and build a manifest; raise :class:`ManifestError` saying which field is wrong."""
        if not isinstance(data, Mapping):
            raise ManifestError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if version != SCHEMA_VERSION:
            raise ManifestError(
                f"{source}: schema_version {version} is not supported by this edgeclf "
                f"(it reads version {SCHEMA_VERSION}); upgrade edgeclf or re-export the model"
            )
        try:
            return cls(
                labels=tuple(str(x) for x in _require(data, "labels", list, source)),
                input=InputSpec(**_require(data, "input", Mapping, source)),
                output_activation=str(_require(data, "output_activation", str, source)),
                preset=str(data.get("preset", "unknown")),
                model_file=str(data.get("model_file", MODEL_NAME)),
                training=dict(data.get("training") or {}),
                data=dict(data.get("data") or {}),
                metrics=dict(data.get("metrics") or {}),
                artifacts=tuple(_artifact_from_dict(a, source) for a in data.get("artifacts") or ()),
                schema_version=SCHEMA_VERSION,
                open_set=_open_set_from_dict(data.get("open_set"), source),
            )
        except TypeError as error:  # unknown or missing keyword in a nested section
            raise ManifestError(f"{source}: malformed entry ({error})") from None

    @classmethod
    def load(cls, path: str | Path) -> Manifest:
        """Read ``manifest.json`` from a run folder (or the file itself)."""
        path = Path(path)
        file = path / MANIFEST_NAME if path.is_dir() else path
        if not file.exists():
            if not path.exists():
                raise ManifestError(f"{path}: no such run folder or manifest")
            raise ManifestError(f"{file}: missing; is {path} a run folder made by `edgeclf train`?")
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
            raise ManifestError(f"{file}: not readable JSON ({error}); re-run `edgeclf train`") from None
        return cls.from_dict(data, source=str(file))

    def save(self, run_dir: str | Path) -> Path:
        """Write ``manifest.json`` and ``labels.txt`` into ``run_dir`` atomically; return the manifest path."""
        run_dir = Path(run_dir)
        atomic_write_text(run_dir / LABELS_NAME, "".join(f"{label}\n" for label in self.labels))
        target = run_dir / MANIFEST_NAME
        atomic_write_text(target, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return target


def _require(data: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in data:
        raise ManifestError(f"{source}: field {key!r} is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{source}: field {key!r} should be a {kind.__name__}, got {type(value).__name__}")
    return value


def _open_set_from_dict(data: Any, source: str) -> OpenSet | None:
    if data is None:
        return None
    if not isinstance(data, Mapping):
        raise ManifestError(f"{source}: field 'open_set' should be an object, got {type(data).__name__}")
    version = data.get("version", OPEN_SET_VERSION)
    if version != OPEN_SET_VERSION:
        raise ManifestError(
            f"{source}: open_set version {version} is not supported (this edgeclf reads {OPEN_SET_VERSION}); "
            "upgrade edgeclf or re-export the model"
        )
    try:
        threshold = data.get("threshold")
        target = data.get("target_false_accept")
        return OpenSet(
            temperature=float(data["temperature"]),
            threshold=None if threshold is None else float(threshold),
            target_false_accept=None if target is None else float(target),
            measured=dict(data.get("measured") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"{source}: malformed open_set entry ({error!r})") from None


def _tensor_from_dict(data: Mapping[str, Any]) -> TensorInfo:
    return TensorInfo(
        name=str(data["name"]),
        dtype=str(data["dtype"]),
        shape=tuple(int(x) for x in data["shape"]),
        scale=None if data.get("scale") is None else float(data["scale"]),
        zero_point=None if data.get("zero_point") is None else int(data["zero_point"]),
    )


def _artifact_from_dict(data: Mapping[str, Any], source: str) -> Artifact:
    try:
        return Artifact(
            format=str(data["format"]),
            precision=str(data["precision"]),
            file=str(data["file"]),
            size_bytes=int(data["size_bytes"]),
            sha256=str(data["sha256"]),
            backend=str(data["backend"]),
            inputs=tuple(_tensor_from_dict(t) for t in data["inputs"]),
            outputs=tuple(_tensor_from_dict(t) for t in data["outputs"]),
            status=str(data.get("status", "passed")),
            op_versions=dict(data.get("op_versions") or {}),
            compatibility=dict(data.get("compatibility") or {}),
            validation=dict(data.get("validation") or {}),
            details=dict(data.get("details") or {}),
        )
    except (KeyError, TypeError, ValueError) as error:
        raise ManifestError(f"{source}: malformed artifact entry ({error!r})") from None


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_jsonable(v) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
