"""The Classifier on the exported fixture models: scores, embedded metadata, manifest checks, draft mode.

Runs on real files from ``make fixture-models`` (``$EDGECLF_FIXTURE_RUN``) with whatever interpreters
this venv has: the main venv, the edge-only venv and the tflite-runtime 2.14 venv.
"""

import dataclasses
import io
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from edgeclf.runtime.backends import BackendUnavailableError, backend_for, default_threads
from edgeclf.runtime.classifier import Classifier, compatibility_problem
from edgeclf.runtime.dataset import Sample, list_images, load_samples
from edgeclf.runtime.embedded import strip_tflite_metadata
from edgeclf.runtime.errors import ManifestError, ModelLoadError
from edgeclf.runtime.manifest import InputSpec, Manifest, TensorInfo
from edgeclf.runtime.preprocess import load_image

# Largest difference from the fp32 reference each precision may show on the same images.
TOLERANCE = {"fp32": 1e-4, "fp16": 1e-2, "dynamic": 0.05, "int8": 0.05}


def _runnable(run):
    """(artifact, backend name) for every artifact an installed backend may run; the rest with a reason."""
    manifest = Manifest.load(run)
    ok, refused, missing = [], [], []
    for artifact in manifest.artifacts:
        try:
            backend = backend_for(artifact.file, artifact.backend)
        except BackendUnavailableError as error:
            missing.append((artifact, str(error)))
            continue
        problem = compatibility_problem(artifact, backend.name)
        (refused if problem else ok).append((artifact, backend.name))
    return manifest, ok, refused, missing


@pytest.fixture(scope="module")
def test_images(fixture_run):
    manifest = Manifest.load(fixture_run)
    root = manifest.data.get("root")
    images = list_images(Path(root) / "test")[0] if root else []
    if not images:
        pytest.fail(f"the fixture run's test images are missing ({root}); re-run `make fixture-models`")
    return images[:12]


def test_every_runnable_format_gives_per_label_probabilities(fixture_run, test_images):
    manifest, ok, _, _ = _runnable(fixture_run)
    assert ok, "no artifact of the fixture run can run in this venv"
    batch = load_samples([Sample(p, 0) for p in test_images], manifest.input).images
    results = {}
    for artifact, backend in ok:
        with Classifier.from_run(fixture_run, format=artifact.format) as clf:
            assert clf.backend_name == backend
            scores = clf.scores(batch)
            assert scores.shape == (len(test_images), len(manifest.labels))
            assert scores.dtype == np.float32
            assert np.all((scores >= 0) & (scores <= 1))
            np.testing.assert_allclose(scores.sum(axis=1), 1.0, atol=1e-5)
            results[artifact.format] = (artifact.precision, scores)
    reference = next((results[f][1] for f in ("tflite-fp32", "onnx-fp32") if f in results), None)
    if reference is None:
        pytest.skip("no fp32 artifact runs here to compare the others with")
    for name, (precision, scores) in results.items():
        assert np.max(np.abs(scores - reference)) <= TOLERANCE[precision], name


def test_every_runnable_format_tells_the_fixture_classes_apart(fixture_run, test_images):
    """The fixture model's scores follow the picture (its data set is tinted per class), in every format.

    So a mistake between file and interpreter shows here: pictures fed as B, G, R (what OpenCV hands
    out) lose most decisions, and an int8 input fed unquantised or a wrong scale would too.
    """
    manifest, ok, _, _ = _runnable(fixture_run)
    truth = np.array([manifest.labels.index(p.parent.name) for p in test_images])
    assert len(set(truth)) == len(manifest.labels), "the test images must hold every class"
    batch = load_samples([Sample(p, 0) for p in test_images], manifest.input).images
    swapped = np.ascontiguousarray(batch[..., ::-1])
    for artifact, _ in ok:
        with Classifier.from_run(fixture_run, format=artifact.format) as clf:
            scores, swapped_scores = clf.scores(batch), clf.scores(swapped)
        assert np.mean(scores.argmax(axis=1) == truth) >= 0.9, artifact.format
        assert np.ptp(scores[:, 0]) >= 0.2, artifact.format  # not one constant answer
        assert np.mean(swapped_scores.argmax(axis=1) == truth) <= 0.5, artifact.format


def test_incompatible_files_are_refused_with_the_exporters_reason(fixture_run):
    _, _, refused, _ = _runnable(fixture_run)
    if not refused:
        pytest.skip("the exporter marked no artifact incompatible with the interpreters installed here")
    for artifact, backend in refused:
        with pytest.raises(ModelLoadError, match=f"incompatible with {backend}"):
            Classifier.from_run(fixture_run, format=artifact.format, backend=backend)


def test_missing_interpreter_is_reported_with_the_install_command(fixture_run):
    _, _, _, missing = _runnable(fixture_run)
    if not missing:
        pytest.skip("every artifact's interpreter is installed here")
    for artifact, message in missing:
        assert "pip install" in message
        with pytest.raises(BackendUnavailableError, match="pip install"):
            Classifier.from_run(fixture_run, format=artifact.format)


@pytest.fixture
def one_artifact(fixture_run):
    _, ok, _, _ = _runnable(fixture_run)
    if not ok:
        pytest.fail("no artifact of the fixture run can run in this venv")
    return sorted((a for a, _ in ok), key=lambda a: a.status != "passed")[0]


def test_default_format_and_threads(fixture_run, one_artifact):
    with Classifier.from_run(fixture_run) as clf:
        assert clf.session.threads == default_threads()
        assert clf.artifact is not None
    with Classifier.from_run(fixture_run, format=one_artifact.format, threads=1) as clf:
        assert clf.session.threads == 1
        assert clf.format == one_artifact.format


def test_a_copied_file_alone_is_labelled_by_its_embedded_metadata(fixture_run, one_artifact, tmp_path, test_images):
    copy = tmp_path / one_artifact.file
    shutil.copy(fixture_run / one_artifact.file, copy)
    manifest = Manifest.load(fixture_run)
    with Classifier.from_file(copy) as alone, Classifier.from_run(fixture_run, format=one_artifact.format) as run:
        assert alone.artifact is None
        assert alone.labels == manifest.labels and alone.spec == manifest.input
        for path in test_images[:3]:
            assert alone.classify(path, top_k=2) == run.classify(path, top_k=2)
    # beside its run's manifest, the same call uses that manifest (and checks the sha256)
    with Classifier.from_file(fixture_run / one_artifact.file) as beside:
        assert beside.artifact == one_artifact


def test_file_without_metadata_or_manifest_is_refused(fixture_run, tmp_path):
    tflite = [a for a in Manifest.load(fixture_run).artifacts if a.file.endswith(".tflite")]
    if not tflite:
        pytest.skip("no .tflite artifact in the fixture run")
    bare = tmp_path / "bare.tflite"
    bare.write_bytes(strip_tflite_metadata((fixture_run / tflite[0].file).read_bytes()))
    with pytest.raises(ManifestError, match="carries no edgeclf metadata"):
        Classifier.from_file(bare)


def _copy_run(fixture_run, artifact, tmp_path):
    shutil.copy(fixture_run / "manifest.json", tmp_path / "manifest.json")
    shutil.copy(fixture_run / artifact.file, tmp_path / artifact.file)
    manifest = Manifest.load(tmp_path)
    return dataclasses.replace(manifest, artifacts=(artifact,))


def test_changed_file_is_refused_by_its_sha256(fixture_run, one_artifact, tmp_path):
    _copy_run(fixture_run, one_artifact, tmp_path).save(tmp_path)
    with open(tmp_path / one_artifact.file, "ab") as handle:
        handle.write(b"\0")
    with pytest.raises(ManifestError, match=r"sha256 \w+… differs from the manifest's"):
        Classifier.from_run(tmp_path, format=one_artifact.format)


def test_input_size_differing_from_the_manifest_is_refused(fixture_run, one_artifact, tmp_path):
    manifest = _copy_run(fixture_run, one_artifact, tmp_path)
    spec = manifest.input
    wrong = dataclasses.replace(spec, height=spec.height + 8)
    dataclasses.replace(manifest, input=wrong).save(tmp_path)
    with pytest.raises(ManifestError, match=rf"differs from the manifest's {spec.height + 8}x{spec.width}x3"):
        Classifier.from_run(tmp_path, format=one_artifact.format)


def test_output_width_differing_from_the_labels_is_refused(fixture_run, one_artifact, tmp_path):
    manifest = _copy_run(fixture_run, one_artifact, tmp_path)
    labels = (*manifest.labels, "extra")
    dataclasses.replace(manifest, labels=labels, output_activation="softmax").save(tmp_path)
    width = one_artifact.outputs[0].shape[-1]
    with pytest.raises(ManifestError, match=f"model output has {width} values but the manifest has 3 labels"):
        Classifier.from_run(tmp_path, format=one_artifact.format)


def test_input_dtype_differing_from_the_manifest_is_refused(fixture_run, one_artifact, tmp_path):
    manifest = _copy_run(fixture_run, one_artifact, tmp_path)
    recorded = one_artifact.inputs[0]
    other = "float32" if recorded.dtype != "float32" else "uint8"
    changed = dataclasses.replace(one_artifact, inputs=(dataclasses.replace(recorded, dtype=other),))
    dataclasses.replace(manifest, artifacts=(changed,)).save(tmp_path)
    with pytest.raises(ManifestError, match=f"model input is {recorded.dtype} .* manifest recorded {other}"):
        Classifier.from_run(tmp_path, format=one_artifact.format)


def test_missing_file_and_unknown_format_are_refused(fixture_run, one_artifact, tmp_path):
    _copy_run(fixture_run, one_artifact, tmp_path).save(tmp_path)
    with pytest.raises(ManifestError, match="no artifact of format 'tflite-int4'"):
        Classifier.from_run(tmp_path, format="tflite-int4")
    (tmp_path / one_artifact.file).unlink()
    with pytest.raises(ManifestError, match="listed in the manifest but missing"):
        Classifier.from_run(tmp_path, format=one_artifact.format)


def test_every_kind_of_source_gives_the_same_prediction(fixture_run, one_artifact, test_images):
    path = test_images[0]
    with Classifier.from_run(fixture_run, format=one_artifact.format) as clf:
        expected = clf.classify(path, top_k=2)
        rgb = np.asarray(load_image(path))
        assert clf.classify(path.read_bytes(), top_k=2) == expected
        assert clf.classify(Image.open(path), top_k=2) == expected
        # an OpenCV-style BGR frame of the same pixels, declared as BGR
        assert clf.classify(np.ascontiguousarray(rgb[:, :, ::-1]), top_k=2, color_order="BGR") == expected
        assert clf.classify(rgb, top_k=2) == expected


def _big_jpeg(source, size=(2400, 1800)):
    """A multi-megapixel JPEG with detail at every scale (upscaled demo photo + noise)."""
    base = np.asarray(Image.open(source).convert("RGB").resize(size, Image.Resampling.BICUBIC), dtype=np.int16)
    noise = np.random.default_rng(0).integers(-20, 21, base.shape, dtype=np.int16)
    buffer = io.BytesIO()
    Image.fromarray(np.clip(base + noise, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def test_big_jpeg_is_decoded_in_draft_mode_exactly_as_the_trainer_decodes_it(
    fixture_run, one_artifact, test_images, tmp_path
):
    big = tmp_path / "big.jpg"
    big.write_bytes(_big_jpeg(test_images[0]))
    with Classifier.from_run(fixture_run, format=one_artifact.format) as clf:
        spec = clf.spec
        runtime = clf.preprocess(big)
        # what edgeclf.trainer.train() and edgeclf.trainer.evaluate feed the model: edgeclf.runtime.dataset.load_samples
        trainer = load_samples([Sample(big, 0)], spec).images[0]
        assert np.array_equal(runtime, trainer)
        # the runtime's scores of the file are the scores of the trainer's pixels
        np.testing.assert_array_equal(clf.scores(runtime[None]), clf.scores(trainer[None]))
    # draft mode really was used: the decoder stopped at a reduced scale, still >= the model size
    drafted = load_image(big, draft_size=spec.size)
    assert drafted.size[0] < 2400 and drafted.size[0] >= spec.width and drafted.size[1] >= spec.height
    # ... and it lands in the same size class as a full decode: close, at this tiny input size
    full = np.asarray(load_image(big).resize(spec.size, Image.Resampling.BILINEAR), dtype=np.int16)
    assert np.mean(np.abs(full - runtime.astype(np.int16))) < 12


def test_preprocess_spec_is_the_manifest_input(fixture_run, one_artifact):
    with Classifier.from_run(fixture_run, format=one_artifact.format) as clf:
        assert isinstance(clf.spec, InputSpec)
        assert clf.prepare(np.zeros(clf.spec.shape, np.uint8)).shape == (1, *clf.spec.shape)
        assert isinstance(clf.session.inputs[0], TensorInfo)


def test_an_incompatibility_recorded_by_the_exporter_is_honoured(fixture_run, one_artifact, tmp_path):
    """Whatever this venv has: a backend the manifest calls incompatible is refused with that reason."""
    manifest = _copy_run(fixture_run, one_artifact, tmp_path)
    backend = backend_for(one_artifact.file, one_artifact.backend).name
    verdict = {f"{backend}==9.9": "Didn't find op for builtin opcode 'FULLY_CONNECTED' version '12'"}
    marked = dataclasses.replace(one_artifact, compatibility={**one_artifact.compatibility, **verdict})
    dataclasses.replace(manifest, artifacts=(marked,)).save(tmp_path)
    with pytest.raises(ModelLoadError, match=rf"incompatible with {backend} .*FULLY_CONNECTED' version '12'"):
        Classifier.from_run(tmp_path, format=one_artifact.format)
    # with no format asked for, an incompatible file is not picked
    with pytest.raises(ModelLoadError, match="incompatible"):
        Classifier.from_run(tmp_path)
    ok = dataclasses.replace(one_artifact, compatibility={backend: "ok"})
    dataclasses.replace(manifest, artifacts=(ok,)).save(tmp_path)
    with Classifier.from_run(tmp_path) as clf:
        assert clf.format == one_artifact.format
