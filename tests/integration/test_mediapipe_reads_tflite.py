"""MediaPipe Tasks' ``ImageClassifier`` loads our exported int8 files and agrees with edgeclf's top-1.

MediaPipe runs in its own Python (``$EDGECLF_MEDIAPIPE_PYTHON`` or ``.venv-mediapipe``, built by
``make .venv-mediapipe/.installed``): its wheel pins packages the training venv does not share.
The tests skip when that Python is absent. The fast test uses the tiny 3-class (softmax) run; the
slow one a default-preset model trained on the real cars-vs-bikes photos, on their 400 test photos.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("tensorflow")

from helpers.export import REPO, copy_run
from helpers.paths import REAL_PHOTOS

from edgeclf.exporter import ExportConfig, export_run
from edgeclf.runtime.classifier import Classifier
from edgeclf.runtime.dataset import open_labelled_folder, reopen_from_manifest
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.preprocess import preprocess

SCRIPT = Path(__file__).resolve().parents[1] / "helpers" / "mediapipe_classify.py"
INT8 = "model_tflite-int8.tflite"


def mediapipe_python() -> Path:
    value = os.environ.get("EDGECLF_MEDIAPIPE_PYTHON")
    python = Path(value) if value else REPO / ".venv-mediapipe" / "bin" / "python"
    if not python.is_file():
        pytest.skip(f"no MediaPipe Python at {python} (run `make .venv-mediapipe/.installed`)")
    return python


def run_mediapipe(model: Path, manifest: Manifest, photos: list[Path]) -> dict:
    spec = manifest.input
    env = dict(os.environ, PYTHONPATH=str(REPO))
    args = [str(mediapipe_python()), str(SCRIPT), str(model), str(spec.height), str(spec.width), spec.resize_filter]
    done = subprocess.run(args + [str(p) for p in photos], capture_output=True, text=True, env=env, timeout=1800)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def mediapipe_top1(categories: list, manifest: Manifest) -> str:
    """MediaPipe's best category; a sigmoid model has one category (the second label's probability)."""
    name, score = categories[0]
    if manifest.output_activation == "sigmoid":
        assert len(categories) == 1 and name == manifest.labels[1]
        # edgeclf's scores are [1 - p, p] and its top-1 the first maximum: the second label only above 0.5.
        return manifest.labels[1] if score > 0.5 else manifest.labels[0]
    return name


def edgeclf_top1(model: Path, photos: list[Path]) -> tuple[list[str], np.ndarray]:
    with Classifier.from_file(model, backend="litert") as classifier:
        scores = np.concatenate([classifier.scores(preprocess(p, classifier.spec)[None]) for p in photos])
        return [classifier.labels[i] for i in scores.argmax(axis=1)], scores


def compare(model: Path, photos: list[Path]) -> dict:
    """Top-1 agreement of MediaPipe with edgeclf on ``photos``, for both inputs MediaPipe is given."""
    manifest = Manifest.load(model.parent)
    ours, scores = edgeclf_top1(model, photos)
    result = run_mediapipe(model, manifest, photos)
    figures = {"metadata": result["metadata"], "photos": len(photos)}
    for key in ("own_size", "edgeclf_input"):
        theirs = [mediapipe_top1(c, manifest) for c in result[key]]
        figures[key] = sum(a == b for a, b in zip(ours, theirs, strict=True))
    # MediaPipe's score of our top-1 label on the very pixels edgeclf used, against edgeclf's.
    deltas = []
    for row, categories in zip(scores, result["edgeclf_input"], strict=True):
        top = dict((name, s) for name, s in categories)
        if manifest.output_activation == "sigmoid":
            deltas.append(abs(top[manifest.labels[1]] - row[1]))
        else:
            deltas.extend(abs(top[label] - row[i]) for i, label in enumerate(manifest.labels))
    figures["max_score_delta_same_pixels"] = float(max(deltas))
    return figures


def _check_metadata(metadata: dict) -> None:
    assert metadata["identifier_ok"] and metadata["min_parser_version"] == "1.0.0"
    assert metadata["input_content_type"] == 2 and metadata["input_color_space"] == 1  # ImageProperties, RGB
    assert metadata["input_mean"] == [0.0] and metadata["input_std"] == [1.0]  # 0-255 pixels, as they are
    assert metadata["output_files"] == [["labels.txt", 2]]  # TENSOR_AXIS_LABELS


@pytest.fixture(scope="module")
def tiny_softmax_int8(tiny_run_softmax, tmp_path_factory) -> Path:
    mediapipe_python()  # skip before exporting when MediaPipe is absent
    run = copy_run(tiny_run_softmax, tmp_path_factory.mktemp("mediapipe-run"))
    report = export_run(run, ExportConfig(formats=("tflite-int8",)), log=lambda line: None)
    assert report.ok, [(r.format, r.failures, r.message) for r in report.results]
    return run / INT8


def test_mediapipe_image_classifier_reads_labels_and_matches_edgeclf_top1(tiny_softmax_int8: Path) -> None:
    run = tiny_softmax_int8.parent
    manifest = Manifest.load(run)
    photos = [s.path for s in reopen_from_manifest(manifest.data, manifest.labels).split("test")]
    assert len(photos) == 18
    figures = compare(tiny_softmax_int8, photos)
    print(json.dumps(figures))
    _check_metadata(figures["metadata"])
    # The same pixels: the same interpreter arithmetic, so the same top-1 on every photo.
    assert figures["edgeclf_input"] == len(photos), figures
    assert figures["max_score_delta_same_pixels"] <= 1 / 255 + 1e-6, figures
    # MediaPipe's own resize of the 64×48 photos to 32×32 differs from Pillow's; most agree anyway.
    assert figures["own_size"] >= 0.8 * len(photos), figures


def test_without_our_metadata_mediapipe_has_no_label_names(tiny_softmax_int8: Path, tmp_path: Path) -> None:
    """The labels MediaPipe reports come from the metadata we write: without it, it has none."""
    import flatbuffers
    from tensorflow.lite.python import schema_py_generated as schema

    from edgeclf.runtime.embedded import strip_tflite_metadata

    model = schema.ModelT.InitFromObj(schema.Model.GetRootAsModel(tiny_softmax_int8.read_bytes(), 0))
    model.metadata = [m for m in model.metadata if m.name != b"TFLITE_METADATA"]
    builder = flatbuffers.Builder(0)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    bare = tmp_path / "run" / INT8
    bare.parent.mkdir()
    bare.write_bytes(strip_tflite_metadata(bytes(builder.Output())))
    for name in ("manifest.json", "labels.txt"):
        (bare.parent / name).write_bytes((tiny_softmax_int8.parent / name).read_bytes())
    manifest = Manifest.load(bare.parent)
    result = run_mediapipe(
        bare, manifest, [next(iter(reopen_from_manifest(manifest.data, manifest.labels).split("test"))).path]
    )
    assert result["metadata"] is None
    assert {name for name, _ in result["edgeclf_input"][0]} == {""}, result


@pytest.mark.slow
def test_mediapipe_matches_edgeclf_top1_on_the_real_test_photos(tmp_path_factory) -> None:
    if not (REAL_PHOTOS / "test").is_dir():
        pytest.skip(f"real photos not found at {REAL_PHOTOS} (set EDGECLF_REAL_PHOTOS)")
    mediapipe_python()
    from edgeclf.trainer.train import TrainConfig, train

    out = tmp_path_factory.mktemp("mediapipe-real") / "run"
    run = train(TrainConfig(data=str(REAL_PHOTOS), preset="default", out=str(out), epochs=8, seed=0, verbose=0))
    report = export_run(run, ExportConfig(formats=("tflite-int8",), validate_on=REAL_PHOTOS / "test"), log=print)
    assert report.ok, [(r.format, r.failures, r.message) for r in report.results]
    manifest = Manifest.load(run)
    photos = [s.path for s in open_labelled_folder(REAL_PHOTOS, labels=manifest.labels).split("test")]
    figures = compare(run / INT8, photos)
    print(json.dumps(figures))
    _check_metadata(figures["metadata"])
    assert figures["edgeclf_input"] == len(photos), figures
    assert figures["own_size"] >= 0.995 * len(photos), figures
