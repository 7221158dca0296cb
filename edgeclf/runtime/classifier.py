"""Classify images with an exported model: numpy, Pillow and one interpreter.

>>> from edgeclf.runtime.classifier import Classifier
>>> with Classifier.from_run("runs/latest", format="tflite-int8") as clf:   # doctest: +SKIP
...     clf.classify("photo.jpg", top_k=2)
[Prediction(label='cars', index=0, score=0.93), Prediction(label='elephants', index=1, score=0.07)]

The model is checked against its manifest when it is loaded (sha256 of the file, input shape and
dtype, output width vs labels, quantisation read back at export); any difference is refused with
one line saying what differs. Inputs are quantised with the interpreter's own scale and zero point
(rounded, clipped to the dtype's range); outputs are dequantised; a sigmoid output becomes the two
scores ``[1 - p, p]`` and a softmax output is used as is, so :meth:`Classifier.scores` always
returns one probability per label.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.runtime.backends import BACKENDS, Session, backend_for, get_backend
from edgeclf.runtime.backends.base import check_threads
from edgeclf.runtime.embedded import read_embedded_manifest
from edgeclf.runtime.errors import (
    BackendUnavailableError,
    EdgeclfError,
    InputShapeError,
    ManifestError,
    ModelLoadError,
    option_error,
)
from edgeclf.runtime.fileio import sha256_file
from edgeclf.runtime.manifest import MANIFEST_NAME, Artifact, InputSpec, Manifest, OpenSet, TensorInfo, run_file
from edgeclf.runtime.metrics import to_scores
from edgeclf.runtime.open_set import UNKNOWN_LABEL, calibrated
from edgeclf.runtime.preprocess import DEFAULT_MAX_PIXELS, ImageSource, preprocess

# Which artifact a run folder uses when no format is asked for: the Pi-friendly int8 first.
FORMAT_PREFERENCE = ("tflite-int8", "tflite-fp32", "tflite-fp16", "tflite-dynamic", "onnx-fp32", "onnx-int8")


@dataclass(frozen=True)
class Prediction:
    """One label of one image, with its probability."""

    label: str
    index: int
    score: float

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"label", "index", "score"}``."""
        return asdict(self)


@dataclass(frozen=True)
class ClassifierOptions:
    """How to load and query a model (built by the CLI, saved or printed as is).

    Attributes:
        format: artifact format in a run folder (``tflite-int8``…); ``None`` picks the first
            exported one in :data:`FORMAT_PREFERENCE` that an installed backend runs.
        backend: force a backend (``litert``, ``tflite-runtime``, ``onnxruntime``); ``None`` uses
            the artifact's, or another installed one for the same file type.
        threads: interpreter threads; ``None`` means all cores.
        top_k: how many labels :meth:`Classifier.classify` returns.
        threshold: drop labels scoring below this.
        unknown: ``--threshold auto``: use the manifest's open-set calibration (temperature-scaled
            scores) and answer ``unknown`` below its threshold.
        verify: check the file's sha256 against the manifest when loading.
        draft: let Pillow decode big JPEGs at reduced scale (see :func:`preprocess`).
        max_pixels: refuse images with more pixels than this (see :data:`DEFAULT_MAX_PIXELS`).
    """

    format: str | None = None
    backend: str | None = None
    threads: int | None = None
    top_k: int = 1
    threshold: float = 0.0
    verify: bool = True
    draft: bool = True
    max_pixels: int = DEFAULT_MAX_PIXELS
    unknown: bool = False

    def __post_init__(self) -> None:
        if self.top_k < 1:
            raise option_error("--top-k", "at least 1", self.top_k)
        if not 0.0 <= self.threshold <= 1.0:
            raise option_error("--threshold", "a probability between 0 and 1", self.threshold)
        if self.threads is not None:
            check_threads(self.threads)  # 1..4x the cores: refused before any model is loaded
        if isinstance(self.max_pixels, bool) or not isinstance(self.max_pixels, int) or self.max_pixels < 1:
            raise option_error("--max-megapixels", "a positive pixel limit", self.max_pixels)
        if self.backend is not None:
            get_backend(self.backend)  # unknown name -> error listing the known ones


# -- the numeric core (module-level so it is testable without a model) ----------------------------


def quantize(values: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Turn 0–255 pixel values into ``tensor``'s dtype using its own scale and zero point.

    ``q = round(x / scale + zero_point)`` clipped to the dtype's range (round half to even, as
    numpy and TFLite's reference quantiser do). An unquantised integer tensor takes the values
    clipped as they are; a float tensor takes them as floats.
    """
    dtype = np.dtype(tensor.dtype)
    values = np.asarray(values)
    if dtype.kind == "f":
        return values.astype(dtype)
    if tensor.quantized:
        real = values.astype(np.float32) / np.float32(tensor.scale) + np.float32(tensor.zero_point or 0)
        real = np.rint(real)
    elif values.dtype == dtype:
        return values
    else:
        real = values
    info = np.iinfo(dtype)
    return np.clip(real, info.min, info.max).astype(dtype)


def dequantize(raw: np.ndarray, tensor: TensorInfo) -> np.ndarray:
    """Real values (float32) of an output tensor: ``(q - zero_point) * scale`` when quantised."""
    raw = np.asarray(raw)
    if tensor.quantized:
        return ((raw.astype(np.float32) - np.float32(tensor.zero_point or 0)) * np.float32(tensor.scale)).astype(
            np.float32
        )
    return raw.astype(np.float32)


def top_predictions(
    scores: np.ndarray, labels: Sequence[str], top_k: int = 1, threshold: float = 0.0
) -> list[Prediction]:
    """The ``top_k`` best labels of one image's scores, best first, dropping those below ``threshold``."""
    scores = np.asarray(scores, dtype=np.float32).ravel()
    # Stable sort on the negated scores: ties keep label order, so output is deterministic.
    order = np.argsort(-scores, kind="stable")[:top_k]
    return [Prediction(labels[i], int(i), float(scores[i])) for i in order if scores[i] >= threshold]


# -- loading -------------------------------------------------------------------------------------


def compatibility_problem(artifact: Artifact | None, backend_name: str) -> str | None:
    """The exporter's reason why ``backend_name`` cannot load this artifact, if it recorded one.

    ``Artifact.compatibility`` maps a backend name (optionally with a version, e.g.
    ``"tflite-runtime==2.14"``) to ``"ok"`` or to a one-line reason (:mod:`edgeclf.runtime.compatibility`).
    """
    entry = artifact.compatibility_with(backend_name) if artifact is not None else None
    return entry.problem() if entry is not None else None


def _same_scale(a: float | None, b: float | None) -> bool:
    if a is None or b is None:
        return a == b
    return math.isclose(a, b, rel_tol=1e-6, abs_tol=1e-12)


def _describe(tensor: TensorInfo) -> str:
    quant = f", scale {tensor.scale:g}, zero point {tensor.zero_point}" if tensor.quantized else ""
    return f"{tensor.dtype} {list(tensor.shape)}{quant}"


def verify_session(session: Session, manifest: Manifest, artifact: Artifact | None, path: Path) -> None:
    """Refuse a model whose tensors do not match its manifest, with one line saying what differs.

    Raises:
        ManifestError: input count, input shape or dtype, output width, or the quantisation the
            exporter recorded differs from what the interpreter reports.
    """
    spec = manifest.input
    if len(session.inputs) != 1 or not session.outputs:
        raise ManifestError(
            f"{path}: model has {len(session.inputs)} inputs and {len(session.outputs)} outputs; "
            "an edgeclf classifier has one image input and one score output"
        )
    inp, out = session.inputs[0], session.outputs[0]
    if len(inp.shape) != 4 or tuple(inp.shape[1:]) != spec.shape:
        raise ManifestError(
            f"{path}: model input shape {list(inp.shape)} differs from the manifest's "
            f"{spec.height}x{spec.width}x{spec.channels} (N, H, W, C); wrong manifest or wrong file"
        )
    if np.dtype(inp.dtype).kind not in "uif":
        raise ManifestError(f"{path}: model input dtype {inp.dtype} is not an image tensor dtype")
    width = out.shape[-1] if out.shape else 1
    if width != manifest.num_outputs:
        raise ManifestError(
            f"{path}: model output has {width} values but the manifest has {len(manifest.labels)} labels with "
            f"a {manifest.output_activation} output (expects {manifest.num_outputs}); wrong manifest or wrong file"
        )
    if artifact is None:
        return
    for role, recorded, actual in (("input", artifact.inputs, inp), ("output", artifact.outputs, out)):
        if not recorded:
            continue
        expected = recorded[0]
        if (
            expected.dtype != actual.dtype
            or not _same_scale(expected.scale, actual.scale)
            or (expected.quantized and expected.zero_point != actual.zero_point)
        ):
            raise ManifestError(
                f"{path}: model {role} is {_describe(actual)} but the manifest recorded {_describe(expected)}; "
                "re-run `edgeclf export`"
            )


def _choose_artifact(manifest: Manifest, run_dir: Path, backend: str | None) -> Artifact:
    if not manifest.artifacts:
        raise ManifestError(f"{run_dir}: no exported model files in this run; run `edgeclf export {run_dir}` first")
    ranked = sorted(
        manifest.artifacts,
        key=lambda a: FORMAT_PREFERENCE.index(a.format) if a.format in FORMAT_PREFERENCE else len(FORMAT_PREFERENCE),
    )
    usable = [a for a in ranked if a.status == "passed" and run_file(run_dir, a.file).is_file()]
    if backend is not None:
        usable = [a for a in usable if Path(a.file).suffix.lower() in get_backend(backend).suffixes]
    for artifact in usable:
        try:
            chosen = get_backend(backend) if backend else backend_for(artifact.file, artifact.backend)
        except BackendUnavailableError:
            continue
        if chosen.available() and compatibility_problem(artifact, chosen.name) is None:
            return artifact
    if usable:  # files exist but no installed backend runs them: loading it names what to install
        return usable[0]
    formats = ", ".join(f"{a.format} ({a.status})" for a in manifest.artifacts)
    raise ManifestError(f"{run_dir}: no usable exported model ({formats}); run `edgeclf export {run_dir}`")


class Classifier:
    """A loaded model plus its manifest: images in, per-label probabilities out.

    Build one with :meth:`from_run` (a run folder), :meth:`from_file` (one model file carrying
    embedded metadata) or :meth:`open` (either, from a path and :class:`ClassifierOptions`).
    Usable as a context manager; :meth:`close` releases the interpreter.
    """

    def __init__(
        self,
        session: Session,
        manifest: Manifest,
        artifact: Artifact | None = None,
        options: ClassifierOptions | None = None,
    ) -> None:
        self.session = session
        self.manifest = manifest
        self.artifact = artifact
        self.options = options or ClassifierOptions()
        self.path = Path(session.path)
        verify_session(session, manifest, artifact, self.path)
        if self.options.unknown and self.open_set is None:
            raise EdgeclfError(
                f"{self.path}: --threshold auto needs the threshold fitted at export; run `edgeclf export RUN "
                "--unknown-data DIR` with photos of other kinds"
            )
        self._input = session.inputs[0]
        self._output = session.outputs[0]

    # -- construction --------------------------------------------------------------------------

    @classmethod
    def from_run(
        cls,
        run_dir: str | Path,
        format: str | None = None,
        backend: str | None = None,
        threads: int | None = None,
        *,
        options: ClassifierOptions | None = None,
    ) -> Classifier:
        """Load the artifact of ``format`` from a run folder and check it against ``manifest.json``.

        Raises:
            ManifestError: no such format, the file is missing, or it differs from the manifest.
            BackendUnavailableError: no installed interpreter runs the file (says what to install).
            ModelLoadError: the interpreter cannot load the file.
        """
        options = options or ClassifierOptions(format=format, backend=backend, threads=threads)
        run_dir = Path(run_dir)
        manifest = Manifest.load(run_dir)
        if options.format is None:
            artifact = _choose_artifact(manifest, run_dir, options.backend)
        else:
            artifact = manifest.artifact(options.format)
        return cls._load(run_file(run_dir, artifact.file), manifest, artifact, options)

    @classmethod
    def from_file(
        cls,
        path: str | Path,
        backend: str | None = None,
        threads: int | None = None,
        *,
        options: ClassifierOptions | None = None,
    ) -> Classifier:
        """Load one model file. Its manifest is the run's ``manifest.json`` beside it when that lists
        the file (then its sha256 is checked too), else the metadata embedded in the file.

        Raises:
            ManifestError: the file has neither embedded metadata nor a manifest beside it.
        """
        options = options or ClassifierOptions(backend=backend, threads=threads)
        path = Path(path)
        if not path.is_file():
            raise ModelLoadError(f"{path}: no such model file")
        sibling = path.parent / MANIFEST_NAME
        if sibling.is_file():
            run_manifest = Manifest.load(sibling)
            for artifact in run_manifest.artifacts:
                if artifact.file == path.name:
                    return cls._load(path, run_manifest, artifact, options)
        manifest = read_embedded_manifest(path)
        if manifest is None:
            raise ManifestError(
                f"{path}: carries no edgeclf metadata and no manifest.json beside it lists it; "
                "use a file made by `edgeclf export` or pass its run folder"
            )
        return cls._load(path, manifest, None, options)

    @classmethod
    def open(cls, model_or_run: str | Path, options: ClassifierOptions | None = None) -> Classifier:
        """:meth:`from_run` for a folder, :meth:`from_file` for a file."""
        options = options or ClassifierOptions()
        target = Path(model_or_run)
        if target.is_dir():
            return cls.from_run(target, options=options)
        if not target.exists():
            raise ModelLoadError(f"{target}: no such run folder or model file")
        if options.format is not None:
            raise ManifestError(f"{target}: --format picks a file inside a run folder; pass the run folder instead")
        suffixes = sorted({s for b in BACKENDS.values() for s in b.suffixes})
        if target.suffix.lower() not in suffixes:
            raise ModelLoadError(
                f"{target}: not an exported model ({' or '.join(suffixes)}); run `edgeclf export` on its run "
                "folder and pass the run folder or one of its exported files"
            )
        return cls.from_file(target, options=options)

    @classmethod
    def _load(cls, path: Path, manifest: Manifest, artifact: Artifact | None, options: ClassifierOptions) -> Classifier:
        if not path.is_file():
            raise ManifestError(f"{path}: listed in the manifest but missing; re-run `edgeclf export`")
        if options.verify and artifact is not None:
            actual = sha256_file(path)
            if actual != artifact.sha256:
                raise ManifestError(
                    f"{path}: sha256 {actual[:12]}… differs from the manifest's {artifact.sha256[:12]}… "
                    "(the file changed after export); re-run `edgeclf export` or copy the file again"
                )
        if options.backend is not None:
            backend = get_backend(options.backend)
            if path.suffix.lower() not in backend.suffixes:
                known = "; ".join(f"{b.name}: {' '.join(b.suffixes)}" for b in BACKENDS.values())
                raise ModelLoadError(
                    f"{path}: backend {backend.name} does not run {path.suffix or 'this'} files ({known})"
                )
        else:
            backend = backend_for(path, artifact.backend if artifact else None)
        problem = compatibility_problem(artifact, backend.name)
        if problem is not None:
            raise ModelLoadError(
                f"{path}: the exporter found this file incompatible with {backend.name} ({problem}); "
                "use another format or re-export for that runtime"
            )
        session = backend.load(path, threads=options.threads)
        return cls(session, manifest, artifact, options)

    # -- properties ----------------------------------------------------------------------------

    @property
    def labels(self) -> tuple[str, ...]:
        """Labels in output order."""
        return self.manifest.labels

    @property
    def spec(self) -> InputSpec:
        """The model's input spec (size, resize filter)."""
        return self.manifest.input

    @property
    def backend_name(self) -> str:
        """Name of the backend running the model."""
        return self.session.backend_name

    @property
    def format(self) -> str:
        """The artifact's format, or the file suffix when loaded from a bare file."""
        return self.artifact.format if self.artifact else self.path.suffix.lstrip(".")

    # -- the pipeline, step by step (benchmarks time each) -------------------------------------

    def preprocess(self, source: ImageSource, color_order: str = "RGB") -> np.ndarray:
        """One image (path, bytes, PIL image or frame) → ``(H, W, 3)`` uint8 RGB via :func:`preprocess`."""
        return preprocess(
            source, self.spec, color_order=color_order, draft=self.options.draft, max_pixels=self.options.max_pixels
        )

    def prepare(self, batch: np.ndarray) -> np.ndarray:
        """Check a uint8 ``(N, H, W, 3)`` (or one ``(H, W, 3)``) batch and quantise it for the input tensor."""
        batch = np.asarray(batch)
        if batch.ndim == 3:
            batch = batch[None]
        if batch.dtype != np.uint8:
            raise InputShapeError("image batch dtype", "uint8 (0-255 RGB)", str(batch.dtype))
        if batch.ndim != 4 or tuple(batch.shape[1:]) != self.spec.shape:
            raise InputShapeError("image batch shape", ("N", *self.spec.shape), batch.shape)
        return quantize(batch, self._input)

    def postprocess(self, raw: np.ndarray) -> np.ndarray:
        """Raw output tensor → ``(N, num_labels)`` float32 probabilities."""
        return to_scores(dequantize(raw, self._output), self.manifest.output_activation)

    def scores(self, batch: np.ndarray) -> np.ndarray:
        """Per-label probabilities ``(N, num_labels)`` of a uint8 RGB batch ``(N, H, W, 3)``."""
        return self.postprocess(self.session.run(self.prepare(batch)))

    def classify(
        self,
        source: ImageSource,
        top_k: int | None = None,
        threshold: float | None = None,
        *,
        color_order: str = "RGB",
    ) -> list[Prediction]:
        """The best labels of one image, file or frame, best first.

        Args:
            source: a path, encoded bytes, a ``PIL.Image`` or a ``H×W×C`` uint8 frame.
            top_k: how many labels (default: the options').
            threshold: drop labels below this probability (default: the options').
            color_order: channel order of a numpy frame (``"BGR"`` for OpenCV).

        Raises:
            ImageDecodeError: the file is not a readable image.
            InputShapeError: a frame has an unsupported shape, dtype or channel order.
        """
        scores = self.scores(self.preprocess(source, color_order=color_order))[0]
        return self.predictions(scores, top_k, threshold)

    def predictions(
        self, scores: np.ndarray, top_k: int | None = None, threshold: float | None = None
    ) -> list[Prediction]:
        """One image's scores → its best labels; with ``options.unknown``, ``unknown`` below the fitted threshold.

        With ``unknown`` the scores are the temperature-scaled ones the threshold was fitted on.
        """
        top_k = self.options.top_k if top_k is None else top_k
        threshold = self.options.threshold if threshold is None else threshold
        open_set = self.open_set
        if self.options.unknown and open_set is not None:
            scores = calibrated(np.asarray(scores)[None], self.manifest.output_activation, open_set.temperature)[0]
            if float(scores.max()) < open_set.threshold:
                return [Prediction(UNKNOWN_LABEL, -1, float(scores.max()))]
        return top_predictions(scores, self.labels, top_k, threshold)

    @property
    def open_set(self) -> OpenSet | None:
        """The "unknown" calibration ``--threshold auto`` uses: the loaded file's own (fitted on its
        own scores at export) when the manifest records one, else the manifest's (fitted on the Keras
        scores, all older manifests have); ``None`` when no threshold was fitted."""
        own = self.artifact.open_set if self.artifact is not None else None
        for candidate in (own, self.manifest.open_set):
            if candidate is not None and candidate.threshold is not None:
                return candidate
        return None

    # -- lifetime ------------------------------------------------------------------------------

    def close(self) -> None:
        """Release the interpreter."""
        self.session.close()

    def __enter__(self) -> Classifier:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"Classifier({str(self.path)!r}, format={self.format!r}, backend={self.backend_name!r})"
