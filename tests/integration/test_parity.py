"""Accuracy parity: every registered export format agrees with its Keras model, and the check is sharp.

The parity check here is the production one: the runtime's :class:`Classifier` runs each exported
file end to end (file → :func:`edgeclf.runtime.preprocess.preprocess` → quantise → invoke → scores),
:func:`edgeclf.exporter.parity.compare` measures it against Keras probabilities computed on the correctly
preprocessed images, and the format's own registered :class:`edgeclf.exporter.formats.Bounds` judge it.
Every test is parametrised over the exporter's registry, so a new format is covered by registering it.

Two fixtures:

- ``tiny_run`` (the shared session fixture, trained by the real trainer), exported by the real
  exporter. Its model tells the held-out images apart (``test_tiny_run_is_sensitive``), so a
  runtime that feeds it the colour channels swapped fails parity in every format
  (``test_tiny_run_catches_swapped_channels``).
- ``sensitive_run``: a small network with fixed, hand-set weights whose decision depends, in
  comparable measure, on colour (mean R − B), on fine texture (a horizontal difference of green) and on
  brightness, centred on the medians of the test images. It follows the project's model contract
  (uint8 ``images`` input, in-graph ``Rescaling``, sigmoid ``scores``) and is exported by the real
  exporter. ``test_mistake_is_caught`` injects four real regressions into the runtime path and
  shows this same check failing for each.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from helpers.paths import REAL_PHOTOS

from edgeclf.exporter import ExportConfig, export_run, format_names, get_format
from edgeclf.exporter.parity import compare, keras_scores
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import LabelledFolder, load_samples, open_labelled_folder
from edgeclf.runtime.manifest import InputSpec, Manifest
from edgeclf.runtime.preprocess import preprocess as real_preprocess

FORMATS = format_names()
SIZE = 32
MARGIN = 0.05  # probability distance from 0.5 of the sensitive fixture's images


# -- the check -------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class Reference:
    """Keras probabilities on correctly preprocessed images, and the files they came from."""

    run: Path
    files: tuple[Path, ...]
    labels: np.ndarray
    scores: np.ndarray


def reference_for(run: Path, folder: LabelledFolder, splits: tuple[str, ...]) -> Reference:
    """Keras scores of ``run``'s model on the images of ``splits``, decoded by the one preprocessing path."""
    import keras

    manifest = Manifest.load(run)
    samples = [s for split in splits for s in folder.split(split)]
    loaded = load_samples(samples, manifest.input)
    assert not loaded.failed, loaded.failed
    model = keras.models.load_model(run / manifest.model_file, compile=False)
    scores = keras_scores(model, loaded.images, manifest.output_activation)
    return Reference(run, loaded.paths, loaded.labels, scores)


def runtime_scores(run: Path, fmt: str, files: tuple[Path, ...]) -> np.ndarray:
    """What a Pi computes: each file through the runtime's Classifier, end to end."""
    with Classifier.from_run(run, format=fmt) as clf:
        return np.concatenate([clf.scores(clf.preprocess(path)) for path in files])


def parity(run: Path, fmt: str, reference: Reference) -> tuple[list[str], dict]:
    """The production comparison and the format's own bounds: ``(failures, metrics)``."""
    metrics = compare(reference.scores, runtime_scores(run, fmt, reference.files), reference.labels)
    return get_format(fmt).bounds.check(metrics), metrics


def exported_copy(source: Path, target: Path, config: ExportConfig) -> Path:
    """Copy a run folder and export it there (a session fixture shared with other tests stays untouched)."""
    shutil.copytree(source, target)
    report = export_run(target, config, log=lambda line: None)
    written = {a.format for a in Manifest.load(target).artifacts}
    missing = [r.format for r in report.results if r.format not in written]
    assert not missing, f"not written: {missing}: {json.dumps([r.to_dict() for r in report.results])[:2000]}"
    return target


# -- tiny_run ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tiny_exported(tiny_run: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # strict=False: a file outside its bounds is still written, so the parity test below reports it.
    return exported_copy(tiny_run, tmp_path_factory.mktemp("parity") / "tiny", ExportConfig(strict=False))


@pytest.fixture(scope="module")
def tiny_reference(tiny_exported: Path) -> Reference:
    manifest = Manifest.load(tiny_exported)
    folder = open_labelled_folder(manifest.data["root"], labels=manifest.labels)
    return reference_for(tiny_exported, folder, ("validation", "test"))


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_run_format_agrees_with_keras(fmt: str, tiny_exported: Path, tiny_reference: Reference) -> None:
    failures, metrics = parity(tiny_exported, fmt, tiny_reference)
    assert not failures, f"{fmt}: {'; '.join(failures)} ({metrics})"


def test_tiny_run_is_sensitive(tiny_reference: Reference) -> None:
    """The shared fixture's model gives different images different probabilities, mostly right ones."""
    p = tiny_reference.scores[:, -1]
    spread = float(np.ptp(p))
    assert spread > 0.2, f"the Keras probabilities of all {len(tiny_reference.files)} images lie within {spread:.2g}"
    accuracy = float(np.mean(tiny_reference.scores.argmax(axis=1) == tiny_reference.labels))
    assert accuracy >= 0.9, f"tiny_run's model is right on only {accuracy:.0%} of its held-out images"


@pytest.mark.parametrize("fmt", FORMATS)
def test_tiny_run_catches_swapped_channels(
    fmt: str, tiny_exported: Path, tiny_reference: Reference, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A runtime that hands the model B, G, R (an OpenCV frame taken for RGB) fails tiny_run's parity."""
    monkeypatch.setattr("edgeclf.runtime.classifier.preprocess", _bgr)
    failures, metrics = parity(tiny_exported, fmt, tiny_reference)
    assert failures, f"{fmt}: swapped colour channels passed tiny_run's parity check: {metrics}"


# -- a model built to be sensitive -----------------------------------------------------------------


def build_sensitive_model(
    images: np.ndarray | None = None, *, rescale: float = 1 / 255.0, gains: np.ndarray | None = None
):
    """The sensitive network; with ``images``, its Dense layer is centred on their feature medians.

    Three features, each scaled to about 1 ± 0.3 so one int8 scale suits them all: mean(1 + 3·(R − B)),
    mean(ReLU(20 · horizontal difference of G)), mean(2.5 · brightness). The logit is Σ (f − median) / std.
    Returns ``(model, gains)``; pass ``gains`` back to rebuild the same network (e.g. with ``rescale=1``).
    """
    import keras

    inputs = keras.Input((SIZE, SIZE, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(rescale)(inputs)
    colour = keras.layers.Conv2D(1, 3, activation="relu", name="colour")(x)
    texture = keras.layers.Conv2D(1, 3, activation="relu", name="texture")(x)
    bright = keras.layers.Conv2D(1, 3, activation="relu", name="brightness")(x)
    pooled = [keras.layers.GlobalAveragePooling2D()(t) for t in (colour, texture, bright)]
    features = keras.layers.Concatenate(name="features")(pooled)
    outputs = keras.layers.Dense(1, activation="sigmoid", name="scores")(features)
    model = keras.Model(inputs, outputs, name="sensitive")

    kernel = np.zeros((3, 3, 3, 1), np.float32)
    kernel[1, 1, 0, 0], kernel[1, 1, 2, 0] = 3.0, -3.0
    model.get_layer("colour").set_weights([kernel, np.array([1.0], np.float32)])
    kernel = np.zeros((3, 3, 3, 1), np.float32)
    # A horizontal difference (+1, -1): its int8 weights are exact, so no DC leaks through. A
    # Laplacian's 4 / -1 taps round to 127 / 32 and let ~1/127 of the raw pixel level through.
    kernel[1, 1, 1, 0], kernel[1, 2, 1, 0] = 20.0, -20.0
    model.get_layer("texture").set_weights([kernel, np.zeros(1, np.float32)])
    kernel = np.zeros((3, 3, 3, 1), np.float32)
    kernel[1, 1, :, 0] = 2.5 / 3.0
    model.get_layer("brightness").set_weights([kernel, np.zeros(1, np.float32)])
    if gains is None:
        assert images is not None
        feats = keras.Model(inputs, features)(images, training=False).numpy().astype(np.float64)
        weights = 1.0 / feats.std(axis=0)
        bias = -float(np.sum(weights * np.median(feats, axis=0)))
        gains = np.concatenate([weights, [bias]]).astype(np.float32)
    model.get_layer("scores").set_weights([gains[:3].reshape(3, 1), gains[3:]])
    return model, gains


def _save_run(model, run: Path, data: Path) -> Path:
    run.mkdir(parents=True)
    folder = open_labelled_folder(data)
    model.save(run / "model.keras")
    Manifest(
        labels=folder.labels,
        input=InputSpec(SIZE, SIZE, resize_filter="bilinear"),
        output_activation="sigmoid",
        preset="sensitive-fixture",
        data=folder.describe(),
    ).save(run)
    return run


@pytest.fixture(scope="module")
def sensitive_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from edgeclf.trainer.demo_data import generate_demo_dataset

    root = tmp_path_factory.mktemp("sensitive")
    return generate_demo_dataset(
        root / "data", train_per_class=40, validation_per_class=40, test_per_class=40, image_size=(64, 48), seed=1
    )


@pytest.fixture(scope="module")
def sensitive(sensitive_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Reference, np.ndarray]:
    """The sensitive network as a run folder, exported to every format; its reference and Dense gains."""
    folder = open_labelled_folder(sensitive_data)
    spec = InputSpec(SIZE, SIZE)
    images = load_samples(folder.split("validation") + folder.split("test"), spec).images
    model, gains = build_sensitive_model(images)
    root = tmp_path_factory.mktemp("sensitive-run")
    run = _save_run(model, root / "built", sensitive_data)
    run = exported_copy(run, root / "run", ExportConfig(strict=False, calibration_images=80))
    reference = reference_for(run, folder, ("validation", "test"))
    # Agreement bounds count label flips; an image sitting on the decision boundary flips under any
    # rounding. Keep the images the model is sure about (|p - 0.5| >= MARGIN), so that every flip
    # means a real difference; the mistakes below move the logits by far more than this margin.
    sure = np.abs(reference.scores[:, -1] - 0.5) >= MARGIN
    assert sure.sum() >= 100, f"only {sure.sum()} images away from the decision boundary"
    reference = dataclasses.replace(
        reference,
        files=tuple(f for f, keep in zip(reference.files, sure, strict=True) if keep),
        labels=reference.labels[sure],
        scores=reference.scores[sure],
    )
    # A fixture that cannot tell images apart would make every parity test below pass vacuously.
    p = reference.scores[:, -1]
    assert 0.3 < float(np.mean(p > 0.5)) < 0.7 and float(np.std(p)) > 0.1, "sensitive model is not sensitive"
    return reference, gains


@pytest.mark.parametrize("fmt", FORMATS)
def test_sensitive_model_format_agrees_with_keras(fmt: str, sensitive: tuple[Reference, np.ndarray]) -> None:
    reference, _ = sensitive
    failures, metrics = parity(reference.run, fmt, reference)
    assert not failures, f"{fmt}: {'; '.join(failures)} ({metrics})"


# -- injected mistakes ---------------------------------------------------------------------------


def _bgr(source, spec, **kwargs):
    """An OpenCV / picamera2 frame (B, G, R) fed to an RGB model."""
    return np.ascontiguousarray(real_preprocess(source, spec, **kwargs)[..., ::-1])


def _nearest(source, spec, **kwargs):
    """Inference resizing with another filter than training (Keras ``load_img`` uses nearest)."""
    return real_preprocess(source, dataclasses.replace(spec, resize_filter="nearest"), **kwargs)


def _requantised(source, spec, *, rounding: bool, **kwargs) -> np.ndarray:
    # An app that normalises pixels to 0..1 (x * 1/255, float64) and quantises them back to the
    # model's 8-bit input (scale 1/255). Without rounding, 24 of the 256 levels come out one lower.
    normalised = real_preprocess(source, spec, **kwargs) * (1.0 / 255.0)
    requantised = normalised * 255.0
    return (np.clip(np.rint(requantised), 0, 255) if rounding else requantised).astype(np.uint8)


def _truncated(source, spec, **kwargs):
    """Quantised back to uint8 with ``astype`` (truncation) instead of round-then-clip."""
    return _requantised(source, spec, rounding=False, **kwargs)


def _rounded(source, spec, **kwargs):
    """The same float round trip, correctly rounded: the control for :func:`_truncated`."""
    return _requantised(source, spec, rounding=True, **kwargs)


RUNTIME_MISTAKES: dict[str, Callable[..., np.ndarray]] = {
    "bgr-colour-order": _bgr,
    "nearest-resize-filter": _nearest,
    "unrounded-quantisation": _truncated,
}
# A regression in preprocessing hits every format; the suite must catch it. These formats have the
# tightest bounds (|Δp| <= 1e-4); the big mistakes must also fail every other format's bounds.
SHARPEST = tuple(
    f for f in FORMATS if get_format(f).bounds.max_abs_diff is not None and get_format(f).bounds.max_abs_diff <= 1e-3
)
SUBTLE = {"unrounded-quantisation"}


@pytest.mark.parametrize("mistake", list(RUNTIME_MISTAKES))
def test_runtime_mistake_is_caught(
    mistake: str, sensitive: tuple[Reference, np.ndarray], monkeypatch: pytest.MonkeyPatch
) -> None:
    reference, _ = sensitive
    monkeypatch.setattr("edgeclf.runtime.classifier.preprocess", RUNTIME_MISTAKES[mistake])
    caught = {fmt: parity(reference.run, fmt, reference) for fmt in FORMATS}
    missed = [f for f, (failures, _) in caught.items() if not failures]
    assert SHARPEST, "no format with a |Δp| bound is registered"
    must_catch = SHARPEST if mistake in SUBTLE else FORMATS
    escaped = [f for f in must_catch if f in missed]
    assert not escaped, f"{mistake} passed the parity check of {escaped}: " + "; ".join(
        f"{f}: {caught[f][1]}" for f in escaped
    )


def test_rounded_float_resize_passes(sensitive: tuple[Reference, np.ndarray], monkeypatch: pytest.MonkeyPatch) -> None:
    """Control: it is the missing rounding, not the float round trip, that the check catches."""
    reference, _ = sensitive
    monkeypatch.setattr("edgeclf.runtime.classifier.preprocess", _rounded)
    for fmt in SHARPEST:
        failures, metrics = parity(reference.run, fmt, reference)
        assert not failures, f"{fmt}: {'; '.join(failures)} ({metrics})"


def test_missing_rescale_is_caught(
    sensitive: tuple[Reference, np.ndarray], sensitive_data: Path, tmp_path: Path
) -> None:
    """The exported file lost its in-graph Rescaling(1/255): it sees 0–255 where it was trained on 0–1."""
    reference, gains = sensitive
    broken, _ = build_sensitive_model(rescale=1.0, gains=gains)
    run = _save_run(broken, tmp_path / "built", sensitive_data)
    fp32 = tuple(f for f in SHARPEST if get_format(f).precision == "fp32")
    assert fp32, "no fp32 format registered"
    run = exported_copy(run, tmp_path / "run", ExportConfig(formats=fp32, strict=False))
    for fmt in fp32:
        failures, metrics = parity(run, fmt, reference)
        assert failures, f"a missing rescale passed {fmt}'s parity check: {metrics}"


# -- real photos (slow) --------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.skipif(not REAL_PHOTOS.is_dir(), reason=f"{REAL_PHOTOS} is not on this machine")
@pytest.mark.parametrize("preset", ["default"])
def test_real_photos_every_format_agrees(preset: str, tmp_path: Path) -> None:
    from edgeclf.trainer.train import TrainConfig, train

    run = train(
        TrainConfig(data=str(REAL_PHOTOS), preset=preset, out=str(tmp_path / "run"), epochs=8, seed=0, verbose=0)
    )
    report = export_run(run, ExportConfig(strict=False), log=lambda line: None)
    assert {r.format for r in report.results} == set(FORMATS)
    manifest = Manifest.load(run)
    folder = open_labelled_folder(REAL_PHOTOS, labels=manifest.labels)
    reference = reference_for(run, folder, ("test",))
    assert float(np.ptp(reference.scores[:, -1])) > 0.1, "the trained model does not tell photos apart"
    problems = {}
    for fmt in FORMATS:
        failures, metrics = parity(run, fmt, reference)
        if failures:
            problems[fmt] = (failures, metrics)
    assert not problems, problems
