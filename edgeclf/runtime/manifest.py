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
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import Any

from edgeclf.runtime.compatibility import Compatibility, verdict_for
from edgeclf.runtime.errors import ManifestError
from edgeclf.runtime.fileio import atomic_write_text
from edgeclf.runtime.outcome import Status

# Version 2 added ``Artifact.runtimes``: each runtime's parity figures, so that a compatibility
# ``"ok"`` means "validated there with the full bounds". Version 1 manifests are still read (with no
# per-runtime figures); their compatibility entries meant "loads and gives the same top-1".
SCHEMA_VERSION = 2
READABLE_VERSIONS = (1, 2)
MANIFEST_NAME = "manifest.json"
LABELS_NAME = "labels.txt"
MODEL_NAME = "model.keras"
# A real manifest is a few kB; anything past this is not one (and is not read into memory).
MAX_MANIFEST_BYTES = 16 * 1024 * 1024

RESIZE_FILTERS = ("nearest", "bilinear", "bicubic", "lanczos", "box", "hamming")
# How an image of another aspect ratio reaches the model's: stretched to it ("squash"), centre-cropped
# to it ("crop") or fitted inside it with bars ("letterbox"). edgeclf/runtime/preprocess.py applies them;
# a manifest without the field predates the choice and was trained with "squash".
RESIZE_MODES = ("squash", "crop", "letterbox")
ACTIVATIONS = ("sigmoid", "softmax")

# The largest model input side accepted anywhere (manifest, --image-size). One 1024x1024 RGB input
# is 3.1 MB and ~21x the pixels (and convolution work) of 224x224; the presets use 150-300, and a
# Raspberry Pi classifying live frames wants 224 or less. A bigger side is almost surely a typo
# (`--image-size 100000` asked for 30 GB per decoded image and died by the OOM killer).
MAX_INPUT_SIDE = 1024

# Free-form sections (training, data, metrics, details…) nested deeper than this are refused: real
# ones are 3 levels deep, and a deeply nested payload only exists to exhaust the recursion limit.
MAX_NESTING = 16


@dataclass(frozen=True)
class InputSpec:
    """What every model of a run takes: a batch of ``height × width × channels`` uint8 RGB images.

    Rescaling to the network's range happens inside the graph (``normalization == "in-graph"``),
    so the runtime only decodes, converts to RGB and resizes with ``resize_filter``, fitting the
    aspect ratio the ``resize`` way (one of :data:`RESIZE_MODES`).
    """

    height: int
    width: int
    channels: int = 3
    dtype: str = "uint8"
    color_order: str = "RGB"
    resize_filter: str = "bilinear"
    normalization: str = "in-graph"
    resize: str = "squash"

    def __post_init__(self) -> None:
        for name in ("height", "width", "channels"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool):
                raise ManifestError(f"input {name} should be a whole number, got {value!r}")
        if not (1 <= self.height <= MAX_INPUT_SIDE and 1 <= self.width <= MAX_INPUT_SIDE):
            raise ManifestError(f"input size {self.height}x{self.width} is outside 1..{MAX_INPUT_SIDE} pixels a side")
        for name in ("dtype", "color_order", "resize_filter", "normalization", "resize"):
            if not isinstance(getattr(self, name), str):
                raise ManifestError(f"input {name} should be a string, got {getattr(self, name)!r}")
        if self.channels != 3:
            raise ManifestError(f"only 3-channel RGB inputs are supported, got {self.channels}")
        if self.resize_filter not in RESIZE_FILTERS:
            raise ManifestError(f"unknown resize filter {self.resize_filter!r}; known: {', '.join(RESIZE_FILTERS)}")
        if self.resize not in RESIZE_MODES:
            raise ManifestError(f"unknown resize mode {self.resize!r}; known: {', '.join(RESIZE_MODES)}")

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
class RuntimeCheck:
    """How one runtime ran an artifact on the export's validation images, against Keras.

    Attributes:
        runtime: the key used in ``Artifact.compatibility`` (``"litert"``, ``"tflite-runtime==2.14"``).
        status: :attr:`Status.PASSED` (every parity bound held), ``FAILED`` (a bound missed),
            ``ERROR`` (it did not load or run) or ``SKIPPED`` (not run: its runtime was not given);
            written as the member's text (``"passed"``…), and a text is turned into the member.
        metrics: agreement, max_abs_diff, accuracy_change, images… measured in that runtime.
        failures: one line per missed bound, measured value next to the bound.
        version: the runtime's package version.
        message: why it did not run, or how it was run.
    """

    runtime: str
    status: Status
    metrics: Mapping[str, Any] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    version: str = ""
    message: str = ""

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "status", Status(self.status))
        except ValueError:
            known = ", ".join(s.value for s in Status)
            raise ManifestError(f"runtime check status should be one of {known}, got {_short(self.status)}") from None

    @property
    def passed(self) -> bool:
        """True when the file ran there within every bound."""
        return self.status is Status.PASSED


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
    runtimes: tuple[RuntimeCheck, ...] = ()
    # This file's own "unknown" calibration, fitted on its own scores: a quantised output may never
    # reach the threshold fitted on the Keras scores (``Manifest.open_set``, kept for older files).
    open_set: OpenSet | None = None

    def compatibility_with(self, runtime: str) -> Compatibility | None:
        """The exporter's verdict for ``runtime`` (a backend name), or ``None`` when it recorded none."""
        return verdict_for(self.compatibility, runtime)


OPEN_SET_VERSION = 1


@dataclass(frozen=True)
class OpenSet:
    """Calibration for "none of the above" (``--threshold auto``), fitted at export (``edgeclf/runtime/open_set.py``).

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
        for label in self.labels:
            if not isinstance(label, str):
                raise ManifestError(f"labels should be a list of strings, got {list(self.labels)!r}")
            if not label:
                raise ManifestError("an empty label is not allowed; every label names a class")
            if any(ord(c) < 32 or ord(c) == 127 for c in label):
                # labels.txt holds one label a line; a newline would make it lie about the classes.
                raise ManifestError(f"label {label!r} holds a control character (newline, tab…); rename the class")
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
        """Validate and build a manifest; raise :class:`ManifestError` saying which field is wrong.

        Every field is type-checked here, the one parser: a manifest or an embedded payload may come
        with a model file from anyone. File names must stay inside the run folder.
        """
        if not isinstance(data, Mapping):
            raise ManifestError(f"{source}: expected a JSON object, got {type(data).__name__}")
        version = data.get("schema_version", SCHEMA_VERSION)
        if not isinstance(version, int) or isinstance(version, bool):
            raise ManifestError(
                f"{source}: schema_version should be a whole number, got {type(version).__name__} {version!r}"
            )
        if version not in READABLE_VERSIONS:
            raise ManifestError(
                f"{source}: schema_version {version} is not supported by this edgeclf "
                f"(it reads versions {', '.join(map(str, READABLE_VERSIONS))}); upgrade edgeclf or re-export the model"
            )
        labels = _require(data, "labels", list, source)
        if not all(isinstance(x, str) for x in labels):
            raise ManifestError(f"{source}: labels should be a list of strings, got {_short(labels)}")
        try:
            return cls(
                labels=tuple(labels),
                input=InputSpec(**_require(data, "input", Mapping, source)),
                output_activation=_require(data, "output_activation", str, source),
                preset=_optional(data, "preset", str, "unknown", source),
                model_file=_relative_file(_optional(data, "model_file", str, MODEL_NAME, source), "model_file", source),
                training=_section(data, "training", source),
                data=_section(data, "data", source),
                metrics=_section(data, "metrics", source),
                artifacts=tuple(_artifact_from_dict(a, source) for a in _optional(data, "artifacts", list, [], source)),
                schema_version=SCHEMA_VERSION,
                open_set=_open_set_from_dict(data.get("open_set"), source),
            )
        except TypeError as error:  # unknown or missing keyword in a nested section
            raise ManifestError(f"{source}: malformed entry ({error})") from None
        except ManifestError as error:
            message = str(error)
            raise ManifestError(message if message.startswith(source) else f"{source}: {message}") from None

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
            if not file.is_file():
                raise ManifestError(f"{file}: not a regular file; is {path} a run folder made by `edgeclf train`?")
            if file.stat().st_size > MAX_MANIFEST_BYTES:
                raise ManifestError(f"{file}: {file.stat().st_size} bytes, too big for a manifest; not an edgeclf run")
            data = parse_json(file.read_bytes())
        except OSError as error:
            raise ManifestError(f"{file}: cannot be read ({error.strerror or error})") from None
        except ValueError as error:
            raise ManifestError(f"{file}: not readable JSON ({error}); re-run `edgeclf train`") from None
        return cls.from_dict(data, source=str(file))

    def save(self, run_dir: str | Path) -> Path:
        """Write ``manifest.json`` and ``labels.txt`` into ``run_dir`` atomically; return the manifest path."""
        run_dir = Path(run_dir)
        atomic_write_text(run_dir / LABELS_NAME, "".join(f"{label}\n" for label in self.labels))
        target = run_dir / MANIFEST_NAME
        atomic_write_text(target, json.dumps(self.to_dict(), indent=2, sort_keys=False) + "\n")
        return target


def parse_json(raw: bytes) -> Any:
    """Parse untrusted JSON bytes; any failure is a ``ValueError`` (never ``RecursionError``…)."""
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as error:
        raise ValueError(f"not UTF-8 text ({error.reason} at byte {error.start})") from None
    except RecursionError:
        raise ValueError("nested too deeply") from None
    # json.JSONDecodeError and the integer digit limit (a 5,000-digit number) are ValueErrors already.


def run_file(run_dir: str | Path, name: str) -> Path:
    """The real path of the file ``name`` of a run folder, refused unless it lies inside the folder.

    ``name`` comes from a manifest (already checked to be relative and free of ``..``); this also
    follows symlinks, so a link from the run folder to a file elsewhere is refused too.

    Raises:
        ManifestError: the file resolves outside ``run_dir``.
    """
    root = Path(run_dir).resolve()
    target = (root / _relative_file(name, "file", str(run_dir))).resolve()
    if not target.is_relative_to(root):
        raise ManifestError(
            f"{Path(run_dir) / name}: resolves to a path outside the run folder; refused "
            "(a run's files must be real files inside the run folder)"
        )
    return target


def _relative_file(name: str, what: str, source: str) -> str:
    parts = PurePosixPath(name).parts
    if (
        not name
        or "\0" in name
        or "\\" in name
        or PurePosixPath(name).is_absolute()
        or PureWindowsPath(name).drive
        or ".." in parts
    ):
        raise ManifestError(
            f"{source}: {what} {name!r} must be a relative path inside the run folder (no '..', not absolute)"
        )
    return name


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _require(data: Mapping[str, Any], key: str, kind: type, source: str) -> Any:
    if key not in data:
        raise ManifestError(f"{source}: field {key!r} is missing")
    value = data[key]
    if not isinstance(value, kind):
        raise ManifestError(f"{source}: field {key!r} should be a {kind.__name__}, got {type(value).__name__}")
    return value


def _optional(data: Mapping[str, Any], key: str, kind: type, default: Any, source: str) -> Any:
    if data.get(key) is None:
        return default
    return _require(data, key, kind, source)


def _section(data: Mapping[str, Any], key: str, source: str, what: str = "") -> dict[str, Any]:
    """A free-form JSON object (``training``, ``metrics``…): must be an object, and not absurdly deep."""
    value = data.get(key)
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise ManifestError(f"{source}: {what}field {key!r} should be an object, got {type(value).__name__}")
    if _depth(value) > MAX_NESTING:
        raise ManifestError(f"{source}: {what}field {key!r} is nested more than {MAX_NESTING} levels deep")
    return dict(value)


def _depth(value: Any, level: int = 0) -> int:
    if level > MAX_NESTING:
        return level
    if isinstance(value, Mapping):
        return max((_depth(v, level + 1) for v in value.values()), default=level + 1)
    if isinstance(value, list):
        return max((_depth(v, level + 1) for v in value), default=level + 1)
    return level


def _number(data: Mapping[str, Any], key: str, kind: type) -> Any:
    value = data[key]
    allowed = (int, float) if kind is float else (int,)
    if not isinstance(value, allowed) or isinstance(value, bool):
        raise ManifestError(f"field {key!r} should be a {'number' if kind is float else 'whole number'}, got {value!r}")
    return kind(value)


def _open_set_from_dict(data: Any, source: str) -> OpenSet | None:
    if data is None:
        return None
    where = f"{source}: field 'open_set'"
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} should be an object, got {type(data).__name__}")
    version = data.get("version", OPEN_SET_VERSION)
    if version != OPEN_SET_VERSION:
        raise ManifestError(
            f"{source}: open_set version {_short(version)} is not supported (this edgeclf reads {OPEN_SET_VERSION}); "
            "upgrade edgeclf or re-export the model"
        )
    try:
        return OpenSet(
            temperature=_number(data, "temperature", float),
            threshold=None if data.get("threshold") is None else _number(data, "threshold", float),
            target_false_accept=(
                None if data.get("target_false_accept") is None else _number(data, "target_false_accept", float)
            ),
            measured=_section(data, "measured", where),
        )
    except ManifestError as error:
        raise ManifestError(f"{where}: {error}") from None
    except (KeyError, TypeError, ValueError, OverflowError) as error:
        raise ManifestError(f"{where} is malformed ({error!r})") from None


def _tensor_from_dict(data: Mapping[str, Any]) -> TensorInfo:
    if not isinstance(data, Mapping):
        raise ManifestError(f"a tensor entry should be an object, got {type(data).__name__}")
    shape = data["shape"]
    if not isinstance(shape, list) or not all(isinstance(x, int) and not isinstance(x, bool) for x in shape):
        raise ManifestError(f"tensor shape should be a list of whole numbers, got {_short(shape)}")
    return TensorInfo(
        name=_require(data, "name", str, "tensor"),
        dtype=_require(data, "dtype", str, "tensor"),
        shape=tuple(shape),
        scale=None if data.get("scale") is None else _number(data, "scale", float),
        zero_point=None if data.get("zero_point") is None else _number(data, "zero_point", int),
    )


def _artifact_from_dict(data: Mapping[str, Any], source: str) -> Artifact:
    where = f"{source}: artifact entry"
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} should be an object, got {type(data).__name__}")
    try:
        sha256 = _require(data, "sha256", str, where)
        if len(sha256) != 64 or any(c not in "0123456789abcdef" for c in sha256):
            raise ManifestError(f"{where}: sha256 should be 64 lower-case hex digits, got {_short(sha256)}")
        for key in ("inputs", "outputs"):
            _require(data, key, list, where)
        return Artifact(
            format=_require(data, "format", str, where),
            precision=_require(data, "precision", str, where),
            file=_relative_file(_require(data, "file", str, where), "file", where),
            size_bytes=_number(data, "size_bytes", int),
            sha256=sha256,
            backend=_require(data, "backend", str, where),
            inputs=tuple(_tensor_from_dict(t) for t in data["inputs"]),
            outputs=tuple(_tensor_from_dict(t) for t in data["outputs"]),
            status=_optional(data, "status", str, "passed", where),
            op_versions=_section(data, "op_versions", where),
            compatibility=_compatibility(data, where),
            validation=_section(data, "validation", where),
            details=_section(data, "details", where),
            runtimes=tuple(_runtime_check_from_dict(r, where) for r in _optional(data, "runtimes", list, [], where)),
            open_set=_open_set_from_dict(data.get("open_set"), where),
        )
    except ManifestError as error:
        message = str(error)
        raise ManifestError(message if message.startswith(source) else f"{where}: {message}") from None
    except (KeyError, TypeError, ValueError, AttributeError) as error:
        raise ManifestError(f"{where} is malformed ({error!r})") from None


def _compatibility(data: Mapping[str, Any], where: str) -> dict[str, str]:
    """``compatibility``: runtime (optionally ``==version``) → ``"ok"`` or a one-line reason, all strings."""
    entries = _section(data, "compatibility", where)
    for key, verdict in entries.items():
        if not isinstance(verdict, str):
            raise ManifestError(
                f"{where}: compatibility[{_short(key)}] should be 'ok' or a reason, got {type(verdict).__name__}"
            )
    return entries


def _runtime_check_from_dict(data: Any, where: str) -> RuntimeCheck:
    where = f"{where}: runtime check"
    if not isinstance(data, Mapping):
        raise ManifestError(f"{where} should be an object, got {type(data).__name__}")
    failures = _optional(data, "failures", list, [], where)
    if not all(isinstance(f, str) for f in failures):
        raise ManifestError(f"{where}: failures should be a list of strings")
    return RuntimeCheck(
        runtime=_require(data, "runtime", str, where),
        status=_require(data, "status", str, where),
        metrics=_section(data, "metrics", where),
        failures=tuple(failures),
        version=_optional(data, "version", str, "", where),
        message=_optional(data, "message", str, "", where),
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)):
        return [_jsonable(v) for v in value]
    if isinstance(value, Status):  # the member's text, so to_dict() holds only JSON's own types
        return value.value
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    return value
