"""Distillation (``--teacher RUN``) end to end on the tiny generated runs: targets, manifest, refusals."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

tf = pytest.importorskip("tensorflow")
keras = pytest.importorskip("keras")

from typer.testing import CliRunner  # noqa: E402

from edgeclf.runtime.dataset import Sample, load_samples, open_labelled_folder  # noqa: E402
from edgeclf.runtime.fileio import sha256_file  # noqa: E402
from edgeclf.runtime.manifest import InputSpec, Manifest  # noqa: E402
from edgeclf.trainer import distill  # noqa: E402
from edgeclf.trainer.datasets import TrainingData, data_report  # noqa: E402
from edgeclf.trainer.runlog import RunLog  # noqa: E402

STUDENT_SIZE = 24  # not the teacher's 32: the augmented copies are resized between the two


def _data_root(run: Path) -> str:
    return Manifest.load(run).data["root"]


def _training_data(run: Path, size: int) -> TrainingData:
    folder = open_labelled_folder(_data_root(run))
    spec = InputSpec(height=size, width=size)
    loaded = {"train": load_samples(folder.split("train"), spec)}
    return TrainingData(folder, spec, loaded, data_report(folder, loaded))


# The teacher's score is a known function of the pixels it sees: red minus green over the left half
# of the picture. The tiny trained runs score every picture alike, which would hide a teacher that
# scored the wrong pixels; this one changes with every flip, shift and rotation.
_WEIGHT = 8.0


def _left_half_score(images: np.ndarray) -> np.ndarray:
    half = images[:, :, : images.shape[2] // 2].astype(np.float64) / 255.0
    red_minus_green = half[..., 0].mean(axis=(1, 2)) - half[..., 1].mean(axis=(1, 2))
    return (1.0 / (1.0 + np.exp(-_WEIGHT * red_minus_green))).reshape(-1, 1)


@pytest.fixture(scope="module")
def colour_teacher(tiny_run, tmp_path_factory) -> Path:
    """A finished run (tiny_run's manifest and labels) whose model is :func:`_left_half_score`."""
    run = tmp_path_factory.mktemp("colour-teacher") / "run"
    shutil.copytree(tiny_run, run)
    side = Manifest.load(run).input.width
    inputs = keras.Input((side, side, 3), dtype="uint8", name="images")
    x = keras.layers.Rescaling(1.0 / 255)(inputs)
    x = keras.layers.Cropping2D(((0, 0), (0, side - side // 2)))(x)
    x = keras.layers.GlobalAveragePooling2D()(x)
    scores = keras.layers.Dense(1, activation="sigmoid", name="scores")
    model = keras.Model(inputs, scores(x))
    scores.set_weights([np.array([[_WEIGHT], [-_WEIGHT], [0.0]], np.float32), np.zeros(1, np.float32)])
    (run / "model.keras").unlink()
    model.save(run / "model.keras")
    return run


def test_targets_are_the_teachers_scores_on_the_same_pictures_blended_with_the_labels(colour_teacher):
    from edgeclf.trainer.presets import get_preset

    data = _training_data(colour_teacher, STUDENT_SIZE)
    teacher = distill.open_teacher(colour_teacher, data.folder.labels)
    own = load_samples(data.folder.split("train"), teacher.manifest.input).images
    expected = _left_half_score(own)
    labels = data.loaded["train"].labels.reshape(-1, 1).astype(np.float32)
    log = RunLog(verbose=0)

    def targets(alpha, temperature, copies=0, augmentation=None):
        kwargs = dict(alpha=alpha, temperature=temperature, copies=copies, workers=2, log=log)
        return distill.distilled_data(tf, teacher, data, augmentation, **kwargs)

    soft = targets(0.0, 1.0)
    np.testing.assert_allclose(soft.targets, expected, atol=1e-4)  # the teacher saw its own decode
    np.testing.assert_array_equal(soft.images, data.loaded["train"].images)  # the student its own
    np.testing.assert_allclose(targets(1.0, 1.0).targets, labels)
    mixed = targets(0.25, 3.0).targets
    np.testing.assert_allclose(mixed, 0.25 * labels + 0.75 * distill.temper(expected, 3.0), atol=1e-4)

    extra = tuple(sorted((Path(_data_root(colour_teacher)) / "test").rglob("*.jpg")))
    with_extra = distill.distilled_data(
        tf, teacher, data, None, alpha=1.0, temperature=1.0, copies=0, workers=2, log=log, unlabelled=extra
    )
    n = len(labels)
    assert with_extra.record["unlabelled_images"] == len(extra) and with_extra.originals == n + len(extra)
    np.testing.assert_allclose(with_extra.targets[:n], labels)  # alpha 1: the labels alone
    seen = load_samples([Sample(p, 0) for p in extra], teacher.manifest.input).images
    np.testing.assert_allclose(with_extra.targets[n:], _left_half_score(seen), atol=1e-4)  # no label: the teacher's

    augmented = targets(0.5, 1.0, copies=2, augmentation=get_preset("dsnet").augmentation(0))
    assert augmented.images.shape == (3 * n, STUDENT_SIZE, STUDENT_SIZE, 3) and augmented.images.dtype == np.uint8
    assert augmented.targets.shape == (3 * n, 1) and augmented.record["copies"] == 2
    teacher_part = (augmented.targets - 0.5 * np.tile(labels, (3, 1))) / 0.5
    # Each augmented copy's target is the teacher's score of that very picture (seen at the
    # teacher's size, checked here on the student's smaller copy), not of the original photo.
    copies = teacher_part[n:]
    np.testing.assert_allclose(copies, _left_half_score(augmented.images[n:]), atol=0.03)
    assert np.abs(copies - np.tile(expected, (2, 1))).max() > 0.1  # augmentation did change the scores


def test_temperature_softens_scores_without_changing_the_decision():
    binary = np.array([[0.999], [0.2], [0.5]], np.float32)
    np.testing.assert_allclose(distill.temper(binary, 1.0), binary, atol=1e-6)
    warm = distill.temper(binary, 4.0)
    assert 0.5 < warm[0, 0] < 0.999 and 0.2 < warm[1, 0] < 0.5 and warm[2, 0] == pytest.approx(0.5)
    rows = np.array([[0.7, 0.2, 0.1]], np.float32)
    softened = distill.temper(rows, 2.0)
    np.testing.assert_allclose(softened.sum(axis=1), 1.0, rtol=1e-6)
    assert softened.argmax() == 0 and softened[0, 0] < 0.7 and softened[0, 2] > 0.1


def test_cli_trains_a_student_and_records_its_teacher(tiny_run, tmp_path):
    from edgeclf.cli import app

    out = tmp_path / "student"
    args = ["train", "--data", _data_root(tiny_run), "--preset", "dsnet", "--teacher", str(tiny_run)]
    args += ["--image-size", str(STUDENT_SIZE), "--epochs", "2", "--batch-size", "8", "--teacher-copies", "2"]
    result = CliRunner().invoke(app, [*args, "--teacher-temperature", "2", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    manifest = Manifest.load(out)
    record = manifest.training["distillation"]
    assert record["run_id"] == tiny_run.name and record["run_dir"] == str(tiny_run.absolute())
    assert record["model_sha256"] == sha256_file(tiny_run / "model.keras")
    assert (record["copies"], record["temperature"], record["alpha"]) == (2, 2.0, 0.5)
    assert manifest.training["teacher"] == str(tiny_run)
    assert manifest.metrics["epochs_run"] == 2 and manifest.metrics["teacher_seconds"] > 0
    history = json.loads((out / "history.json").read_text())
    assert all(0.0 <= row["accuracy"] <= 1.0 and "val_accuracy" in row for row in history)
    # Saved with the preset's own loss and metric: it loads compiled, without edgeclf's code.
    model = keras.saving.load_model(out / "model.keras")
    assert model.predict(np.zeros((1, STUDENT_SIZE, STUDENT_SIZE, 3), np.uint8), verbose=0).shape == (1, 1)
    assert model.loss.__class__.__name__ == "BinaryCrossentropy"


def test_a_softmax_student_learns_from_a_softmax_teacher(tiny_run_softmax, tmp_path):
    from edgeclf.trainer.train import TrainConfig, train

    config = TrainConfig(
        data=_data_root(tiny_run_softmax),
        preset="dsnet",
        teacher=str(tiny_run_softmax),
        teacher_copies=1,
        out=str(tmp_path / "student"),
        image_size=STUDENT_SIZE,
        epochs=1,
        batch_size=8,
        verbose=0,
    )
    manifest = Manifest.load(train(config))
    assert manifest.output_activation == "softmax" and manifest.training["distillation"]["copies"] == 1
    assert 0.0 <= manifest.metrics["val_accuracy"] <= 1.0


def _refused(args: list[str]) -> str:
    from edgeclf.cli import app

    result = CliRunner().invoke(app, args)
    assert result.exit_code == 1, result.output
    lines = result.output.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.output
    return lines[0]


def test_a_teacher_with_other_labels_is_refused_in_one_line(tiny_run, tiny_run_softmax, tmp_path):
    out = tmp_path / "student"
    args = ["train", "--data", _data_root(tiny_run), "--preset", "dsnet", "--teacher", str(tiny_run_softmax)]
    line = _refused([*args, "--out", str(out)])
    assert "labels ['cars', 'elephants', 'inverted'] do not match the data's classes ['cars', 'elephants']" in line
    assert not out.exists()


def test_a_missing_or_corrupt_teacher_is_refused_in_one_line(tiny_run, tmp_path):
    data = _data_root(tiny_run)
    out = tmp_path / "student"
    line = _refused(
        ["train", "--data", data, "--preset", "dsnet", "--teacher", str(tmp_path / "nothing"), "--out", str(out)]
    )
    assert "nothing" in line and "manifest" in line.lower()
    corrupt = tmp_path / "corrupt"
    shutil.copytree(tiny_run, corrupt)
    (corrupt / "model.keras").write_bytes(b"not a zip archive")
    line = _refused(["train", "--data", data, "--preset", "dsnet", "--teacher", str(corrupt), "--out", str(out)])
    assert "model.keras" in line
    assert not out.exists()


def test_unlabelled_photos_without_a_teacher_are_refused(tiny_run, tmp_path):
    data = _data_root(tiny_run)
    out = tmp_path / "student"
    line = _refused(["train", "--data", data, "--preset", "dsnet", "--unlabelled", data, "--out", str(out)])
    assert "--teacher" in line and not out.exists()


def test_a_pretrained_student_is_refused_before_any_work(tiny_run, tmp_path):
    out = tmp_path / "student"
    args = ["train", "--data", _data_root(tiny_run), "--preset", "lite0", "--teacher", str(tiny_run), "--out", str(out)]
    assert "from-scratch student" in _refused(args)
    assert not out.exists()
