"""``export_run``: convert a run's Keras model to every requested format and prove each file still
classifies like it.

For each format: convert (embedding the manifest), write into a private staging folder inside the
run folder, load the staged file with its real runtime through :class:`edgeclf.runtime.classifier.Classifier`,
compare it with the Keras model on the same preprocessed validation images, read back its tensors,
operator versions and compatibility, and only then move it under its final name and record it in
``manifest.json`` (saved atomically). A file that fails its parity bounds is not written unless
``strict`` is off (then it is written and marked ``failed``). Every check of the inputs (run folder,
model vs manifest, formats, writable folder, calibration and validation images) happens before the
first conversion, so a bad input leaves nothing behind.
"""

from __future__ import annotations

import dataclasses
import importlib.metadata
import json
import os
import random
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.exporter.class_parity import weakest_class_line
from edgeclf.exporter.config import ExportConfig
from edgeclf.exporter.context import TARGETS, ConversionContext
from edgeclf.exporter.formats import (
    Calibration,
    Converted,
    ExportFormat,
    Inspection,
    all_formats,
    apply_variant,
    get_format,
)
from edgeclf.exporter.open_set_fit import extreme_scores, fit_on_scores, load_unknown, unreachable_warning
from edgeclf.exporter.parity import Reference, keras_scores
from edgeclf.exporter.probes import embed_entries, embed_probes, record_probes
from edgeclf.kerasio import load_run_model
from edgeclf.runtime.compatibility import verdict_for
from edgeclf.runtime.dataset import (
    LoadedImages,
    Sample,
    list_images,
    load_samples,
    open_labelled_folder,
    reopen_from_manifest,
)
from edgeclf.runtime.errors import DatasetError, EdgeclfError, ExportError
from edgeclf.runtime.fileio import atomic_write_text, sha256_file
from edgeclf.runtime.manifest import Artifact, Manifest, RuntimeCheck
from edgeclf.runtime.outcome import Status
from edgeclf.runtime.probes import DEFAULT_PROBES, pick_probe_indices
from edgeclf.runtime.progress import track
from edgeclf.runtime.runlock import run_lock

REPORT_NAME = "export_report.json"
# Private staging folders inside the run folder; removed at the end, or by the next export if killed.
STAGING_PREFIX = ".export-"
CONFIG_NAME = "export_config.json"

INT8_HINT = (
    "to improve an int8 file: calibrate on photos like the ones it will see (--calibration-data DIR), "
    "or train longer; the quantisation remedies were tried already"
)


@dataclass(frozen=True)
class FormatResult:
    """The outcome of one format: ``passed``, ``failed`` (outside its bounds), ``refused`` (cannot be
    made for ``--target``) or ``error`` (conversion or loading failed).

    ``variant`` is the quantisation variant kept, ``attempts`` what each variant tried measured, and
    ``runtimes`` the parity figures in each runtime the file was validated in.
    """

    format: str
    status: Status
    file: str | None = None
    size_bytes: int | None = None
    seconds: float = 0.0
    validation: dict[str, Any] = field(default_factory=dict)
    failures: tuple[str, ...] = ()
    message: str = ""
    compatibility: dict[str, str] = field(default_factory=dict)
    variant: str | None = None
    attempts: tuple[dict[str, Any], ...] = ()
    runtimes: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        """True when the file was written and passed."""
        return self.status is Status.PASSED

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        data = dataclasses.asdict(self)
        data["failures"] = list(self.failures)
        data["attempts"] = list(self.attempts)
        return data


@dataclass(frozen=True)
class ExportReport:
    """What :func:`export_run` did, per format; also written as ``export_report.json``."""

    run_dir: Path
    results: tuple[FormatResult, ...]
    seconds: float
    config: dict[str, Any]
    validation_source: str = ""
    validation_count: int = 0
    keras_accuracy: float | None = None
    calibration_count: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def ok(self) -> bool:
        """True when every requested format was written and passed."""
        return all(r.ok for r in self.results)

    @property
    def exit_code(self) -> int:
        """0 when all passed (or only bound failures under ``strict=False``), else 1."""
        if self.ok:
            return 0
        lenient = not self.config.get("strict", True)
        return 0 if lenient and all(r.status.made for r in self.results) else 1

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "run_dir": str(self.run_dir),
            "ok": self.ok,
            "seconds": round(self.seconds, 3),
            "validation": {
                "source": self.validation_source,
                "images": self.validation_count,
                "keras_accuracy": self.keras_accuracy,
            },
            "calibration_images": self.calibration_count,
            "results": [r.to_dict() for r in self.results],
            "warnings": list(self.warnings),
            "config": self.config,
        }


def _stderr(message: str) -> None:
    print(message, file=sys.stderr)


# -- checks of the inputs -----------------------------------------------------------------------


def _resolve_formats(names: Sequence[str]) -> list[ExportFormat]:
    if not names:
        return list(all_formats().values())
    seen: dict[str, ExportFormat] = {}
    for name in names:
        seen.setdefault(name, get_format(name))
    return list(seen.values())


def _check_writable(run_dir: Path) -> None:
    try:
        with tempfile.NamedTemporaryFile(dir=run_dir, prefix=".write-test-", suffix=".partial"):
            pass
    except OSError as error:
        raise ExportError(
            f"{run_dir}: cannot write into the run folder ({error.strerror or error}); "
            "fix its permissions or copy the run somewhere writable"
        ) from None


def _sample(items: Sequence[Sample], count: int, seed: int) -> list[Sample]:
    items = list(items)
    if len(items) <= count:
        return items
    return sorted(random.Random(seed).sample(items, count), key=lambda s: (s.label, str(s.path)))


def _report_failed(loaded: LoadedImages, what: str, warn: Callable[[str], None]) -> None:
    for error in loaded.failed:
        warn(f"warning: skipped a {what} image: {error}")


# Fewer validation images than this are topped up from the test split when there is one.
MIN_VALIDATION_IMAGES = 200


def _validation_images(
    config: ExportConfig, manifest: Manifest, warn: Callable[[str], None]
) -> tuple[LoadedImages, str]:
    if config.validate_on is not None:
        # A folder of classes is used whole; a train/validation[/test] folder gives its validation split.
        folder = open_labelled_folder(config.validate_on, fractions=(0.0, 1.0, 0.0), labels=manifest.labels)
        source = f"{config.validate_on} ({'all images' if folder.layout == 'classes' else 'validation split'})"
    else:
        folder = reopen_from_manifest(dict(manifest.data), manifest.labels)
        source = f"{folder.root} (validation split of the training run)"
    samples = _sample(folder.split("validation"), config.validation_images, config.calibration_seed)
    if len(samples) < MIN_VALIDATION_IMAGES and folder.split("test"):
        # At least 200 images (or all there are): with the seed's 80 per class, one flipped image
        # moves accuracy by 0.6 points, too coarse for a 1-point bound. The test split is held out
        # from training too, so it tops the sample up (to --validation-images at most).
        wanted = config.validation_images - len(samples)
        samples = samples + _sample(folder.split("test"), wanted, config.calibration_seed)
        source = source.replace("validation split", "validation + test splits")
    if not samples:
        raise DatasetError(f"{source}: no validation images; pass --validate-on DIR with one subfolder per class")
    loaded = load_samples(samples, manifest.input)
    _report_failed(loaded, "validation", warn)
    if len(loaded.images) == 0:
        raise DatasetError(f"{source}: none of the {len(samples)} validation images could be read")
    return loaded, source


def _calibration_loader(
    config: ExportConfig, manifest: Manifest, warn: Callable[[str], None]
) -> Callable[[int | None], np.ndarray]:
    calibration = Calibration(config.calibration_images, config.calibration_seed, config.calibration_data)

    warned: set[int] = set()

    def load(count: int | None = None) -> np.ndarray:
        if calibration.folder is not None:
            folder = Path(calibration.folder)
            if not folder.is_dir():
                raise DatasetError(f"{folder}: no such calibration folder; pass --calibration-data DIR of images")
            images, _ = list_images(folder)
            samples = [Sample(path, 0) for path in images]
            where = str(folder)
        else:
            split = reopen_from_manifest(dict(manifest.data), manifest.labels)
            samples = list(split.split("train"))
            where = f"{split.root} (training split)"
        chosen = _sample(samples, count or calibration.images, calibration.seed)
        loaded = load_samples(chosen, manifest.input)
        _report_failed(loaded, "calibration", warn)
        if len(loaded.images) == 0:
            raise DatasetError(
                f"{where}: no readable calibration images (found {len(samples)} image files); "
                "pass --calibration-data DIR with photos like the ones the model will see"
            )
        if len(loaded.images) < Calibration.WARN_BELOW and len(loaded.images) not in warned:
            warned.add(len(loaded.images))
            warn(
                f"warning: only {len(loaded.images)} calibration images from {where}; int8 ranges from fewer than "
                f"{Calibration.WARN_BELOW} images may clip (add images or pass --calibration-data DIR)"
            )
        return loaded.images

    return load


def _default_tflite_runtime_python() -> Path | None:
    candidate = os.environ.get("EDGECLF_TFLITE_RUNTIME_PYTHON")
    if candidate:
        return Path(candidate)
    local = Path(".venv-tflite214/bin/python")
    return local.absolute() if local.is_file() else None  # not resolve(): a venv python is a symlink


def _tflite_runtime_python(
    config: ExportConfig, selected: Sequence[ExportFormat], warn: Callable[[str], None]
) -> Path | None:
    """The Python that verifies .tflite files with tflite-runtime 2.14, checked once up front.

    One given with ``--tflite-runtime-python`` must work (else an error); the automatic one
    (``$EDGECLF_TFLITE_RUNTIME_PYTHON`` or ``.venv-tflite214``) falls back to the static check with
    a warning, so a half-installed venv never makes a file look incompatible.
    """
    from edgeclf.exporter.tflite import check_tflite_runtime_python

    if not any(f.suffix == ".tflite" for f in selected):
        return None
    python = config.tflite_runtime_python or _default_tflite_runtime_python()
    if python is None:
        return None
    python = Path(python)
    problem = "no such file" if not python.is_file() else check_tflite_runtime_python(python)
    if problem is None:
        return python
    if config.tflite_runtime_python is not None:
        raise ExportError(
            f"{python}: cannot verify with tflite-runtime 2.14 ({problem}); it needs "
            "tflite-runtime==2.14.0, 'numpy<2' and pillow"
        )
    warn(f"warning: {python} cannot run tflite-runtime 2.14 ({problem}); checking operator versions only")
    return None


# -- the comparison -----------------------------------------------------------------------------


# -- the export ---------------------------------------------------------------------------------


@dataclass
class _Attempt:
    """One variant of a format: converted, staged and validated (or the error it raised)."""

    variant: str
    fmt: ExportFormat
    converted: Converted | None = None
    staged: Path | None = None
    inputs: tuple = ()
    outputs: tuple = ()
    metrics: dict[str, Any] = field(default_factory=dict)
    failures: list[str] = field(default_factory=list)
    inspection: Inspection | None = None
    error: str = ""
    scores: np.ndarray | None = None

    @property
    def passed(self) -> bool:
        """Within every bound with the format's own runtime."""
        return self.converted is not None and not self.failures

    @property
    def passed_everywhere(self) -> bool:
        """Within every bound in every runtime it was validated in."""
        runtimes = self.inspection.runtimes if self.inspection else ()
        return self.passed and all(r.status in (Status.PASSED, Status.SKIPPED) for r in runtimes)

    def record(self) -> dict[str, Any]:
        """What the manifest and the report say about this attempt."""
        if self.error:
            return {"variant": self.variant, "error": self.error}
        keys = ("agreement", "max_abs_diff", "accuracy_change", "images")
        out = {"variant": self.variant, **{k: self.metrics[k] for k in keys}, "failures": list(self.failures)}
        for check in self.inspection.runtimes if self.inspection else ():
            out[check.runtime] = (
                check.status if check.passed else f"{check.status}: {'; '.join(check.failures) or check.message}"
            )
        return out


def _variant_formats(
    fmt: ExportFormat, ctx: ConversionContext, config: ExportConfig
) -> Iterator[tuple[str, ExportFormat]]:
    """The format under each of its variants, in order, without the ones that would make the same file.

    Two variants are the same when they resolve to the same preset and, for int8, to the same
    calibration images (asking for 1000 of a 400-image training split gives the same 400 as 500
    would). Lazy: a variant's images are loaded only when the ones before it did not pass.
    """
    calibration = Calibration(config.calibration_images, config.calibration_seed, config.calibration_data)
    seen = set()
    for variant in fmt.variants:
        quant = apply_variant(fmt.quantization, variant, calibration)
        count = len(ctx.calibration_images(quant.calibration.images)) if quant.needs_calibration else 0
        key = (quant.kind, quant.per_channel, quant.method, quant.float_ends, count)
        if key not in seen:
            seen.add(key)
            yield variant.name, dataclasses.replace(fmt, quantization=quant)


def _attempt(name: str, fmt: ExportFormat, ctx: ConversionContext, staging: Path, reference: Reference) -> _Attempt:
    """Convert ``fmt``, stage the file, run it through the runtime's own Classifier and judge it."""
    from edgeclf.runtime.classifier import Classifier

    converted = fmt.export(ctx, fmt)
    staged = staging / f"{name}.{fmt.file_name}"
    staged.write_bytes(converted.data)
    # Through the runtime's own classifier and the metadata embedded in the file: the same path a Pi takes.
    with Classifier.from_file(staged, backend=fmt.backend) as classifier:
        inputs, outputs = classifier.session.inputs, classifier.session.outputs
        scores = _run_file(classifier, reference.images, f"{fmt.name} ({name}): validating")
    judged = reference.judge(fmt, scores)
    failures = judged.pop("failures")
    attempt = _Attempt(name, fmt, converted, staged, tuple(inputs), tuple(outputs), judged, failures, scores=scores)
    attempt.inspection = fmt.inspect(staged, ctx, fmt, reference)
    return attempt


def _run_file(classifier: Any, images: np.ndarray, what: str) -> np.ndarray:
    """``classifier``'s scores on ``images``, in batches of the file's own batch size."""
    shape = classifier.session.inputs[0].shape
    batch = shape[0] if shape and shape[0] > 0 else len(images)
    parts = []
    with track(what, len(images)) as advance:
        for i in range(0, len(images), batch):
            parts.append(classifier.scores(images[i : i + batch]))
            advance(len(parts[-1]))
    return np.concatenate(parts)


def _file_open_set(kept: _Attempt, ctx: ConversionContext, reference: Reference, config: ExportConfig):
    """The kept file's own "unknown" calibration, fitted on its own validation scores and on its own
    scores for the photos of other kinds (run through the runtime's Classifier, as on a Pi)."""
    from edgeclf.runtime.classifier import Classifier

    if reference.unknown is None or kept.staged is None or kept.scores is None:
        return None
    with Classifier.from_file(kept.staged, backend=kept.fmt.backend) as classifier:
        unknown = _run_file(classifier, reference.unknown, f"{kept.fmt.name}: photos of other kinds")
    activation = ctx.manifest.output_activation
    extremes = extreme_scores(activation, kept.outputs[0]) if kept.outputs else None
    return fit_on_scores(
        activation, kept.scores, reference.labels, unknown, config.false_accept, str(config.unknown_data), extremes
    )


def _try_variants(fmt: ExportFormat, ctx: ConversionContext, staging: Path, reference: Reference, config: ExportConfig):
    """Each variant in order until one passes everywhere; returns the one kept and every attempt.

    Kept: the first that passes in every runtime, else the first that passes with the format's own
    runtime (the others are then marked incompatible), else the first (what was asked for).
    """
    attempts: list[_Attempt] = []
    for name, candidate in _variant_formats(fmt, ctx, config):
        try:
            attempt = _attempt(name, candidate, ctx, staging, reference)
        except EdgeclfError as error:
            if not attempts:
                raise  # what was asked for does not convert: an error, as before
            attempts.append(_Attempt(name, candidate, error=str(error)))
            continue
        attempts.append(attempt)
        if attempt.passed_everywhere and _target_ok(attempt, config):
            break
    made = [a for a in attempts if a.converted is not None]
    kept = next(
        (a for a in made if a.passed_everywhere and _target_ok(a, config)),
        next((a for a in made if a.passed), made[0]),
    )
    return kept, attempts


def _target_ok(attempt: _Attempt, config: ExportConfig) -> bool:
    if config.target is None or config.target not in attempt.fmt.targets or attempt.inspection is None:
        return True
    entry = verdict_for(attempt.inspection.compatibility, config.target)
    return entry is not None and entry.ok


def _primary_check(fmt: ExportFormat, attempt: _Attempt) -> RuntimeCheck:
    """The format's own runtime's figures, in the same form as the other runtimes'."""
    package = {"litert": "ai-edge-litert"}.get(fmt.backend, fmt.backend)
    try:
        version = importlib.metadata.version(package)
    except importlib.metadata.PackageNotFoundError:  # pragma: no cover - it just ran the file
        version = ""
    status = Status.FAILED if attempt.failures else Status.PASSED
    return RuntimeCheck(fmt.backend, status, attempt.metrics, tuple(attempt.failures), version, "in-process at export")


def _record_probes(kept: _Attempt, reference: Reference) -> dict[str, Any]:
    """Self-check probes for ``edgeclf verify``, embedded in the kept file (its sha256 is taken after this)."""
    from edgeclf.runtime.classifier import Classifier

    assert kept.staged is not None and kept.scores is not None  # only made attempts are kept
    agree = kept.scores.argmax(axis=1) == reference.scores.argmax(axis=1)
    chosen = pick_probe_indices(reference.labels, agree, DEFAULT_PROBES)
    # The other runtimes' outputs on the same images come from their validation run, not a second one.
    raw_outputs = kept.inspection.raw_outputs if kept.inspection else {}
    others = {backend: raw[chosen] for backend, raw in raw_outputs.items()}
    with Classifier.from_file(kept.staged, backend=kept.fmt.backend) as classifier:
        probes = record_probes(classifier, reference.images[chosen], kept.fmt.precision, others)
    embed_probes(kept.staged, probes)
    return probes


def _export_one(
    fmt: ExportFormat,
    ctx: ConversionContext,
    staging: Path,
    reference: Reference,
    config: ExportConfig,
) -> tuple[FormatResult, Path | None, Artifact | None]:
    started = time.perf_counter()
    kept, attempts = _try_variants(fmt, ctx, staging, reference, config)
    fmt, converted, metrics, failures = kept.fmt, kept.converted, kept.metrics, list(kept.failures)
    inspection: Inspection = kept.inspection or Inspection()
    probes = _record_probes(kept, reference)
    own_open_set = _file_open_set(kept, ctx, reference, config)
    if own_open_set is not None:
        # A file loaded on its own (no manifest.json beside it) gets its own threshold too.
        embed_entries(kept.staged, {"open_set": dataclasses.asdict(own_open_set)})
    bounds = reference.bounds_for(fmt)
    status = Status.FAILED if failures else Status.PASSED
    message = ""
    if config.target is not None and config.target in fmt.targets:
        entry = verdict_for(inspection.compatibility, config.target)
        verdict = entry.verdict if entry is not None else "not checked"
        if entry is None or not entry.ok:
            status, message = Status.REFUSED, f"{fmt.name} cannot be made for {TARGETS[config.target]}: {verdict}"
            if fmt.quantization.dynamic_range and "FULLY_CONNECTED" in verdict:
                # Measured: TF quantises a 1-unit Dense (a binary head) per channel in dynamic range even
                # with per-channel quantisation disabled, which is FULLY_CONNECTED v12.
                message += (
                    "; its Dense layer is quantised per channel whatever the flags, use tflite-int8 or tflite-fp16"
                )
    if status is Status.FAILED and fmt.quantization.needs_calibration:  # the hint is about calibration
        message = INT8_HINT + (f" ({', '.join(a.variant for a in attempts)})" if len(attempts) > 1 else "")
    seconds = time.perf_counter() - started
    runtimes = (_primary_check(fmt, kept), *inspection.runtimes)
    validation = {**metrics, "bounds": bounds.to_dict(), "failures": failures, "backend": fmt.backend}
    tried = [a.record() for a in attempts]
    result = FormatResult(
        format=fmt.name,
        status=status,
        file=fmt.file_name,
        size_bytes=kept.staged.stat().st_size,
        seconds=round(seconds, 3),
        validation=validation,
        failures=tuple(failures),
        message=message,
        compatibility=dict(inspection.compatibility),
        variant=kept.variant,
        attempts=tuple(tried),
        runtimes={r.runtime: {"status": r.status, **r.metrics, "failures": list(r.failures)} for r in runtimes},
    )
    if status is Status.REFUSED or (status is Status.FAILED and config.strict):
        return dataclasses.replace(result, file=None), None, None
    artifact = Artifact(
        format=fmt.name,
        precision=fmt.precision,
        file=fmt.file_name,
        size_bytes=kept.staged.stat().st_size,
        sha256=sha256_file(kept.staged),
        backend=fmt.backend,
        inputs=kept.inputs,
        outputs=kept.outputs,
        status=status.value,
        op_versions=dict(inspection.op_versions),
        compatibility=dict(inspection.compatibility),
        validation=validation,
        details={
            **converted.details,
            **inspection.details,
            "export_seconds": round(seconds, 3),
            "variant": kept.variant,
            "variants_tried": tried,
            "probes": probes,
        },
        runtimes=runtimes,
        open_set=own_open_set,
    )
    return result, kept.staged, artifact


def export_run(
    run_dir: str | Path,
    config: ExportConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export the run under its write lock (see :func:`_export_locked` for what it does).

    A second writer of the same run folder (an export or a training) is refused up front, so two
    exports can never lose each other's manifest entries; staging folders left by a killed export
    are removed; a failed write (disk full…) ends the export with one line, and every artifact
    already in the manifest stays complete and validated.
    """
    run_dir = Path(run_dir)
    Manifest.load(run_dir)  # a missing or corrupt run folder is refused before anything is written
    _check_writable(run_dir)
    with run_lock(run_dir, "export"):
        _remove_stale_staging(run_dir)
        try:
            return _export_locked(run_dir, config, log=log)
        except OSError as error:
            where = error.filename or run_dir
            raise ExportError(
                f"{where}: export stopped, cannot write ({error.strerror or error}); free some space or fix "
                "permissions and export again (formats already listed in manifest.json are complete)"
            ) from None


def _remove_stale_staging(run_dir: Path) -> None:
    """Delete ``.export-*`` staging folders of killed exports (safe: we hold the run's lock)."""
    for stale in run_dir.glob(f"{STAGING_PREFIX}*"):
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)


def _export_locked(
    run_dir: str | Path,
    config: ExportConfig | None = None,
    *,
    log: Callable[[str], None] | None = None,
) -> ExportReport:
    """Export the run's ``model.keras`` to every format of ``config`` and validate each file.

    Args:
        run_dir: a run folder made by ``edgeclf train`` (``model.keras``, ``manifest.json``).
        config: what to export; ``ExportConfig()`` exports every format with the defaults.
        log: receives one progress or warning line at a time (default: stderr).

    Returns:
        An :class:`ExportReport` (also written to ``run_dir/export_report.json``); formats that
        failed their bounds, were refused for ``--target`` or failed to convert are in it with
        their reason; ``report.exit_code`` is what the command line exits with.

    Raises:
        ManifestError: missing or corrupt run folder, or a ``model.keras`` that does not match it.
        ExportError: unknown format or target, or a run folder that is not writable.
        DatasetError: no readable validation or calibration images.
    """
    started = time.perf_counter()
    config = config or ExportConfig()
    say = log or _stderr
    warnings: list[str] = []

    def warn(message: str) -> None:
        warnings.append(message)
        say(message)

    run_dir = Path(run_dir)
    manifest = Manifest.load(run_dir)
    selected = _checked_formats(config)
    _check_writable(run_dir)
    model = load_run_model(run_dir, manifest)
    images, source = _validation_images(config, manifest, warn)
    tflite_python = _tflite_runtime_python(config, selected, warn)  # a bad one is refused before any write
    staging = Path(tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=run_dir))
    ctx = _context(config, manifest, model, selected, staging, tflite_python, warn)
    results: list[FormatResult] = []
    try:
        if any(f.quantization.needs_calibration for f in selected):
            # A bad calibration folder fails here, before anything is written.
            ctx.calibration_images(config.calibration_images)
        scores = keras_scores(model, images.images, manifest.output_activation)
        keras_accuracy = float(np.mean(scores.argmax(axis=1) == images.labels))
        unknown = None
        if config.unknown_data is not None:
            unknown = _fit_open_set(run_dir, ctx, config, images, scores, say)
        reference = Reference(images.images, images.labels, scores, manifest.labels, config.bounds, unknown)
        say(f"validating on {len(images.images)} images from {source}; Keras accuracy {keras_accuracy:.2%}")
        for fmt in selected:
            results.append(_export_and_record(fmt, ctx, staging, reference, config, run_dir, say, warn))
    finally:
        shutil.rmtree(staging, ignore_errors=True)

    report = ExportReport(
        run_dir=run_dir,
        results=tuple(results),
        seconds=time.perf_counter() - started,
        config=config.to_dict(),
        validation_source=source,
        validation_count=len(images.images),
        keras_accuracy=keras_accuracy,
        calibration_count=ctx.calibration_count(config.calibration_images),
        warnings=tuple(warnings),
    )
    atomic_write_text(run_dir / CONFIG_NAME, json.dumps(config.to_dict(), indent=2) + "\n")
    atomic_write_text(run_dir / REPORT_NAME, json.dumps(report.to_dict(), indent=2) + "\n")
    return report


def _checked_formats(config: ExportConfig) -> list[ExportFormat]:
    """The formats to make (with ``--per-tensor`` applied), after checking the target and the bounds."""
    selected = _resolve_formats(config.formats)
    if config.target is not None:
        TARGETS.get(config.target)  # an unknown name raises UnknownNameError listing the known ones
    unknown_bounds = sorted(set(config.bounds) - set(all_formats()))
    if unknown_bounds:
        raise ExportError(f"bounds given for unknown formats {unknown_bounds}; known: {', '.join(all_formats())}")
    if config.per_channel:
        return selected
    return [
        dataclasses.replace(f, quantization=dataclasses.replace(f.quantization, per_channel=False))
        if f.quantization.needs_calibration
        else f
        for f in selected
    ]


def _context(
    config: ExportConfig,
    manifest: Manifest,
    model: Any,
    selected: Sequence[ExportFormat],
    staging: Path,
    tflite_python: Path | None,
    warn: Callable[[str], None],
) -> ConversionContext:
    base = manifest
    for fmt in selected:  # the run's own description, without artifacts of formats being re-made
        base = base.without_artifact(fmt.name)
    work_dir = staging / "work"
    work_dir.mkdir()
    return ConversionContext(
        model=model,
        manifest=base,
        batch_size=None if config.dynamic_batch else 1,
        opset=config.opset,
        target=config.target,
        work_dir=work_dir,
        tflite_runtime_python=tflite_python,
        load_calibration=_calibration_loader(config, manifest, warn),
        warn=warn,
    )


def _fit_open_set(
    run_dir: Path,
    ctx: ConversionContext,
    config: ExportConfig,
    images: LoadedImages,
    scores: np.ndarray,
    say: Callable[[str], None],
) -> np.ndarray:
    """Fit the Keras model's "unknown" threshold before any conversion (the manifest-level figure,
    which files exported before per-file thresholds rely on); returns the photos of other kinds,
    on which each kept file then fits its own."""
    manifest = ctx.manifest
    unknown = load_unknown(manifest, config.unknown_data)
    activation = manifest.output_activation
    unknown_scores = keras_scores(ctx.model, unknown, activation)
    open_set = fit_on_scores(
        activation, scores, images.labels, unknown_scores, config.false_accept, str(config.unknown_data)
    )
    ctx.manifest = dataclasses.replace(ctx.manifest, open_set=open_set)
    dataclasses.replace(Manifest.load(run_dir), open_set=open_set).save(run_dir)
    say("Keras " + _open_set_line(open_set))
    return unknown


def _export_and_record(
    fmt: ExportFormat,
    ctx: ConversionContext,
    staging: Path,
    reference: Reference,
    config: ExportConfig,
    run_dir: Path,
    say: Callable[[str], None],
    warn: Callable[[str], None],
) -> FormatResult:
    """Export one format; move a kept file under its final name and record it in ``manifest.json``."""
    say(f"exporting {fmt.name} …")
    try:
        result, staged, artifact = _export_one(fmt, ctx, staging, reference, config)
    except EdgeclfError as error:
        say(f"error: {fmt.name}: {error}")
        return FormatResult(format=fmt.name, status=Status.ERROR, message=str(error))
    if staged is not None and artifact is not None:
        os.replace(staged, run_dir / fmt.file_name)
        # Read-modify-write under the run's lock: entries recorded since this export began stay.
        Manifest.load(run_dir).with_artifact(artifact).save(run_dir)
        if artifact.open_set is not None:
            say(f"{fmt.name}: its own " + _open_set_line(artifact.open_set))
        ceiling = unreachable_warning(ctx.manifest, artifact)
        if ceiling:
            warn(ceiling)
    say(_summary_line(result))
    return result


def _open_set_line(open_set: Any) -> str:
    m = open_set.measured
    return (
        f"unknown threshold {open_set.threshold:.4f} (temperature {open_set.temperature:.3f}): accepts "
        f"{m['false_accept']:.2%} of {m['unknown_images']} photos of other kinds, rejects {m['false_reject']:.2%} "
        f"of {m['validation_images']} validation photos"
        + (
            f" (lowered from {m['capped_from']:.6f} to {open_set.threshold:.6f}: its output can never reach the"
            f" first for some label, so {m['false_accept']:.2%} rather than {open_set.target_false_accept:.2%} get in)"
            if "capped_from" in m
            else ""
        )
    )


def _summary_line(result: FormatResult) -> str:
    v = result.validation
    text = (
        f"{result.format}: {result.status}, agreement {v['agreement']:.2%}, max |Δp| {v['max_abs_diff']:.2g}, "
        f"accuracy {v['accuracy']:.2%} ({v['accuracy_change'] * 100:+.2f} points), {result.seconds:.1f} s"
    )
    if v.get("per_class"):
        text += "\n  per class: " + ", ".join(
            f"{c['label']} {c['agreement']:.2%} of {c['images']} (recall {c['recall']:.2%})" for c in v["per_class"]
        )
        weakest = weakest_class_line(v["per_class"], v["bounds"]["min_agreement"])
        if weakest:
            text += f"\n  warning: {weakest}"
    for failure in result.failures:
        text += f"\n  {failure}"
    if result.message:
        text += f"\n  {result.message}"
    return text
